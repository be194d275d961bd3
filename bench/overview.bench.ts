// The overview's queries on a store holding a week of rollups at 100 requests/s with 20
// statements each (30 endpoints, 150 distinct statements): every minute and hour row such a
// week leaves, written straight into the rollup table (building 60 million summaries and 1.2
// billion spans first would take this machine days; the overview never reads them anyway).
//  - each overview query (endpoints, statements, latency chart, one endpoint's chart) over 7 d,
//    24 h and 1 h, medians of RUNS runs
//  - baseline: reading the same rows raw (no parsing or summing), and what a full scan of the
//    week's summaries would cost instead (measured on 100,000 summaries, scaled to 60 million)
//  - commit cost: appending 100 summaries with their rollup contributions against without
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import type { DerivedRecord } from '../collector/core/api.js';
import { attachRollup, coveringRanges, ROLLUP_RESOLUTIONS } from '../collector/core/api.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { bucketField } from '../plugins/correlate/histogram.js';
import { endpoints, latency, statements, type TimeRange } from '../plugins/correlate/overview-queries.js';
import { SERIES } from '../plugins/correlate/rollup-names.js';
import { median } from './util.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const DAYS = 7;
const PER_SECOND = 100;
const STATEMENTS_PER_REQUEST = 20;
const ENDPOINTS = 30;
const STATEMENTS = 150;
const RUNS = 5;

/** A bell of bucket counts around `centerMs`, summing to about `n` (a stand-in for real latencies). */
function histogram(centerMs: number, n: number, spread: number): Record<string, number> {
  const fields: Record<string, number> = {};
  const weights: number[] = [];
  for (let j = -spread; j <= spread; j++) weights.push(Math.exp(-((j / (spread / 2.5)) ** 2)));
  const total = weights.reduce((a, b) => a + b, 0);
  weights.forEach((w, i) => {
    const count = Math.round((w / total) * n);
    if (count === 0) return;
    const f = bucketField(centerMs * 1.04 ** (i - spread));
    fields[f] = (fields[f] ?? 0) + count;
  });
  return fields;
}

