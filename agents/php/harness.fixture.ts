// Test support: a real php-agent daemon process and a real `php -S` server with agent.php
// prepended, both on loopback / in temporary directories.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { repoRoot } from '../../test/env.js';
import { CLI, spawnBitville } from '../../test/process.js';

export const AGENT_PHP = join(repoRoot, 'agents', 'php', 'agent.php');
export const PAGES = join(repoRoot, 'agents', 'php', 'testdata');

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A libpq conninfo string for PHP's pg_connect, from a postgres:// URL. */
export function pgConninfo(dsn: string): string {
  const u = new URL(dsn);
  return `host=${u.hostname} port=${u.port || 5432} dbname=${decodeURIComponent(u.pathname.slice(1))} user=${decodeURIComponent(u.username)}`;
}

export interface RunningDaemon {
  process: ChildProcess;
  metricsUrl: string;
  socketPath: string;
  logs: Record<string, any>[];
  kill(): Promise<void>;
  stop(): Promise<void>;
  metric(line: string): Promise<number>;
}

/** The config a test daemon runs with: short batching and backoff, files under `dir`. */
export function daemonConfig(dir: string, endpoint: string, extra: Record<string, unknown> = {}) {
  return {
    project: 'shop',
    exporter: { endpoint, retry_backoff: ['100ms'], breaker: { failures: 1000, open_for: '1s' } },
    batch: { max_events: 100, timeout: '50ms' },
    buffer: { path: join(dir, 'php-agent.db'), persist_interval: '10ms' },
    metrics: { address: '127.0.0.1:0' },
    socket: { path: join(dir, 'run', 'php-agent.sock') },
    ...extra,
  };
}

export async function startDaemon(t: TestContext, config: Record<string, any>): Promise<RunningDaemon> {
  const configPath = join(config.buffer.path + `.${process.hrtime.bigint()}.yaml`);
  writeFileSync(configPath, stringify(config));
  const run = spawnBitville(t, ['php-agent', '--config', configPath]);
  const { metrics } = await run.waitForLog((l) => l.msg === 'php-agent listening');
  return {
    process: run.process,
    metricsUrl: metrics,
    socketPath: config.socket.path,
    logs: run.logs,
    kill: run.kill,
    stop: async () => {
      await run.stop();
    },
    metric: async (line: string) => {
      const text = await (await fetch(metrics)).text();
      const found = text.split('\n').find((l) => l.startsWith(line + ' '));
      return found ? Number(found.split(' ').pop()) : 0;
    },
  };
}

/** Runs the daemon command to its end (for refusals): exit code and stderr. */
export async function runDaemonToExit(config: Record<string, any>): Promise<{ code: number | null; stderr: string }> {
  const configPath = join(config.buffer.path + `.${process.hrtime.bigint()}.yaml`);
  writeFileSync(configPath, stringify(config));
  const child = spawn(process.execPath, [CLI, 'php-agent', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

export interface PhpServer {
  url: string;
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
}

/** `php -S` on a free loopback port serving testdata/ with agent.php prepended (`phpArgs` go first, e.g. `-d extension=excimer`). */
export async function startPhp(t: TestContext, settings: Record<string, string>, env: NodeJS.ProcessEnv = {}, phpArgs: string[] = []): Promise<PhpServer> {
  const port = await freePort();
  const ini = Object.entries(settings).flatMap(([k, v]) => ['-d', `bitville.${k}=${v}`]);
  const child = spawn('php', [...phpArgs, '-d', `auto_prepend_file=${AGENT_PHP}`, ...ini, '-S', `127.0.0.1:${port}`, '-t', PAGES], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PHP_CLI_SERVER_WORKERS: '1', ...env },
  });
  const exited = once(child, 'exit');
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    let text = '';
    child.stderr!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('started')) resolve();
    });
    void exited.then(() => reject(new Error(`php -S exited: ${text}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    async get(path, headers = {}) {
      const res = await fetch(url + path, { headers });
      return { status: res.status, body: await res.text() };
    },
  };
}

let excimerProbe: { args: string[] } | { missing: string } | undefined;
/**
 * How to run php with the excimer extension: no arguments when it is enabled (Debian's
 * php-excimer), `-d extension=excimer` when only installed; else why it is missing.
 */
export function excimer(): { args: string[] } | { missing: string } {
  if (excimerProbe) return excimerProbe;
  const has = (args: string[]) => {
    try {
      return /^excimer$/m.test(execFileSync('php', [...args, '-m'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    } catch {
      return false;
    }
  };
  if (has([])) excimerProbe = { args: [] };
  else if (has(['-d', 'extension=excimer'])) excimerProbe = { args: ['-d', 'extension=excimer'] };
  else excimerProbe = { missing: 'the excimer PHP extension is not installed (apt-get install php-excimer; .ci/run installs it)' };
  return excimerProbe;
}

/**
 * An environment whose PHP loads every extension the system enables except excimer (a copy of
 * the scanned ini directory without it), to check the agent without the profiler.
 */
export function withoutExcimer(dir: string): NodeJS.ProcessEnv {
  const scan = execFileSync('php', ['-r', 'echo PHP_CONFIG_FILE_SCAN_DIR;'], { encoding: 'utf8' }).trim();
  const copy = join(dir, 'conf.d');
  mkdirSync(copy, { recursive: true });
  for (const name of scan ? readdirSync(scan) : []) {
    if (!/excimer/.test(name)) symlinkSync(join(scan, name), join(copy, name));
  }
  return { PHP_INI_SCAN_DIR: copy };
}
