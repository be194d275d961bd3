// The whole pipeline on one machine, for the demo (`npm run demo`) and its end-to-end test:
// a GELF receiver, the collector (otlp -> correlate -> store -> gelf), the php-agent and
// pg-agent daemons, and a small PHP application under `php -S` with agent.php prepended,
// running real queries on PostgreSQL. Every port is an ephemeral loopback one; every file
// lives under one directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { stringify } from 'yaml';
import { GelfReceiver } from './gelf-receiver.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(REPO_ROOT, 'dist', 'collector', 'app', 'cli.js');
const APP_DIR = join(REPO_ROOT, 'demo', 'app');
const AGENT_PHP = join(REPO_ROOT, 'agents', 'php', 'agent.php');
export const PROJECT = 'demo-shop';

export interface StackOptions {
  /** Where configs, stores, sockets and process logs go. */
  dir: string;
  /** PostgreSQL for the PHP application (a database the demo may create a schema in). */
  pgDsn: string;
  /** The correlate processor's join window. */
  window?: string;
  /** Whether the pg-agent follows the server log; by default when the server writes one it can read. */
  logSource?: boolean;
}

export interface Stack {
  appUrl: string;
  adminUrl: string;
  otlpUrl: string;
  collectorConfig: string;
  gelf: GelfReceiver;
  /** Whether the pg-agent reads the server log (exact durations, every statement). */
  logSource: boolean;
  /** The php-agent daemon's socket (bitville.socket for other PHP servers). */
  phpAgentSocket: string;
  stop(): Promise<void>;
}

interface Running {
  name: string;
  child: ChildProcess;
  exited: Promise<unknown>;
}

