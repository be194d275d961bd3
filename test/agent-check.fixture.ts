// Runs `bitville <agent> --check` as a process and splits its report into lines.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { CLI } from './process.js';

export interface CheckRun {
  code: number | null;
  lines: string[];
  stderr: string;
}

export async function runCheck(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CheckRun> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, lines: stdout.split('\n').filter(Boolean), stderr };
}

/** A loopback port nothing listens on (bound, then closed): connections to it are refused. */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The name of a group id, from /etc/group. */
export function groupNameOf(gid: number): string {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[2] === String(gid));
  if (!line) throw new Error(`no group with id ${gid} in /etc/group`);
  return line.split(':')[0]!;
}

export const LINE = /^(ok|warn|FAIL) \S/;
