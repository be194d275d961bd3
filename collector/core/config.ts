// Loading and validating a config file. Everything is checked before anything starts, and
// every problem is reported at once, each naming the file (and line), the key path and what
// is wrong. The result is frozen.
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { PLUGIN_API_VERSION, type ComponentKind, type Factory } from './api.js';
import { ConfigError, ConfigFile, deepFreeze } from '../common/config-file.js';
import { schemaHelpers } from '../common/schema.js';
import type { Signal } from './model.js';

export { ConfigError } from '../common/config-file.js';

export interface ComponentConfig {
  id: string;
  kind: ComponentKind;
  type: string;
  factory: Factory;
  config: unknown;
  /** Signals whose pipelines use this component. */
  signals: Signal[];
}

export interface Pipeline {
  receivers: string[];
  processors: string[];
  exporters: string[];
}

const SIGNALS = ['traces', 'logs', 'metrics'] as const;
const SECTIONS = { receivers: 'receiver', processors: 'processor', exporters: 'exporter' } as const;
type Section = keyof typeof SECTIONS;

const pipelineSchema = z.strictObject({
  receivers: z.array(z.string()).min(1, 'a pipeline needs at least one receiver'),
  processors: z.array(z.string()).default([]),
  exporters: z.array(z.string()).default([]),
});

const componentsSchema = z.record(z.string(), z.unknown()).nullish().transform((v) => v ?? {});

const retention = () => schemaHelpers.duration().default(7 * 24 * 3600 * 1000);
const maxSize = () => schemaHelpers.size().default(10 * 1024 ** 3);
const checkInterval = () => schemaHelpers.duration().default(3600 * 1000);

const sqliteSchema = z.strictObject({
  /** Database file; its directory is created. */
  path: z.string().min(1).default('./data/bitville.db'),
  /** Records older than this (by arrival) are dropped, hourly and at start. */
  retention: retention(),
  /** Data beyond this size drops the oldest records. */
  max_size: maxSize(),
  /** `normal` survives a crash of the process; `full` also a power loss (an fsync per commit). */
  synchronous: z.enum(['normal', 'full']).default('normal'),
  /** How often retention and the size cap are enforced. */
  check_interval: checkInterval(),
});

const postgresSchema = z.strictObject({
  /** Connection string (`postgres://user:pass@host:5432/db`); when absent, libpq's PG* variables (PGHOST, PGUSER, ...) apply. */
  dsn: z.string().min(1).optional(),
  /** Schema holding the tables (created when missing); instances sharing a schema share the store. */
  schema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,39}$/, 'a schema name is lowercase letters, digits and _ (at most 40), not starting with a digit')
    .default('bitville'),
  /** Connections per instance (one more is kept for LISTEN). */
  pool_size: z.number().int().min(2).max(200).default(10),
  /** A batch claimed by an instance that has not delivered it by then is taken over by another instance. */
  claim_timeout: schemaHelpers.duration().refine((ms) => ms >= 1000, 'claim_timeout must be at least 1s').default(30_000),
  /** Records older than this (by arrival) are dropped a whole daily partition at a time. */
  retention: retention(),
  /** When the tables grow past this, whole partitions go, oldest first (never today's). */
  max_size: maxSize(),
  /** Daily partitions created ahead of today. */
  partitions_ahead: z.number().int().min(1).max(31).default(2),
  /** How often partitions are created ahead and retention and the size cap are enforced. */
  check_interval: checkInterval(),
  /** Directory for components' own files (the durable component state itself lives in the database). */
  data_dir: z.string().min(1).default('./data'),
});

export type SqliteStorageConfig = z.infer<typeof sqliteSchema>;
export type PostgresStorageConfig = z.infer<typeof postgresSchema>;
/** Exactly one implementation is configured; SQLite when the config names none. */
export type StorageConfig = { sqlite: SqliteStorageConfig; postgres?: undefined } | { sqlite?: undefined; postgres: PostgresStorageConfig };

