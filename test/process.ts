// A `bitville` sub-command as a child process for tests: its JSON log lines collected and
// awaitable, stopped with SIGTERM or SIGKILL, and always killed when the test ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { repoRoot } from './env.js';

export const CLI = join(repoRoot, 'dist', 'collector', 'app', 'cli.js');

export type LogLine = Record<string, any>;

export interface LoggedProcess {
  process: ChildProcess;
  /** Every JSON log line so far. */
  logs: LogLine[];
  /** Resolves with the first log line (past or future) that matches; rejects if the process exits first. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
}

export function spawnBitville(t: TestContext, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): LoggedProcess {
  const name = args[0] ?? 'bitville';
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  t.after(async () => {
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const logs: LogLine[] = [];
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text);
    } catch {
      return; // not a log line
    }
    logs.push(line);
    for (const w of waiters) {
      if (w.match(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  const waitForLog = (match: (l: LogLine) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`${name} log line not seen within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      const w = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.add(w);
      void exited.then((code) => {
        if (!waiters.has(w)) return;
        waiters.delete(w);
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before the expected log line; stderr: ${stderr}`));
      });
    });
  };
  return {
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