function buildWeek(path: string, now: number): number {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const put = db.prepare('INSERT INTO rollups (series, resolution_ms, bucket_ms, key, fields) VALUES (?, ?, ?, ?, ?)');
  const from = Math.floor((now - DAYS * 86_400_000) / DAY) * DAY;
  const perMinute = PER_SECOND * 60;
  const endpointWeight = Array.from({ length: ENDPOINTS }, (_, i) => 1 / (i + 1));
  const ew = endpointWeight.reduce((a, b) => a + b, 0);
  let rows = 0;
  // The coarser rows as the store would have summed them: resolution -> bucket -> series\tkey -> fields.
  const coarse = new Map<number, Map<number, Map<string, Record<string, number>>>>(ROLLUP_RESOLUTIONS.slice(1).map((r) => [r, new Map()]));
  const flush = (resolution: number, before: number) => {
    const buckets = coarse.get(resolution)!;
    for (const [bucket, keys] of buckets) {
      if (bucket + resolution > before) continue;
      for (const [sk, f] of keys) {
        const [series, key] = sk.split('\t') as [string, string];
        put.run(series, resolution, bucket, key, JSON.stringify(f));
        rows++;
      }
      buckets.delete(bucket);
    }
  };
  const add = (series: string, key: string, minute: number, f: Record<string, number>) => {
    put.run(series, MINUTE, minute, key, JSON.stringify(f));
    rows++;
    for (const [resolution, buckets] of coarse) {
      const bucket = Math.floor(minute / resolution) * resolution;
      let keys = buckets.get(bucket);
      if (!keys) buckets.set(bucket, (keys = new Map()));
      const sum = keys.get(`${series}\t${key}`) ?? {};
      for (const [k, v] of Object.entries(f)) sum[k] = (sum[k] ?? 0) + v;
      keys.set(`${series}\t${key}`, sum);
    }
  };
  for (let hour = from; hour < now; hour += HOUR) {
    db.transaction(() => {
      for (let minute = hour; minute < hour + HOUR && minute < now; minute += MINUTE) {
        // Busier and slower in the afternoon.
        const load = 1 + 0.5 * Math.sin(((minute % DAY) / DAY) * 2 * Math.PI);
        for (let e = 0; e < ENDPOINTS; e++) {
          const n = Math.max(1, Math.round((perMinute * endpointWeight[e]!) / ew));
          const center = (40 + e * 15) * load;
          const f = histogram(center, n, 12);
          Object.assign(f, { n, ms: n * center, db: n * center * 0.3, q: n * STATEMENTS_PER_REQUEST, err: Math.round(n * 0.01), np1: Math.round(n * 0.05) });
          add(SERIES.endpoint, `GET /endpoint/${e}/:id`, minute, f);
        }
        for (let s = 0; s < STATEMENTS; s++) {
          const calls = Math.round((perMinute * STATEMENTS_PER_REQUEST) / STATEMENTS);
          const center = (0.3 + s * 0.2) * load;
          const f = histogram(center, calls, 8);
          Object.assign(f, { calls, ms: calls * center, reqs: Math.round(calls / 3), np1: s % 10 === 0 ? 50 : 0 });
          add(SERIES.statement, `select * from table_${s} where id = ?`, minute, f);
        }
      }
      for (const resolution of coarse.keys()) flush(resolution, Math.min(now, hour + HOUR));
    })();
  }
  db.transaction(() => {
    for (const resolution of coarse.keys()) flush(resolution, Infinity);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return rows;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

async function medianOf(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await timed(fn));
  return median(times);
}

function summaryRecord(i: number, now: number): DerivedRecord {
  return {
    kind: 'summary',
    resource: { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'correlate' },
    scope: { name: 'bitville.correlate', version: '', attributes: {} },
    attributes: {
      'http.request.method': 'GET',
      'url.full': `http://shop.example/endpoint/${i % ENDPOINTS}/${i}`,
      'http.response.status_code': 200,
      'bitville.db_time_ms': 30,
      'bitville.db_query_count': STATEMENTS_PER_REQUEST,
      'bitville.slowest_queries': Array.from({ length: 5 }, (_, q) => ({ query: `select * from table_${q} where id = ${i}`, duration_ms: 3, span_id: 'ab'.repeat(8) })),
      'bitville.n_plus_one': false,
      'bitville.summary.id': i.toString(16).padStart(16, '0'),
      'bitville.summary.revision': 1,
    },
    traceId: i.toString(16).padStart(32, '0'),
    spanId: i.toString(16).padStart(16, '0'),
    correlationId: i.toString(16).padStart(32, '0'),
    name: 'GET /endpoint',
    timeUnixNano: `${now}000000`,
    durationMs: 100,
  };
}

export default async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-overview-bench-'));
  try {
    const now = Date.now();
    const path = join(dir, 'week.db');
    await new SqliteStore({ path, retentionMs: 8 * 86_400_000, maxSizeBytes: 1e12, synchronous: 'NORMAL' }).close();
    const builtAt = performance.now();
    const rows = buildWeek(path, now);
    console.log(`week of rollups: ${rows} rows, ${(statSync(path).size / 2 ** 20).toFixed(0)} MiB, built in ${((performance.now() - builtAt) / 1000).toFixed(1)} s`);
    const store = new SqliteStore({ path, retentionMs: 8 * 86_400_000, maxSizeBytes: 1e12, synchronous: 'NORMAL', readOnly: true });
    const ranges: [string, TimeRange][] = [
      ['7d', { fromMs: Math.floor((now - 7 * 86_400_000) / MINUTE) * MINUTE, untilMs: Math.ceil(now / MINUTE) * MINUTE }],
      ['24h', { fromMs: Math.floor((now - 86_400_000) / MINUTE) * MINUTE, untilMs: Math.ceil(now / MINUTE) * MINUTE }],
      ['1h', { fromMs: Math.floor((now - HOUR) / MINUTE) * MINUTE, untilMs: Math.ceil(now / MINUTE) * MINUTE }],
    ];
    console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; medians of ${RUNS} runs`);
    for (const [name, range] of ranges) {
      const q = {
        endpoints: await medianOf(() => endpoints(store, range)),
        statements: await medianOf(() => statements(store, range)),
        latency: await medianOf(() => latency(store, range)),
        endpointLatency: await medianOf(() => latency(store, range, 'GET /endpoint/3/:id')),
        page: await medianOf(() => Promise.all([latency(store, range), endpoints(store, range), statements(store, range)])),
      };
      // Baseline: the very rows the statements query reads, fetched raw.
      const raw = new Database(path, { readonly: true });
      const read = raw.prepare('SELECT fields FROM rollups WHERE series = ? AND resolution_ms = ? AND bucket_ms >= ? AND bucket_ms < ?').raw();
      const parts = coveringRanges(range.fromMs, range.untilMs);
      let rowsRead = 0;
      const rawRead = await medianOf(async () => {
        rowsRead = 0;
        for (const p of parts) rowsRead += read.all(SERIES.statement, p.resolutionMs, p.fromMs, p.untilMs).length;
      });
      raw.close();
      console.log(
        `${name.padEnd(4)} endpoints ${q.endpoints.toFixed(1)} ms · statements ${q.statements.toFixed(1)} ms · latency chart ${q.latency.toFixed(1)} ms · one endpoint's chart ${q.endpointLatency.toFixed(1)} ms · whole page ${q.page.toFixed(1)} ms` +
          ` · baseline: its ${rowsRead} statement rows read raw ${rawRead.toFixed(1)} ms (statements query ${(q.statements / rawRead).toFixed(1)}x)`,
      );
    }
    await store.close();

    // What the overview avoids: scanning the week's summaries (measured on SCAN, scaled).
    const SCAN = 100_000;
    const scanStore = new SqliteStore({ path: join(dir, 'scan.db'), retentionMs: 1e12, maxSizeBytes: 1e12, synchronous: 'NORMAL' });
    await scanStore.configureExporters([]);
    for (let i = 0; i < SCAN; i += 1000) await scanStore.append(Array.from({ length: 1000 }, (_, j) => summaryRecord(i + j, now)));
    await scanStore.close();
    const scanDb = new Database(join(dir, 'scan.db'), { readonly: true });
    const scanMs = await medianOf(async () => {
      let total = 0;
      for (const row of scanDb.prepare("SELECT body FROM records WHERE kind = 'summary'").raw().iterate()) total += (JSON.parse((row as [string])[0]) as DerivedRecord).durationMs;
      return total;
    });
    scanDb.close();
    const weekSummaries = DAYS * 86_400 * PER_SECOND;
    console.log(`full scan instead: ${SCAN} summaries in ${scanMs.toFixed(0)} ms, so a week's ${weekSummaries / 1e6} million would take about ${((scanMs * weekSummaries) / SCAN / 1000).toFixed(0)} s`);

    // Commit cost of the contributions: 100 summaries per append, with 1 endpoint + 20 statement deltas each.
    const w = new SqliteStore({ path: join(dir, 'write.db'), retentionMs: 1e12, maxSizeBytes: 1e12, synchronous: 'NORMAL' });
    await w.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
    let n = 0;
    const batch = (withRollups: boolean) =>
      Array.from({ length: 100 }, () => {
        const r = summaryRecord(n++, now);
        if (!withRollups) return r;
        const deltas = [{ series: SERIES.endpoint, atMs: now, key: `GET /endpoint/${n % ENDPOINTS}/:id`, add: { n: 1, ms: 100, db: 30, q: 20, [bucketField(100)]: 1 } }];
        for (let s = 0; s < STATEMENTS_PER_REQUEST; s++) deltas.push({ series: SERIES.statement, atMs: now, key: `select * from table_${(n + s) % STATEMENTS} where id = ?`, add: { calls: 1, reqs: 1, ms: 1.5, [bucketField(1.5)]: 1 } } as never);
        return attachRollup(r, { once: r.spanId, deltas });
      });
    const plain: number[] = [];
    const rolled: number[] = [];
    for (let i = 0; i < 30; i++) {
      const a = batch(false);
      const b = batch(true);
      plain.push(await timed(() => w.append(a)));
      rolled.push(await timed(() => w.append(b)));
    }
    await w.close();
    const p = median(plain);
    const r = median(rolled);
    console.log(`commit of 100 summaries: ${p.toFixed(2)} ms without rollups, ${r.toFixed(2)} ms with (${(r / p).toFixed(2)}x; medians of 30)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
