// Replay of a stored backlog to a loopback GELF TCP receiver, through the real path: SQLite
// store -> export queue -> gelf exporter (serializer + TCP transport) -> socket, with each
// batch marked in the store. Baselines, in the same run: the raw read-and-write loop (the same
// rows read in pages, their frames written, no serialization, no marks), the same frames
// written over one socket with no store at all, and the serializing loop (pages read through the
// store, parsed, serialized and framed as the encoder thread does, one write each, no queue, no
// marks: what one thread can reach). Prints medians of several runs and the ratios.
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { fileURLToPath } from 'node:url';
import { ExportQueue } from '../collector/core/export-queue.js';
import type { FlatRecord, StoredRecord } from '../collector/core/model.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { Telemetry } from '../collector/core/telemetry.js';
import { GelfExporter } from '../plugins/gelf/exporter.js';
import { serialize } from '../plugins/gelf/serializer.js';
import { encodeFrame } from '../plugins/gelf/batch-encoder.js';
import { TCP_MAX_MESSAGE_BYTES } from '../plugins/gelf/tcp.js';
import { gelfConfig, memoryState } from '../plugins/gelf/exporter.fixture.js';

const RECORDS = Number(process.env.GELF_BENCH_RECORDS ?? 200_000);
const RUNS = Number(process.env.GELF_BENCH_RUNS ?? 3);
const BATCH = 500;