// `sqlite:` or `postgres:` written with nothing under it means that store with its defaults.
const emptyIsDefaults = (v: unknown) =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x === null ? {} : x])) : v;

const storageSchema = z
  .preprocess(emptyIsDefaults, z.strictObject({ sqlite: sqliteSchema.optional(), postgres: postgresSchema.optional() }))
  .superRefine((s, ctx) => {
    if (s.sqlite && s.postgres) ctx.addIssue({ code: 'custom', path: [], message: 'configure one store, sqlite or postgres, not both' });
  })
  .transform((s): StorageConfig => (s.postgres ? { postgres: s.postgres } : { sqlite: s.sqlite ?? sqliteSchema.parse({}) }));

const serviceSchema = z.strictObject({
  pipelines: z.strictObject({ traces: pipelineSchema.optional(), logs: pipelineSchema.optional(), metrics: pipelineSchema.optional() }),
  telemetry: z
    .strictObject({
      /** The admin server: /metrics, /healthz, /readyz and the pages components contribute. */
      metrics: z
        .strictObject({
          address: schemaHelpers.hostPort().default('127.0.0.1:8888'),
          /**
           * When set, every admin route but /healthz and /readyz needs `Authorization: Bearer <token>`
           * (Prometheus: `authorization: { credentials: ... }` in the scrape config).
           */
          auth: z.strictObject({ bearer_token: z.string().min(1) }).optional(),
        })
        .prefault({}),
      logs: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info') }).prefault({}),
    })
    .prefault({}),
});

// Each top-level part is checked on its own, so one bad part does not hide the others' problems.
const topSchema = z.strictObject({
  /** Outside plugins: paths (relative to this file) or package names. */
  plugins: z.array(z.string()).nullish().transform((v) => v ?? []),
  receivers: componentsSchema,
  processors: componentsSchema,
  exporters: componentsSchema,
  storage: z.unknown().optional(),
  service: z.unknown().optional(),
});



/** The settings both store implementations share. */
export function storeLimits(storage: StorageConfig): { kind: 'sqlite' | 'postgres'; retention: number; max_size: number; check_interval: number } {
  return storage.postgres ? { kind: 'postgres', ...storage.postgres } : { kind: 'sqlite', ...storage.sqlite };
}

/** Directory for components' own files. */
export function stateDir(storage: StorageConfig): string {
  return storage.postgres ? resolve(storage.postgres.data_dir) : resolve(storage.sqlite.path, '..');
}

export interface Config {
  file: string;
  receivers: ReadonlyMap<string, ComponentConfig>;
  processors: ReadonlyMap<string, ComponentConfig>;
  exporters: ReadonlyMap<string, ComponentConfig>;
  pipelines: Partial<Record<Signal, Pipeline>>;
  storage: StorageConfig;
  telemetry: z.infer<typeof serviceSchema>['telemetry'];
}

