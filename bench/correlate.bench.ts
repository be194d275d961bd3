// The correlation join's store queries on a store with hours of history, to show their cost
// follows the recent records (the sweep) or the summaries (the lookups), not the store size.
//  - sweep: unsummarizedCorrelations over the last 20 s (what the processor runs every window)
//  - baseline: one full scan of the same table (SELECT count(*) over every row's body length)
//  - lookups: recentRequests (1 h, slowest first) and byCorrelationId (one request's records)
//  - join: joinRecords + buildSummary of one request (13 spans), CPU only
//  - a join per id as the processor does it: reading the records back (byCorrelationId, the way
//    before issue 13) against the records kept from process() and checked against the store's
//    index (correlationIndex), for a 13-span and a 100-span request; and what keeping costs in
//    process() per record
//  - normalizeSql: the one-pass normaliser against the regular-expression chain it replaced
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlatRecord, StoredRecord } from '../collector/core/api.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { buildSummary, joinRecords, normalizeSql } from '../plugins/correlate/join.js';
import { flattenTraces } from '../plugins/otlp/decode.js';
import { querySpans, requestSpans, sampleRequest } from '../plugins/correlate/traces.fixture.js';
import { median } from './util.js';
import { recentRequests, unsummarizedCorrelations } from '../plugins/correlate/queries.js';
import { JoinInputs } from '../plugins/correlate/inputs.js';

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

/** The normaliser before issue 12 (one regular expression per step), for comparison only. */
function normalizeSqlRegexChain(text: string): string {
  return text
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/'(?:[^']|'')*'/g, '?')
    .replace(/\$\d+|:[A-Za-z_]\w*|\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, '?')
    .replace(/\s+/g, ' ')
    .replace(/\(\s*\?(?:\s*,\s*\?)*\s*\)/g, '(?)')
    .trim()
    .replace(/;$/, '')
    .trim()
    .toLowerCase();
}

/** Microseconds per statement for both normalisers over a PHP-like mix of statements. */
export function normalizerBench(): void {
  const statements = [
    "SELECT id, name, email FROM customers WHERE id = 42 AND status = 'active' /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/",
    'SELECT * FROM order_items WHERE order_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) ORDER BY sku',
    "INSERT INTO audit_log (user_id, action, payload, created_at) VALUES ($1, $2, $3, now())",
    'DEALLOCATE pdo_stmt_0000002a',
    "UPDATE carts SET updated_at = now(), total = 129.95 WHERE session_id = 'f3a9c1d2e4b5' AND total > 0.5e2",
  ];
  const rounds = 20_000;
  for (const [name, fn] of [['one pass', normalizeSql], ['regex chain (before)', normalizeSqlRegexChain]] as const) {
    const us = median(Array.from({ length: RUNS }, () => time(() => { for (let k = 0; k < rounds; k++) for (const s of statements) fn(s); }))) * 1000 / (rounds * statements.length);
    process.stdout.write(`correlate: normalizeSql, ${name.padEnd(22)}        median ${us.toFixed(3).padStart(8)} us per statement\n`);
  }
}

export default async function (): Promise<void> {
  normalizerBench();
  const dir = mkdtempSync(join(tmpdir(), 'bitville-bench-'));
  // First, in a fresh store and before the history below is built: building it calls the join
  // with other record shapes, which slows V8's property access in the join for every shape.
  const small = new SqliteStore({ path: join(dir, 'j.db'), retentionMs: 7 * 86_400_000, maxSizeBytes: 10 * 1024 ** 3, synchronous: 'NORMAL' });
  await small.configureExporters([]);
  await joinPaths(small, Date.now());
  await small.close();
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

/** CPU time (user + system, ms) of fn: less disturbed than wall time on a machine shared with other work. */
async function cpuMs(fn: () => unknown): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(before);
  return (d.user + d.system) / 1000;
}

/** One id's join, both ways: read back and parse, or memory checked against the index (CPU time). */
async function joinPaths(store: SqliteStore, now: number): Promise<void> {
  for (const spans of [13, 100]) {
    const requests = Array.from({ length: 200 }, () => sampleRequest({ startMs: now }, spans - 3));
    const flats = requests.map((r) => [...flattenTraces(requestSpans(r)).records, ...flattenTraces(querySpans(r)).records]);
    for (const f of flats) await store.append(f);
    const back: number[] = [];
    const memory: number[] = [];
    const keep: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      back.push(await cpuMs(async () => {
        for (const r of requests) buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId)));
      }));
      const inputs = new JoinInputs();
      keep.push(await cpuMs(() => { for (const f of flats) for (const rec of f) inputs.add(rec); }));
      memory.push(await cpuMs(async () => {
        for (const r of requests) {
          const read = await inputs.read(store, r.correlationId);
          if (!read.fromMemory) throw new Error('the bench expects the memory path');
          buildSummary(joinRecords(r.correlationId, read.records));
        }
      }));
    }
    const perId = (ms: number) => (ms * 1000) / requests.length;
    const b = perId(median(back));
    const m = perId(median(memory));
    const k = (median(keep) * 1000) / requests.length;
    process.stdout.write(`correlate: join per id (${String(spans).padStart(3)} spans), read back (before)    median ${b.toFixed(1).padStart(8)} us CPU\n`);
    process.stdout.write(`correlate: join per id (${String(spans).padStart(3)} spans), from memory (after)   median ${m.toFixed(1).padStart(8)} us CPU  (${(m / b).toFixed(2)} of read back)\n`);
    process.stdout.write(`correlate:   + keeping its inputs in process()              median ${k.toFixed(1).padStart(8)} us CPU  (total ${((m + k) / b).toFixed(2)} of read back)\n`);
  }
}