/** A PHP request span like the agents send (about 1.2 kB as GELF). */
export function record(i: number): FlatRecord {
  const start = 1_764_064_800_000_000_000n + BigInt(i) * 1_000_000n;
  const traceId = i.toString(16).padStart(32, '0');
  return {
    kind: 'span',
    resource: { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent' },
    scope: { name: 'bitville.php', version: '1.0.0', attributes: {} },
    attributes: {
      'bitville.correlation_id': traceId,
      'http.request.method': 'GET',
      'url.full': `https://shop.example/item/${i}?ref=home`,
      'http.response.status_code': 200,
      'user_agent.original': 'Mozilla/5.0 (X11; Linux x86_64)',
    },
    traceId,
    spanId: i.toString(16).padStart(16, '0'),
    correlationId: traceId,
    parentSpanId: '',
    traceState: '',
    name: `GET /item/{id}`,
    spanKind: 2,
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: (start + 612_000_000n).toString(),
    durationMs: 612,
    status: { code: 0, message: '' },
    events: [],
    links: [],
    flags: 1,
  };
}

/** A GELF TCP sink that only counts null-terminated frames (Graylog's framing). */
async function frameCounter(): Promise<{ server: Server; port: number; waitFor(n: number): Promise<void>; reset(): void }> {
  let count = 0;
  let target = Infinity;
  let done: (() => void) | undefined;
  const server = createServer((socket) => {
    socket.on('data', (data: Buffer) => {
      for (let i = data.indexOf(0); i !== -1; i = data.indexOf(0, i + 1)) count++;
      if (count >= target && done) {
        done();
        done = undefined;
      }
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as { port: number }).port,
    reset: () => (count = 0),
    waitFor: (n) =>
      new Promise<void>((resolve) => {
        target = n;
        if (count >= n) resolve();
        else done = resolve;
      }),
  };
}

import { median } from './util.js';

export default async function gelfReplayBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-gelf-bench-'));
  const sink = await frameCounter();
  const dbPath = join(dir, 'bitville.db');
  const store = new SqliteStore({ path: dbPath, retentionMs: 7 * 86_400_000, maxSizeBytes: 10 * 1024 ** 3, synchronous: 'NORMAL' });
  try {
    await store.configureExporters([{ id: 'gelf', signals: ['traces', 'logs'] }]);
    for (let i = 0; i < RECORDS; i += 5000) {
      await store.append(Array.from({ length: Math.min(5000, RECORDS - i) }, (_, k) => record(i + k)));
    }
    const telemetry = new Telemetry(pino({ level: 'warn' }));
    const config = gelfConfig({ endpoint: `tcp://127.0.0.1:${sink.port}`, batch_size: BATCH, ...(process.env.GELF_BENCH_EXTRA ? JSON.parse(process.env.GELF_BENCH_EXTRA) : {}) });

    // The same frames the exporter writes, prepared ahead for the baseline.
    const serializerOptions = { defaultHost: 'bench', maxFieldBytes: 32_000, maxFullMessageBytes: 256 * 1024 };
    const stored = (await store.pending('gelf', RECORDS)) as StoredRecord[];
    const frames = stored.map((r) => {
      const s = serialize(r, serializerOptions);
      if ('error' in s) throw new Error(s.error);
      return s.json;
    });
    const frameBytes = frames.reduce((n, f) => n + Buffer.byteLength(f) + 1, 0);

    const replay: number[] = [];
    const baseline: number[] = [];
    const frameById = new Map(stored.map((r, i) => [r.id, frames[i]!]));
    const rawLoop: number[] = [];
    const serializingLoop: number[] = [];
    /** Process CPU (all threads, the sink included) during replay, in cores. */
    const replayCpu: number[] = [];
    const reset = new Database(dbPath);
    const page = reset.prepare('SELECT id, body FROM records WHERE id > ? ORDER BY id LIMIT ?');
    const resetBacklog = () =>
      reset.exec(`UPDATE records SET forwarded_to_graylog = 0;
        DELETE FROM delivery_ranges WHERE exporter = (SELECT num FROM exporters WHERE id = 'gelf');
        INSERT INTO delivery_ranges (exporter, from_id, to_id) SELECT e.num, min(r.id), max(r.id) FROM exporters e, records r WHERE e.id = 'gelf'`);
    for (let run = 0; run < RUNS; run++) {
      // Replay: a fresh backlog of RECORDS unforwarded records.
      // (Pending means an id range of the exporter's; the column is the GELF flag users read.)
      resetBacklog();
      sink.reset();
      const exporter = new GelfExporter(config, {
        id: 'gelf',
        logger: telemetry.logger,
        metrics: telemetry.forComponent('exporter', `gelf-${run}`),
        dataDir: dir,
        signals: ['traces', 'logs'],
        state: memoryState(),
      });
      await exporter.start();
      const queue = new ExportQueue('gelf', exporter, store, telemetry.logger, telemetry.forComponent('exporter', `gelf-${run}`));
      const started = performance.now();
      const cpu0 = process.cpuUsage();
      const windowStart = process.hrtime.bigint();
      const arrived = sink.waitFor(RECORDS);
      queue.start();
      await arrived;
      await queue.shutdown(); // waits for the last batch to be marked
      const elapsedMs = performance.now() - started;
      const cpu = process.cpuUsage(cpu0);
      replay.push(RECORDS / (elapsedMs / 1000));
      replayCpu.push((cpu.user + cpu.system) / 1000 / elapsedMs);
      // For a CPU profile of the replay alone: its window on the profiler's clock (µs, monotonic).
      if (process.env.GELF_BENCH_WINDOW) console.log(`  replay window ${Number(windowStart / 1000n)}..${Number(process.hrtime.bigint() / 1000n)} µs`);
      await exporter.shutdown();
      const left = await store.backlog('gelf');
      if (left !== 0) throw new Error(`replay left ${left} records unmarked`);

      // Baseline: the same frames, same batches, one socket, awaiting each write's flush.
      sink.reset();
      const socket = connect(sink.port, '127.0.0.1');
      await once(socket, 'connect');
      const t0 = performance.now();
      const all = sink.waitFor(RECORDS);
      for (let i = 0; i < frames.length; i += BATCH) {
        const chunk = frames.slice(i, i + BATCH).join('\0') + '\0';
        await new Promise<void>((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve())));
      }
      await all;
      baseline.push(RECORDS / ((performance.now() - t0) / 1000));

      // Raw read-and-write loop: the least any replay does. Reads the same rows (id and stored
      // JSON text, no parse) in pages of BATCH by id, and writes each page's frames in one
      // write, awaiting its flush. No serialization, no delivery marks.
      sink.reset();
      const t1 = performance.now();
      const read = sink.waitFor(RECORDS);
      let after = 0;
      for (;;) {
        const rows = page.all(after, BATCH) as { id: number; body: string }[];
        if (rows.length === 0) break;
        const chunk = rows.map((row) => frameById.get(row.id)!).join('\0') + '\0';
        await new Promise<void>((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve())));
        after = rows.at(-1)!.id;
      }
      await read;
      rawLoop.push(RECORDS / ((performance.now() - t1) / 1000));

      // Serializing loop: the raw loop plus the parse, the serializer and the framing, still with
      // no queue, no confirm window and no marks. The most a replay on one thread can reach.
      resetBacklog();
      sink.reset();
      const t2 = performance.now();
      const serialized = sink.waitFor(RECORDS);
      let from = 0;
      for (;;) {
        const batch = await store.pendingTexts('gelf', BATCH, from);
        if (batch.length === 0) break;
        const chunk = encodeFrame(batch, serializerOptions, TCP_MAX_MESSAGE_BYTES).frame;
        await new Promise<void>((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve())));
        from = batch.at(-1)!.id;
      }
      await serialized;
      serializingLoop.push(RECORDS / ((performance.now() - t2) / 1000));
      socket.destroy();
    }
    reset.close();
    const r = median(replay);
    const b = median(baseline);
    const raw = median(rawLoop);
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log(`gelf-replay: ${fmt(RECORDS)} stored records (${(frameBytes / RECORDS).toFixed(0)} B/frame), ${RUNS} runs, batch ${BATCH}, medians`);
    console.log(`  replay (store -> serializer -> TCP, marked): median ${fmt(r)} records/s  [${replay.map(fmt).join(', ')}], process CPU ${(median(replayCpu) * 100).toFixed(0)}% of a core`);
    console.log(`  raw loop (read the rows in pages, write their frames): median ${fmt(raw)} records/s  [${rawLoop.map(fmt).join(', ')}]`);
    console.log(`  frames only (same frames, one socket, no store): median ${fmt(b)} records/s  [${baseline.map(fmt).join(', ')}]`);
    const ser = median(serializingLoop);
    console.log(`  serializing loop (raw loop + parse + serializer, no queue, no marks): median ${fmt(ser)} records/s  [${serializingLoop.map(fmt).join(', ')}]`);
    console.log(
      `  ratio replay/raw loop: ${(r / raw).toFixed(2)}; replay/frames only: ${(r / b).toFixed(2)}; serializing loop/raw loop: ${(ser / raw).toFixed(2)}; replay/serializing loop: ${(r / ser).toFixed(2)}  (aim: replay/raw loop >= 0.5)`,
    );
  } finally {
    await store.close();
    sink.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await gelfReplayBench();