/** Reads, expands and validates a config file; throws ConfigError listing every problem. */
export async function loadConfig(file: string, builtins: readonly Factory[], env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const cf = ConfigFile.read(file, env);
  const add = (path: (string | number)[], message: string) => cf.add(path, message);
  const t = cf.parse(topSchema, cf.raw);
  if (!t) throw new ConfigError(file, cf.problems);
  const storage = cf.parse(storageSchema, t.storage ?? {}, ['storage']);
  if (t.service === undefined || t.service === null) add(['service'], 'missing: the service section defines the pipelines');
  const service = t.service ? cf.parse(serviceSchema, t.service, ['service']) : undefined;
  for (const p of cf.problems) if (/^service\.pipelines\.[^.]+$/.test(p.path) && p.message === 'unknown key') p.message += ' (pipelines are traces, logs and metrics)';

  const factories = new Map<string, Factory>(builtins.map((f) => [`${f.kind}:${f.type}`, f]));
  for (const [i, spec] of t.plugins.entries()) {
    try {
      for (const f of await loadPlugin(spec, dirname(resolve(file)))) {
        const key = `${f.kind}:${f.type}`;
        if (factories.has(key)) add(['plugins', i], `${f.kind} type "${f.type}" is already registered`);
        else factories.set(key, f);
      }
    } catch (err) {
      add(['plugins', i], `cannot load plugin "${spec}": ${(err as Error).message}`);
    }
  }

  const sections = {} as Record<Section, Map<string, ComponentConfig>>;
  for (const section of Object.keys(SECTIONS) as Section[]) {
    const kind = SECTIONS[section];
    sections[section] = new Map();
    for (const [id, given] of Object.entries(t[section])) {
      const m = /^([A-Za-z][A-Za-z0-9_]*)(?:\/([^/\s]+))?$/.exec(id);
      if (!m) {
        add([section, id], `"${id}" is not a component id (write type or type/name)`);
        continue;
      }
      const factory = factories.get(`${kind}:${m[1]}`);
      if (!factory) {
        const known = [...factories.values()].filter((f) => f.kind === kind).map((f) => f.type);
        add([section, id], `unknown ${kind} type "${m[1]}" (known: ${known.join(', ') || 'none'})`);
        continue;
      }
      let parsed: unknown;
      try {
        parsed = cf.parse(factory.configSchema(z, schemaHelpers), given ?? {}, [section, id]);
      } catch (err) {
        // A schema that throws instead of reporting issues is the plugin's bug; still name where.
        add([section, id], `the ${factory.type} config schema failed: ${(err as Error).message}`);
        continue;
      }
      if (parsed !== undefined) sections[section].set(id, { id, kind, type: m[1]!, factory, config: deepFreeze(parsed), signals: [] });
    }
  }

  const pipelines: Partial<Record<Signal, Pipeline>> = {};
  for (const signal of SIGNALS) {
    const p = service?.pipelines[signal];
    if (!p) continue;
    pipelines[signal] = p;
    for (const section of Object.keys(SECTIONS) as Section[]) {
      for (const [i, id] of p[section].entries()) {
        const component = sections[section].get(id);
        if (component) component.signals.push(signal);
        else if (!(id in t[section])) add(['service', 'pipelines', signal, section, i], `"${id}" is not defined under ${section}`);
      }
    }
  }
  if (service && Object.keys(pipelines).length === 0) add(['service', 'pipelines'], 'define at least one pipeline (traces, logs or metrics)');

  cf.check();
  if (!storage || !service) throw new ConfigError(file, cf.problems);
  return deepFreeze({
    file,
    receivers: sections.receivers,
    processors: sections.processors,
    exporters: sections.exporters,
    pipelines,
    storage,
    telemetry: service.telemetry,
  });
}

const KINDS = new Set(['receiver', 'processor', 'exporter']);

async function loadPlugin(spec: string, baseDir: string): Promise<Factory[]> {
  let url: string;
  if (spec.startsWith('.') || isAbsolute(spec)) {
    url = pathToFileURL(resolve(baseDir, spec)).href;
  } else {
    try {
      url = pathToFileURL(createRequire(resolve(baseDir, 'package.json')).resolve(spec)).href;
    } catch {
      url = spec; // ESM-only packages: resolve from the collector's own location.
    }
  }
  const mod = await import(url);
  const exported = mod.factories ?? mod.default;
  const list: unknown[] = Array.isArray(exported) ? exported : [exported];
  if (list.length === 0 || exported === undefined) throw new Error('it exports no factory (export default a factory or a list of them)');
  for (const f of list) {
    const ok =
      typeof f === 'object' && f !== null && KINDS.has((f as Factory).kind) && typeof (f as Factory).type === 'string' &&
      typeof (f as Factory).configSchema === 'function' && typeof (f as Factory).create === 'function';
    if (!ok) throw new Error('an export is not a factory (it needs kind, type, configSchema and create)');
    const version = (f as Factory).apiVersion;
    if (version !== undefined && Math.floor(version) !== PLUGIN_API_VERSION) {
      throw new Error(`${(f as Factory).type} was written for plugin API ${version}; this collector has API ${PLUGIN_API_VERSION}`);
    }
  }
  return list as Factory[];
}
