// OTLP/HTTP protobuf ingest to durable commit, on loopback, with batches of 100 realistic spans.
//  - baseline: protobufjs decode + flattening + SQLite insert of batches from the same source in one thread, no HTTP
//  - peak: several concurrent senders against a collector process (spans/s, latency, peak RSS),
//    over OTLP/HTTP and over OTLP/gRPC, alternating in the same run
//  - steady: one sender at a fixed 10,000 spans/s (collector CPU and RSS)
import * as grpc from '@grpc/grpc-js';
import { Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opentelemetry } from '../proto/generated/otlp.js';
import { flattenTraces } from '../plugins/otlp/decode.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { BatchSource } from './spans.js';
import { cpuSeconds, median, memoryMiB, percentile, post, startBenchCollector, type BenchCollector } from './util.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;
const RUNS = 3;
const BATCH = 100;
// Every request carries a fresh trace id and later times than the one before, as real senders' do.
const source = new BatchSource(BATCH);

export async function baseline(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-bench-'));
  const store = new SqliteStore({ path: join(dir, 'b.db'), retentionMs: 7 * 86_400_000, maxSizeBytes: 10 * 1024 ** 3, synchronous: 'NORMAL' });
  await store.configureExporters([]);
  const n = 500;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const flat = flattenTraces(ExportTraceServiceRequest.decode(source.next()));
    await store.append(flat.records);
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return (n * BATCH) / seconds;
}

/**
 * `senders` concurrent loops, each sending batches through `send(sender, body)` (true when
 * accepted) for `seconds`; the collector's rate, latency, CPU and peak RSS over that time.
 */
async function load(collector: BenchCollector, senders: number, seconds: number, send: (sender: number, body: Buffer) => Promise<boolean>) {
  const pid = collector.process.pid!;
  const latencies: number[] = [];
  let spans = 0;
  let refused = 0;
  const cpu0 = cpuSeconds(pid);
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: senders }, async (_, s) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const ok = await send(s, source.next());
        latencies.push(performance.now() - t0);
        if (ok) spans += BATCH;
        else refused++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = (cpuSeconds(pid) - cpu0) / elapsed;
  return { rate: spans / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), peakRss: memoryMiB(pid).peak, cpu, refused };
}

/**
 * `extra`: config merged over the bench collector's (another pipeline, exporters). `warmup`:
 * seconds of the same load before measuring (a correlate processor joins nothing until its
 * window has passed, so a pipeline with it is measured after the window).
 */
export async function peak(senders: number, seconds: number, extra: Record<string, unknown> = {}, warmup = 0) {
  const collector = await startBenchCollector(extra);
  const url = new URL(`${collector.otlpUrl}/v1/traces`);
  const agent = new Agent({ keepAlive: true, maxSockets: senders });
  const send = async (_s: number, body: Buffer) => (await post(url, agent, body)) === 200;
  if (warmup > 0) await load(collector, senders, warmup, send);
  const result = await load(collector, senders, seconds, send);
  agent.destroy();
  await collector.stop();
  rmSync(collector.dir, { recursive: true, force: true });
  return result;
}

const GRPC_TRACES = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/** The same load as peak() over OTLP/gRPC: one channel (connection) per sender, unary Export calls. */
async function peakGrpc(senders: number, seconds: number) {
  const collector = await startBenchCollector({
    receivers: {
      otlp: {
        protocols: {
          http: { endpoint: '127.0.0.1:0', max_concurrent_requests: 64 },
          grpc: { endpoint: '127.0.0.1:0', max_concurrent_requests: 64 },
        },
      },
    },
  });
  const clients = Array.from({ length: senders }, () => new grpc.Client(collector.grpcAddress!, grpc.credentials.createInsecure()));
  const call = (client: grpc.Client, body: Buffer) =>
    new Promise<boolean>((resolve) => {
      client.makeUnaryRequest(GRPC_TRACES, (b: Buffer) => b, (b: Buffer) => b, body, new grpc.Metadata(), {}, (err) => resolve(!err));
    });
  // One call per channel first, so connection set-up is not measured.
  await Promise.all(clients.map((c) => call(c, source.next())));
  const result = await load(collector, senders, seconds, (s, body) => call(clients[s]!, body));
  for (const c of clients) c.close();
  await collector.stop();
  rmSync(collector.dir, { recursive: true, force: true });
  return result;
}