/** Why the demo cannot run here (missing PHP, PostgreSQL), or undefined. */
export async function stackMissing(pgDsn: string): Promise<string | undefined> {
  const php = await run('php', ['-m']).catch(() => undefined);
  if (php === undefined) return 'php is not installed (apt-get install php-cli php-pgsql)';
  if (!/^pgsql$/m.test(php)) return 'php has no pgsql module (apt-get install php-pgsql)';
  const client = new pg.Client({ connectionString: pgDsn, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    return `PostgreSQL is not answering at ${pgDsn} (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
  return undefined;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const { dir, pgDsn } = options;
  mkdirSync(dir, { recursive: true });
  const serverLog = await prepareDatabase(pgDsn);
  const logSource = options.logSource ?? serverLog;
  const running: Running[] = [];
  const gelf = await GelfReceiver.start();
  const stop = async () => {
    for (const r of [...running].reverse()) {
      r.child.kill('SIGTERM');
      const timer = setTimeout(() => r.child.kill('SIGKILL'), 5000);
      await r.exited;
      clearTimeout(timer);
    }
    running.length = 0;
    await gelf.close();
  };
  try {
    const collectorConfig = join(dir, 'collector.yaml');
    writeFileSync(
      collectorConfig,
      stringify({
        receivers: { otlp: { protocols: { http: { endpoint: '127.0.0.1:0' } } } },
        processors: { correlate: { window: options.window ?? '4s' }, overview: {} },
        exporters: { gelf: { endpoint: `tcp://127.0.0.1:${gelf.port}` } },
        storage: { sqlite: { path: join(dir, 'bitville.db') } },
        service: {
          pipelines: {
            traces: { receivers: ['otlp'], processors: ['correlate', 'overview'], exporters: ['gelf'] },
            logs: { receivers: ['otlp'], processors: ['overview'], exporters: ['gelf'] },
          },
          telemetry: { metrics: { address: '127.0.0.1:0' } },
        },
      }),
    );
    const collector = await startProcess(dir, 'collector', [CLI, 'collector', '--config', collectorConfig], running, ['OTLP/HTTP receiver listening', 'admin server listening', 'collector started']);
    const otlpUrl = `http://127.0.0.1:${collector.get('OTLP/HTTP receiver listening')!.port}`;
    const adminUrl = `http://127.0.0.1:${collector.get('admin server listening')!.port}`;

    // Both agents export quickly (short batches) so the demo does not wait on the 5 s default.
    const agent = (name: string) => ({
      project: PROJECT,
      exporter: { endpoint: otlpUrl, retry_backoff: ['500ms', '2s'] },
      batch: { timeout: '200ms' },
      buffer: { path: join(dir, `${name}.db`) },
      metrics: { address: '127.0.0.1:0' },
    });
    const socket = join(dir, 'run', 'php-agent.sock');
    const phpAgentConfig = join(dir, 'php-agent.yaml');
    writeFileSync(phpAgentConfig, stringify({ ...agent('php-agent'), socket: { path: socket } }));
    await startProcess(dir, 'php-agent', [CLI, 'php-agent', '--config', phpAgentConfig], running, ['php-agent listening']);

    const pgAgentConfig = join(dir, 'pg-agent.yaml');
    writeFileSync(
      pgAgentConfig,
      stringify({ ...agent('pg-agent'), postgres: { dsn: pgDsn }, log_source: { enabled: logSource }, statements: { enabled: false } }),
    );
    await startProcess(dir, 'pg-agent', [CLI, 'pg-agent', '--config', pgAgentConfig], running, ['pg-agent: capturing']);

    const port = await freePort();
    const settings = { socket, project: PROJECT, threshold_ms: '300', state_file: join(dir, 'php-agent.breaker') };
    const php = spawn(
      'php',
      ['-d', `auto_prepend_file=${AGENT_PHP}`, ...Object.entries(settings).flatMap(([k, v]) => ['-d', `bitville.${k}=${v}`]), '-S', `127.0.0.1:${port}`, '-t', APP_DIR],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BITVILLE_DEMO_CONNINFO: phpConninfo(pgDsn, logSource), PHP_CLI_SERVER_WORKERS: '1' } },
    );
    const phpExited = once(php, 'exit');
    running.push({ name: 'php', child: php, exited: phpExited });
    const phpLog = createWriteStream(join(dir, 'php.log'));
    await new Promise<void>((resolve, reject) => {
      let text = '';
      php.stderr!.on('data', (d: Buffer) => {
        phpLog.write(d);
        text += d.toString();
        if (text.includes('started')) resolve();
      });
      void phpExited.then(() => reject(new Error(`php -S exited: ${text}`)));
    });
    return { appUrl: `http://127.0.0.1:${port}`, adminUrl, otlpUrl, collectorConfig, gelf, logSource, phpAgentSocket: socket, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Creates the demo's schema and rows (idempotent). Returns whether the server writes a
 * structured log the pg-agent can follow (then every statement is captured with its exact
 * duration; else sampling alone, which sees statements longer than its 100 ms poll).
 */
async function prepareDatabase(pgDsn: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: pgDsn, application_name: 'bitville-demo-setup' });
  await client.connect();
  try {
    await client.query(`
      CREATE SCHEMA IF NOT EXISTS bitville_demo;
      CREATE TABLE IF NOT EXISTS bitville_demo.orders (id int PRIMARY KEY, customer text NOT NULL, seen_at timestamptz);
      CREATE TABLE IF NOT EXISTS bitville_demo.order_items (order_id int NOT NULL REFERENCES bitville_demo.orders(id), sku text NOT NULL, qty int NOT NULL);
      INSERT INTO bitville_demo.orders (id, customer) SELECT n, 'customer-' || (n % 5) FROM generate_series(1, 50) n ON CONFLICT DO NOTHING;
      INSERT INTO bitville_demo.order_items (order_id, sku, qty)
        SELECT n, 'sku-' || k, k FROM generate_series(1, 50) n, generate_series(1, 3) k
        WHERE NOT EXISTS (SELECT 1 FROM bitville_demo.order_items);`);
    const row = (await client.query(`SELECT current_setting('logging_collector') AS collector, current_setting('log_destination') AS destination`)).rows[0] as {
      collector: string;
      destination: string;
    };
    return row.collector === 'on' && /jsonlog|csvlog/.test(row.destination);
  } finally {
    await client.end();
  }
}

/** libpq conninfo for PHP; with the log source, its sessions log every statement's duration. */
function phpConninfo(pgDsn: string, logSource: boolean): string {
  const u = new URL(pgDsn);
  const parts = [`host=${u.hostname}`, `port=${u.port || 5432}`, `dbname=${decodeURIComponent(u.pathname.slice(1))}`, `user=${decodeURIComponent(u.username)}`];
  if (u.password) parts.push(`password=${decodeURIComponent(u.password)}`);
  if (logSource) parts.push(`options='-c log_min_duration_statement=0'`);
  return parts.join(' ');
}

/** Spawns a bitville process, its JSON log to `<dir>/<name>.log`; resolves with the awaited log lines. */
async function startProcess(dir: string, name: string, args: string[], running: Running[], await_: string[]): Promise<Map<string, Record<string, any>>> {
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  running.push({ name, child, exited });
  const log = createWriteStream(join(dir, `${name}.log`));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    log.write(d);
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const seen = new Map<string, Record<string, any>>();
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      log.write(text + '\n');
      try {
        const line = JSON.parse(text) as Record<string, any>;
        if (await_.includes(line.msg) && !seen.has(line.msg)) seen.set(line.msg, line);
        if (seen.size === await_.length) resolve();
      } catch {
        // not a log line
      }
    });
    void exited.then(([code]) => reject(new Error(`${name} exited (${code}) while starting; see ${join(dir, `${name}.log`)}: ${stderr}`)));
  });
  return seen;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}`))));
  });
}
