// The correlation join's store queries on a store with hours of history, to show their cost
// follows the recent records (the sweep) or the summaries (the lookups), not the store size.
//  - sweep: unsummarizedCorrelations over the last 20 s (what the processor runs every window)
//  - baseline: one full scan of the same table (SELECT count(*) over every row's body length)
//  - lookups: recentRequests (1 h, slowest first) and byCorrelationId (one request's records)
//  - join: joinRecords + buildSummary of one request (13 spans), CPU only
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlatRecord, StoredRecord } from '../collector/core/api.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { buildSummary, joinRecords } from '../plugins/correlate/join.js';
import { flattenTraces } from '../plugins/otlp/decode.js';
import { querySpans, requestSpans, sampleRequest } from '../plugins/correlate/traces.fixture.js';
import { median } from './util.js';
import { recentRequests, unsummarizedCorrelations } from '../plugins/correlate/queries.js';

const REQUESTS = 30_000; // x 13 spans + 1 summary each = 420,000 rows
const HOURS = 6;
const RUNS = 7;

function time(fn: () => unknown): number {
  const started = performance.now();
  fn();
  return performance.now() - started;
}
async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export default async function (): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-bench-'));
  let now = Date.parse('2026-11-01T00:00:00Z');
  const store = new SqliteStore({ path: join(dir, 'c.db'), retentionMs: 7 * 86_400_000, maxSizeBytes: 10 * 1024 ** 3, synchronous: 'NORMAL', now: () => now });
  await store.configureExporters([]);
  const step = (HOURS * 3_600_000) / REQUESTS;
  let last: ReturnType<typeof sampleRequest> | undefined;
  const built = performance.now();
  for (let i = 0; i < REQUESTS; i++) {
    const r = sampleRequest({ startMs: now }, 10);
    const records: FlatRecord[] = [...flattenTraces(requestSpans(r)).records, ...flattenTraces(querySpans(r)).records];
    await store.append(records);
    // Everything but the last minute is summarized already.
    if (i < REQUESTS - 60_000 / step) {
      const stored = records.map((x, k) => ({ ...x, id: k + 1, receivedAtMs: now })) as StoredRecord[];
      await store.append([buildSummary(joinRecords(r.correlationId, stored))!]);
    }
    now += step;
    last = r;
  }
  const rows = store.stats().rows;
  const sizeMiB = store.stats().sizeBytes / 1024 ** 2;
  process.stdout.write(`correlate: store of ${rows} rows (${sizeMiB.toFixed(0)} MiB, ${HOURS} h of arrivals) built in ${((performance.now() - built) / 1000).toFixed(1)} s\n`);

  const raw = new Database(join(dir, 'c.db'), { readonly: true });
  const fullScan = raw.prepare('SELECT count(*), sum(length(body)) FROM records');
  const baseline = median(Array.from({ length: RUNS }, () => time(() => fullScan.get())));
  raw.close();

  const sweepMs: number[] = [];
  let pending = 0;
  for (let i = 0; i < RUNS; i++) sweepMs.push(await timeAsync(async () => (pending = (await unsummarizedCorrelations(store, now - 20_000, 1000)).length)));
  const recoveryMs: number[] = [];
  for (let i = 0; i < RUNS; i++) recoveryMs.push(await timeAsync(() => unsummarizedCorrelations(store, now - 3_600_000, 1000)));
  const listMs: number[] = [];
  for (let i = 0; i < RUNS; i++) listMs.push(await timeAsync(() => recentRequests(store, { sinceMs: now - 3_600_000, order: 'slowest', limit: 50 })));
  const readMs: number[] = [];
  let records: StoredRecord[] = [];
  for (let i = 0; i < RUNS; i++) readMs.push(await timeAsync(async () => (records = await store.byCorrelationId(last!.correlationId))));
  const joinUs = median(Array.from({ length: RUNS }, () => time(() => { for (let k = 0; k < 1000; k++) buildSummary(joinRecords(last!.correlationId, records)); }))) ;

  const line = (what: string, ms: number, extra = '') =>
    process.stdout.write(`correlate: ${what.padEnd(44)} median ${ms.toFixed(2).padStart(8)} ms  (${(ms / baseline).toFixed(4)} x full scan)${extra}\n`);
  process.stdout.write(`correlate: baseline full scan of the table          median ${baseline.toFixed(2).padStart(8)} ms\n`);
  line('sweep: unsummarized ids, last 20 s', median(sweepMs), `, ${pending} ids pending`);
  line('recovery: unsummarized ids, last 1 h', median(recoveryMs));
  line('lookup: recentRequests 1 h, slowest, 50', median(listMs));
  line('join read: byCorrelationId (13 records)', median(readMs));
  process.stdout.write(`correlate: joinRecords + buildSummary (13 spans)     median ${(joinUs).toFixed(2).padStart(8)} us per request\n`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