/** `warmup`: seconds at the same rate before measuring (at least one). */
export async function steady(rate: number, seconds: number, extra: Record<string, unknown> = {}, warmup = 1) {
  const collector = await startBenchCollector(extra);
  const url = new URL(`${collector.otlpUrl}/v1/traces`);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const perSecond = rate / BATCH;
  // Warm up, then measure.
  const send = async (count: number) => {
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const due = start + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await post(url, agent, source.next());
    }
  };
  await send(perSecond * Math.max(1, warmup));
  const pid = collector.process.pid!;
  const cpu0 = cpuSeconds(pid);
  const main0 = cpuSeconds(pid, true);
  const t0 = performance.now();
  await send(perSecond * seconds);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = (cpuSeconds(pid) - cpu0) / elapsed;
  const mainCpu = (cpuSeconds(pid, true) - main0) / elapsed;
  const mem = memoryMiB(pid);
  agent.destroy();
  await collector.stop();
  rmSync(collector.dir, { recursive: true, force: true });
  return { cpuPercent: cpu * 100, mainCpuPercent: mainCpu * 100, rss: mem.rss, peakRss: mem.peak, achieved: (perSecond * seconds * BATCH) / elapsed };
}

export default async function run(): Promise<void> {
  const base: number[] = [];
  const peaks: Awaited<ReturnType<typeof peak>>[] = [];
  const grpcPeaks: Awaited<ReturnType<typeof peakGrpc>>[] = [];
  for (let r = 0; r < RUNS; r++) {
    base.push(await baseline());
    peaks.push(await peak(4, 5));
    grpcPeaks.push(await peakGrpc(4, 5));
  }
  const b = median(base);
  const p = median(peaks.map((x) => x.rate));
  console.log(`baseline (decode + flatten + SQLite insert, one thread): ${b.toFixed(0)} spans/s (median of ${RUNS}: ${base.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`peak, 4 senders, 100-span batches: ${p.toFixed(0)} spans/s (median of ${RUNS}: ${peaks.map((x) => x.rate.toFixed(0)).join(', ')}); ratio to baseline ${(p / b).toFixed(2)}`);
  console.log(
    `  request latency p50 ${median(peaks.map((x) => x.p50)).toFixed(1)} ms, p99 ${median(peaks.map((x) => x.p99)).toFixed(1)} ms; collector CPU ${(median(peaks.map((x) => x.cpu)) * 100).toFixed(0)}% of one core; peak RSS ${median(peaks.map((x) => x.peakRss)).toFixed(0)} MiB; refused requests ${peaks.map((x) => x.refused).join(', ')}`,
  );
  const g = median(grpcPeaks.map((x) => x.rate));
  console.log(`peak over OTLP/gRPC, 4 senders, 100-span batches: ${g.toFixed(0)} spans/s (median of ${RUNS}: ${grpcPeaks.map((x) => x.rate.toFixed(0)).join(', ')}); ratio to OTLP/HTTP ${(g / p).toFixed(2)}, to baseline ${(g / b).toFixed(2)}`);
  console.log(
    `  call latency p50 ${median(grpcPeaks.map((x) => x.p50)).toFixed(1)} ms, p99 ${median(grpcPeaks.map((x) => x.p99)).toFixed(1)} ms; collector CPU ${(median(grpcPeaks.map((x) => x.cpu)) * 100).toFixed(0)}% of one core; peak RSS ${median(grpcPeaks.map((x) => x.peakRss)).toFixed(0)} MiB; refused calls ${grpcPeaks.map((x) => x.refused).join(', ')}`,
  );
  const steadies = [];
  for (let r = 0; r < RUNS; r++) steadies.push(await steady(10_000, 5));
  console.log(
    `steady 10,000 spans/s (one sender): collector CPU ${median(steadies.map((s) => s.cpuPercent)).toFixed(1)}% of one core, RSS ${median(steadies.map((s) => s.rss)).toFixed(0)} MiB (medians of ${RUNS}; achieved ${median(steadies.map((s) => s.achieved)).toFixed(0)} spans/s)`,
  );
}
