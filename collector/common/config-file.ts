// Reading a YAML config file, the one way the collector and every agent do it: `${env:NAME}` and
// `${env:NAME:-default}` expansion (an unset variable without a default is a problem), validation
// by a Standard Schema, every problem reported at once as `file:line: key.path: what is wrong`,
// and a frozen result.
import { readFileSync } from 'node:fs';
import { Document, LineCounter, parseDocument } from 'yaml';
import { BitvilleError } from './errors.js';
import type { StandardSchema } from './schema.js';

export type KeyPath = (string | number)[];

export interface Problem {
  /** Key path, for example `exporters.gelf/primary.endpoint`. */
  path: string;
  message: string;
  line?: number;
}

export class ConfigError extends BitvilleError {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super('BV_CONFIG_INVALID', problems.map((p) => formatProblem(file, p)).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(file: string, p: Problem): string {
  return `${file}${p.line ? `:${p.line}` : ''}: ${p.path || '(top level)'}: ${p.message}`;
}

/** One config file being read: its expanded content and the problems found so far. */
export class ConfigFile {
  readonly problems: Problem[] = [];
  /** The document with environment references expanded. */
  readonly raw: unknown;
  /** Key paths whose environment reference failed: their validation issues would only repeat it. */
  readonly #unset = new Set<string>();

  private constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
    env: NodeJS.ProcessEnv,
  ) {
    this.raw = expandEnv(doc.toJS() ?? {}, env, [], (path, m) => {
      this.#unset.add(keyPath(path));
      this.add(path, m);
    });
  }

  /** Reads and parses the file; unreadable or not YAML throws BV_CONFIG_READ. */
  static read(file: string, env: NodeJS.ProcessEnv = process.env): ConfigFile {
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (err) {
      throw new BitvilleError('BV_CONFIG_READ', `${file}: cannot read the config: ${(err as Error).message}`);
    }
    const lines = new LineCounter();
    const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new BitvilleError('BV_CONFIG_READ', `${file}:${lines.linePos(e.pos[0]).line}: not valid YAML: ${e.message.split('\n')[0]}`);
    }
    return new ConfigFile(file, doc, lines, env);
  }

  /** A config given as a value rather than a file (built in code, passed on a command line). */
  static fromValue(name: string, value: unknown, env: NodeJS.ProcessEnv = process.env): ConfigFile {
    return new ConfigFile(name, new Document(value), new LineCounter(), env);
  }

  add(path: KeyPath, message: string): void {
    this.problems.push({ path: keyPath(path), message, line: this.#lineAt(path) });
  }

  /** Validates `value` (found at `path`); records every issue and returns undefined on failure. */
  parse<T>(schema: StandardSchema<T>, value: unknown, path: KeyPath = []): T | undefined {
    const result = schema['~standard'].validate(value);
    if (result instanceof Promise) throw new Error('config schemas must validate synchronously');
    if (!result.issues) return result.value;
    for (const issue of result.issues) {
      const at = [...path, ...(issue.path ?? []).map((p) => (typeof p === 'object' ? p.key : p)).map((p) => (typeof p === 'number' ? p : String(p)))];
      // zod reports unknown keys as one issue listing them; name each key where it is written.
      if (this.#unset.has(keyPath(at))) continue;
      const { code, keys } = issue as { code?: string; keys?: string[] };
      if (code === 'unrecognized_keys' && keys) for (const key of keys) this.add([...at, key], 'unknown key');
      else this.add(at, issue.message);
    }
    return undefined;
  }

  /** Throws ConfigError listing every problem, if there is any. */
  check(): void {
    if (this.problems.length > 0) throw new ConfigError(this.file, this.problems);
  }

  #lineAt(path: KeyPath): number | undefined {
    // The line of the key itself where it exists, else of the deepest part of the path that does.
    for (let n = path.length; n > 0; n--) {
      const parent = this.doc.getIn(path.slice(0, n - 1), true) as { items?: { key?: any; range?: [number] }[] } | undefined;
      const last = path[n - 1];
      const item = parent?.items?.[typeof last === 'number' ? last : -1] ?? parent?.items?.find((p) => p.key?.value === last);
      const range = (item?.key ?? item)?.range;
      if (range) return this.lines.linePos(range[0]).line;
    }
    return undefined;
  }
}

/** Reads, expands and validates a whole file against one schema; the frozen result, or ConfigError. */
export function loadConfigFile<T>(file: string, schema: StandardSchema<T>, env: NodeJS.ProcessEnv = process.env): Readonly<T> {
  return validateConfig(ConfigFile.read(file, env), schema);
}

/** As loadConfigFile, for a config given as a value. */
export function parseConfigValue<T>(name: string, value: unknown, schema: StandardSchema<T>, env: NodeJS.ProcessEnv = process.env): Readonly<T> {
  return validateConfig(ConfigFile.fromValue(name, value, env), schema);
}

function validateConfig<T>(config: ConfigFile, schema: StandardSchema<T>): Readonly<T> {
  const value = config.parse(schema, config.raw);
  config.check();
  return deepFreeze(value as T);
}

export function keyPath(path: KeyPath): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${part}` : part), '');
}

const ENV_REF = /\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** `${env:NAME}` and `${env:NAME:-default}` in string values; `$$` is a literal `$`. */
function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: KeyPath, add: (path: KeyPath, m: string) => void): unknown {
  if (typeof value === 'string') {
    let whole = false;
    const out = value.replace(ENV_REF, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$$') return '$';
      whole = match === value;
      const v = env[name!];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      add(path, `environment variable ${name} is not set (write \${env:${name}:-default} to give a default)`);
      return '';
    });
    // A value that is one whole reference takes the type its text reads as (port: ${env:PORT}).
    if (whole) {
      if (/^(true|false)$/.test(out)) return out === 'true';
      if (out !== '' && String(Number(out)) === out) return Number(out);
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, i], add));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k], add)]));
  }
  return value;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
    else for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
