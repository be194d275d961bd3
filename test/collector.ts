// Runs a real collector process for end-to-end tests: OTLP/HTTP and admin on ephemeral
// loopback ports, SQLite in a temporary directory (or one the test keeps across restarts).
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { tempDir } from './env.js';
import { spawnBitville, type LoggedProcess } from './process.js';

export { CLI } from './process.js';

export interface RunningCollector extends LoggedProcess {
  otlpUrl: string;
  adminUrl: string;
  dir: string;
  dbPath: string;
  configPath: string;
}

export interface CollectorOptions {
  /** Deep-merged over the base config (objects merge, arrays and scalars replace; `storage` replaces). */
  config?: Record<string, unknown>;
  /** Data directory to use (keep it to restart on the same store). */
  dir?: string;
  env?: NodeJS.ProcessEnv;
}

export function baseConfig(dir: string): Record<string, any> {
  return {
    receivers: { otlp: { protocols: { http: { endpoint: '127.0.0.1:0' } } } },
    exporters: {},
    storage: { sqlite: { path: join(dir, 'bitville.db') } },
    service: {
      pipelines: { traces: { receivers: ['otlp'], exporters: [] }, logs: { receivers: ['otlp'], exporters: [] } },
      telemetry: { metrics: { address: '127.0.0.1:0' }, logs: { level: 'info' } },
    },
  };
}

export function merge(base: any, over: any): any {
  if (!over || typeof over !== 'object' || Array.isArray(over) || !base || typeof base !== 'object' || Array.isArray(base)) return over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
  return out;
}

export async function startCollector(t: TestContext, options: CollectorOptions = {}): Promise<RunningCollector> {
  const dir = options.dir ?? tempDir(t);
  const config = merge(baseConfig(dir), options.config ?? {});
  // A storage section given replaces the base one (exactly one store may be configured).
  if (options.config?.storage) config.storage = options.config.storage;
  const configPath = join(dir, `config-${process.hrtime.bigint()}.yaml`);
  writeFileSync(configPath, stringify(config));
  const run = spawnBitville(t, ['collector', '--config', configPath], { cwd: dir, env: options.env });
  const { waitForLog } = run;
  const otlp = await waitForLog((l) => l.msg === 'OTLP/HTTP receiver listening');
  const admin = await waitForLog((l) => l.msg === 'admin server listening');
  await waitForLog((l) => l.msg === 'collector started');
  return {
    otlpUrl: `http://127.0.0.1:${otlp.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    dir,
    dbPath: join(dir, 'bitville.db'),
    configPath,
    ...run,
  };
}

export interface StoredRow {
  id: number;
  kind: string;
  signal: string;
  correlation_id: string | null;
  forwarded_to_graylog: number;
  record: Record<string, any>;
}

/** Every record in the store, oldest first (opened read-only beside a running collector). */
export function readStore(dbPath: string): StoredRow[] {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT id, kind, signal, correlation_id, forwarded_to_graylog, body FROM records ORDER BY id').all() as any[];
    return rows.map(({ body, ...rest }) => ({ ...rest, record: JSON.parse(body) }));
  } finally {
    db.close();
  }
}

/** Resolves once `check` returns a value other than undefined, checking every 20 ms, or rejects after the timeout. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
