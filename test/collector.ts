// Runs a real collector process for end-to-end tests: OTLP/HTTP and admin on ephemeral
// loopback ports, SQLite in a temporary directory (or one the test keeps across restarts).
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { repoRoot, tempDir } from './env.js';

export const CLI = join(repoRoot, 'dist', 'collector', 'cli.js');

export interface RunningCollector {
  otlpUrl: string;
  adminUrl: string;
  dir: string;
  dbPath: string;
  configPath: string;
  process: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, any>[];
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
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
  const child = spawn(process.execPath, [CLI, 'collector', '--config', configPath], {
    cwd: dir,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs: Record<string, any>[] = [];
  const waiters = new Set<{ match: (l: Record<string, any>) => boolean; resolve: (l: Record<string, any>) => void }>();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, any>;
    try {
      line = JSON.parse(text);
    } catch {
      return;
    }
    logs.push(line);
    for (const w of waiters) {
      if (w.match(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  const waitForLog = (match: (l: Record<string, any>) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, any>>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`collector log line not seen within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      const w = {
        match,
        resolve: (l: Record<string, any>) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.add(w);
      void exited.then((code) => {
        if (!waiters.has(w)) return;
        waiters.delete(w);
        clearTimeout(timer);
        reject(new Error(`collector exited (${code}) before the expected log line; stderr: ${stderr}`));
      });
    });
  };
  let gone = false;
  void exited.then(() => (gone = true));
  t.after(async () => {
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const otlp = await waitForLog((l) => l.msg === 'OTLP/HTTP receiver listening');
  const admin = await waitForLog((l) => l.msg === 'admin server listening');
  await waitForLog((l) => l.msg === 'collector started');
  return {
    otlpUrl: `http://127.0.0.1:${otlp.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    dir,
    dbPath: join(dir, 'bitville.db'),
    configPath,
    process: child,
    logs,
    waitForLog,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
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
