// Small shared pieces for benchmarks: statistics, process sampling, a collector process.
import { spawn, type ChildProcess } from 'node:child_process';
import { request, type Agent } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const CLI = fileURLToPath(new URL('../collector/app/cli.js', import.meta.url));

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds (user + system) a process has used so far, all its threads; with `mainThread`, its
 * main thread's alone (the one JavaScript thread that decodes, stores and runs the pipeline).
 */
export function cpuSeconds(pid: number, mainThread = false): number {
  const fields = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** Resident and peak resident memory of a process, in MiB. */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

export interface BenchCollector {
  otlpUrl: string;
  /** host:port of OTLP/gRPC, when the config enables it. */
  grpcAddress?: string;
  process: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

/** Starts a collector process with the given config (merged into a minimal one). */
export async function startBenchCollector(extra: Record<string, unknown> = {}): Promise<BenchCollector> {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-bench-'));
  const config = {
    receivers: { otlp: { protocols: { http: { endpoint: '127.0.0.1:0', max_concurrent_requests: 64, decode_workers: Number(process.env.DECODE_WORKERS ?? 0) } } } },
    storage: { sqlite: { path: join(dir, 'bench.db') } },
    service: {
      pipelines: { traces: { receivers: ['otlp'], exporters: [] } },
      telemetry: { metrics: { address: '127.0.0.1:0' }, logs: { level: 'info' } },
    },
    ...extra,
  };
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify(config));
  // stderr is where the debug exporter prints; a benchmark shows its own figures only.
  const child = spawn(process.execPath, [CLI, 'collector', '--config', file], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env } });
  let grpcPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`collector exited with ${code}`)));
    let httpPort = 0;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const l = JSON.parse(line);
        if (l.msg === 'OTLP/HTTP receiver listening') httpPort = l.port;
        if (l.msg === 'OTLP/gRPC receiver listening') grpcPort = l.port;
        if (l.msg === 'collector started') resolve(httpPort);
      } catch {
        /* not a log line */
      }
    });
  });
  return {
    otlpUrl: `http://127.0.0.1:${port}`,
    ...(grpcPort ? { grpcAddress: `127.0.0.1:${grpcPort}` } : {}),
    process: child,
    dir,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** POSTs one OTLP protobuf body; resolves with the status once the answer is read. */
export function post(url: URL, agent: Agent, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(body);
  });
}
