// PostgreSQL store beside SQLite, in one run, on the machine's PostgreSQL (BITVILLE_TEST_PG or
// postgres://postgres@127.0.0.1:5432/test; skipped with a message when it does not answer):
//  - baseline: PostgresStore.append of pre-decoded 100-span batches, one thread, no HTTP
//  - ingest: 4 concurrent OTLP/HTTP protobuf senders against one SQLite collector, one
//    PostgreSQL collector, and two PostgreSQL collectors on one schema (senders split over both)
//  - forwarding: a backlog of records drained by a no-op exporter in one and in two instances
// Each figure is the median of several runs; every run uses a schema of its own, dropped after.
import { Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { opentelemetry } from '../proto/generated/otlp.js';
import { flattenTraces } from '../plugins/otlp/decode.js';
import { PostgresStore } from '../collector/store/postgres.js';
import { spanBatch } from './spans.js';
import { median, post, startBenchCollector, type BenchCollector } from './util.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;
const DSN = process.env.BITVILLE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const RUNS = 3;
const BATCH = 100;
const SENDERS = 4;
const SECONDS = 4;
const BACKLOG = 20_000;
const batches = Array.from({ length: 20 }, () => Buffer.from(spanBatch(BATCH)));

const NOOP_EXPORTER = `export default {
  kind: 'exporter', type: 'noop',
  configSchema: (z) => z.strictObject({}),
  create: () => ({ batchSize: 500, async start() {}, async shutdown() {}, async export() { return { kind: 'success' }; } }),
};\n`;

async function query(text: string): Promise<any[]> {
  const client = new pg.Client({ connectionString: DSN });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

async function withSchema<T>(work: (schema: string) => Promise<T>): Promise<T> {
  const schema = `bv_bench_${randomBytes(4).toString('hex')}`;
  try {
    return await work(schema);
  } finally {
    await query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

const openStore = (schema: string) =>
  new PostgresStore({ dsn: DSN, schema, poolSize: 4, claimTimeoutMs: 30_000, retentionMs: 7 * 86_400_000, maxSizeBytes: 1e13, partitionsAhead: 1 });

const pgStorage = (schema: string) => ({ storage: { postgres: { dsn: DSN, schema } } });

async function baseline(): Promise<number> {
  return withSchema(async (schema) => {
    const store = openStore(schema);
    await store.configureExporters([]);
    const flat = batches.map((b) => flattenTraces(ExportTraceServiceRequest.decode(b)).records);
    const n = 300;
    const started = performance.now();
    for (let i = 0; i < n; i++) await store.append(flat[i % flat.length]!);
    const seconds = (performance.now() - started) / 1000;
    await store.close();
    return (n * BATCH) / seconds;
  });
}

/** Spans/s acknowledged by the collectors, senders spread round-robin over them. */
async function ingest(collectors: BenchCollector[]): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: SENDERS });
  let spans = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: SENDERS }, async (_, s) => {
      const url = new URL(`${collectors[s % collectors.length]!.otlpUrl}/v1/traces`);
      for (let i = s; performance.now() < deadline; i += SENDERS) {
        if ((await post(url, agent, batches[i % batches.length]!)) === 200) spans += BATCH;
      }
    }),
  );
  agent.destroy();
  return spans / ((performance.now() - started) / 1000);
}

async function stopAll(collectors: BenchCollector[]): Promise<void> {
  await Promise.all(collectors.map((c) => c.stop()));
  for (const c of collectors) rmSync(c.dir, { recursive: true, force: true });
}

async function ingestRun(kind: 'sqlite' | 'pg1' | 'pg2'): Promise<number> {
  if (kind === 'sqlite') {
    const c = [await startBenchCollector()];
    const rate = await ingest(c);
    await stopAll(c);
    return rate;
  }
  return withSchema(async (schema) => {
    const c = [await startBenchCollector(pgStorage(schema))];
    if (kind === 'pg2') c.push(await startBenchCollector(pgStorage(schema)));
    const rate = await ingest(c);
    await stopAll(c);
    return rate;
  });
}

/** Records/s forwarded by `instances` collectors draining a backlog through a no-op exporter. */
async function forwarding(instances: number, pluginFile: string): Promise<number> {
  return withSchema(async (schema) => {
    const config = {
      ...pgStorage(schema),
      plugins: [pluginFile],
      exporters: { noop: {} },
      service: { pipelines: { traces: { receivers: ['otlp'], exporters: ['noop'] } }, telemetry: { metrics: { address: '127.0.0.1:0' } } },
    };
    const collectors = await Promise.all(Array.from({ length: instances }, () => startBenchCollector(config)));
    // The whole backlog lands in one commit; its NOTIFY wakes every instance at once.
    const store = openStore(schema);
    await store.configureExporters([{ id: 'noop', signals: ['traces'] }]);
    const flat = batches.map((b) => flattenTraces(ExportTraceServiceRequest.decode(b)).records);
    await store.append(Array.from({ length: BACKLOG / BATCH }, (_, i) => flat[i % flat.length]!).flat());
    const started = performance.now();
    await store.close();
    for (;;) {
      const [{ n }] = await query(`SELECT count(*)::int AS n FROM "${schema}".delivery_ranges`);
      if (n === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - started) / 1000;
    await stopAll(collectors);
    return BACKLOG / seconds;
  });
}

export default async function run(): Promise<void> {
  try {
    await query('SELECT 1');
  } catch (err) {
    console.log(`skipped: PostgreSQL is not answering at ${DSN} (${(err as Error).message})`);
    return;
  }
  const base: number[] = [];
  const rates = { sqlite: [] as number[], pg1: [] as number[], pg2: [] as number[] };
  for (let r = 0; r < RUNS; r++) {
    base.push(await baseline());
    for (const kind of ['sqlite', 'pg1', 'pg2'] as const) rates[kind].push(await ingestRun(kind));
  }
  const b = median(base);
  const fmt = (xs: number[]) => `${median(xs).toFixed(0)} spans/s (runs: ${xs.map((x) => x.toFixed(0)).join(', ')}); ratio to baseline ${(median(xs) / b).toFixed(2)}`;
  console.log(`baseline (PostgresStore.append of decoded 100-span batches, one thread): ${b.toFixed(0)} spans/s (runs: ${base.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`ingest, ${SENDERS} senders, ${BATCH}-span protobuf batches, ${SECONDS} s, medians of ${RUNS}:`);
  console.log(`  SQLite, 1 instance:          ${fmt(rates.sqlite)}`);
  console.log(`  PostgreSQL, 1 instance:      ${fmt(rates.pg1)}`);
  console.log(`  PostgreSQL, 2 instances:     ${fmt(rates.pg2)}`);

  const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'bitville-bench-'));
  const plugin = join(dir, 'noop-exporter.mjs');
  writeFileSync(plugin, NOOP_EXPORTER);
  const fwd = { one: [] as number[], two: [] as number[] };
  for (let r = 0; r < RUNS; r++) {
    fwd.one.push(await forwarding(1, plugin));
    fwd.two.push(await forwarding(2, plugin));
  }
  rmSync(dir, { recursive: true, force: true });
  const f = (xs: number[]) => `${median(xs).toFixed(0)} records/s (runs: ${xs.map((x) => x.toFixed(0)).join(', ')})`;
  console.log(`forwarding a ${BACKLOG}-record burst (one commit) through a no-op exporter (500-record claims), medians of ${RUNS}:`);
  console.log(`  PostgreSQL, 1 instance:      ${f(fwd.one)}`);
  console.log(`  PostgreSQL, 2 instances:     ${f(fwd.two)}`);
}
