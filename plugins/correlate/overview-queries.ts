// The overview's figures, read from rollup rows only (never from records): endpoints,
// statements, and latency over time, for a time range. One module for the web page, its JSON
// and `bitville top`, so all three show the same numbers.
import { addFields, BitvilleError, coveringRanges, parseDuration, ROLLUP_RESOLUTIONS } from '../../collector/core/api.js';
import type { RecordReader, RollupResolution, RollupRow } from '../../collector/core/api.js';
import { quantiles } from './histogram.js';
import { SERIES } from './rollup-names.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DEFAULT_RANGE_MS = 24 * HOUR;

export interface TimeRange {
  fromMs: number;
  untilMs: number;
}

/**
 * The range from `range` (a duration back from now: `1h`, `7d`; default 24h) or `since`/`until`
 * (each a duration back from now or an ISO 8601 time), widened to whole minutes.
 */
export function parseRange(input: { range?: string | undefined; since?: string | undefined; until?: string | undefined }, now = Date.now()): TimeRange {
  const duration = (text: string, name: string): number => {
    try {
      return parseDuration(text.trim());
    } catch {
      throw new BitvilleError('BV_BAD_FILTER', `${name}: expected a duration (15m, 7d) or an ISO 8601 time, got ${text}`);
    }
  };
  const at = (text: string, name: string): number => {
    if (!/^\d{4}-\d\d-\d\d/.test(text.trim())) return now - duration(text, name);
    const ms = Date.parse(text.trim());
    if (Number.isNaN(ms)) throw new BitvilleError('BV_BAD_FILTER', `${name}: not a time: ${text}`);
    return ms;
  };
  const untilMs = input.until ? at(input.until, 'until') : now;
  const fromMs = input.since ? at(input.since, 'since') : untilMs - (input.range ? duration(input.range, 'range') : DEFAULT_RANGE_MS);
  if (!(fromMs < untilMs)) throw new BitvilleError('BV_BAD_FILTER', 'the range is empty: since must be before until');
  return { fromMs: Math.floor(fromMs / MINUTE) * MINUTE, untilMs: Math.ceil(untilMs / MINUTE) * MINUTE };
}

/**
 * The rows of a series covering the range at the coarsest resolutions that are exact: days for
 * the whole days, then hours, 10 minutes and minutes towards the ragged ends (a week reads at
 * most about 100 rows per key).
 */
export async function rowsOf(reader: RecordReader, series: string, range: TimeRange, key?: string): Promise<RollupRow[]> {
  const k = key !== undefined ? { key } : {};
  const parts = await Promise.all(coveringRanges(range.fromMs, range.untilMs).map((r) => reader.rollups({ series, ...r, ...k })));
  return parts.flat();
}

function sumByKey(rows: readonly RollupRow[]): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const r of rows) {
    let f = out.get(r.key);
    if (!f) out.set(r.key, (f = {}));
    addFields(f, r.fields);
  }
  return out;
}

const round = (ms: number | undefined) => (ms === undefined ? null : Math.round(ms * 100) / 100);

export interface EndpointRow {
  /** `METHOD route`. */
  endpoint: string;
  requests: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  /** Share of requests that failed (status >= 500 or error status), 0..1. */
  errorRate: number;
  /** DB time over request time, 0..1. */
  dbShare: number;
  /** Requests with an N+1 pattern. */
  nPlusOne: number;
  totalMs: number;
}

export const ENDPOINT_SORTS = ['total', 'requests', 'p50', 'p95', 'p99', 'errors', 'db', 'n_plus_one', 'endpoint'] as const;
export type EndpointSort = (typeof ENDPOINT_SORTS)[number];

export async function endpoints(reader: RecordReader, range: TimeRange, sort: EndpointSort = 'total'): Promise<EndpointRow[]> {
  const rows: EndpointRow[] = [];
  for (const [endpoint, f] of sumByKey(await rowsOf(reader, SERIES.endpoint, range))) {
    const n = f.n ?? 0;
    if (n <= 0) continue;
    const [p50, p95, p99] = quantiles(f, [0.5, 0.95, 0.99]);
    const total = f.ms ?? 0;
    rows.push({
      endpoint,
      requests: n,
      p50Ms: round(p50),
      p95Ms: round(p95),
      p99Ms: round(p99),
      meanMs: round(total / n),
      errorRate: (f.err ?? 0) / n,
      dbShare: total > 0 ? Math.min(1, (f.db ?? 0) / total) : 0,
      nPlusOne: f.np1 ?? 0,
      totalMs: round(total) ?? 0,
    });
  }
  const by: Record<EndpointSort, (r: EndpointRow) => number | string> = {
    total: (r) => r.totalMs,
    requests: (r) => r.requests,
    p50: (r) => r.p50Ms ?? 0,
    p95: (r) => r.p95Ms ?? 0,
    p99: (r) => r.p99Ms ?? 0,
    errors: (r) => r.errorRate,
    db: (r) => r.dbShare,
    n_plus_one: (r) => r.nPlusOne,
    endpoint: (r) => r.endpoint,
  };
  return sortRows(rows, by[sort], sort === 'endpoint', (r) => r.endpoint);
}

export interface StatementRow {
  /** Normalized text (literals and placeholders as `?`). */
  statement: string;
  calls: number;
  totalMs: number;
  meanMs: number | null;
  p95Ms: number | null;
  /** Requests it ran in. */
  requests: number;
  /** Requests in which it was an N+1 pattern. */
  nPlusOne: number;
  /** The pg-agent's pg_stat_statements totals for the same normalized text and range, when reported. */
  pgStatStatements: { calls: number; totalMs: number; meanMs: number | null } | null;
}

export const STATEMENT_SORTS = ['total', 'calls', 'mean', 'p95', 'requests', 'n_plus_one', 'statement'] as const;
export type StatementSort = (typeof STATEMENT_SORTS)[number];

export async function statements(reader: RecordReader, range: TimeRange, sort: StatementSort = 'total'): Promise<StatementRow[]> {
  const [sampled, pg] = await Promise.all([rowsOf(reader, SERIES.statement, range), rowsOf(reader, SERIES.pgStatements, range)]);
  const totals = sumByKey(pg);
  const rows: StatementRow[] = [];
  for (const [statement, f] of sumByKey(sampled)) {
    const calls = f.calls ?? 0;
    if (calls <= 0) continue;
    const [p95] = quantiles(f, [0.95]);
    const t = totals.get(statement);
    rows.push({
      statement,
      calls,
      totalMs: round(f.ms ?? 0) ?? 0,
      meanMs: round((f.ms ?? 0) / calls),
      p95Ms: round(p95),
      requests: f.reqs ?? 0,
      nPlusOne: f.np1 ?? 0,
      pgStatStatements: t && (t.calls ?? 0) > 0 ? { calls: t.calls!, totalMs: round(t.ms ?? 0) ?? 0, meanMs: round((t.ms ?? 0) / t.calls!) } : null,
    });
  }
  const by: Record<StatementSort, (r: StatementRow) => number | string> = {
    total: (r) => r.totalMs,
    calls: (r) => r.calls,
    mean: (r) => r.meanMs ?? 0,
    p95: (r) => r.p95Ms ?? 0,
    requests: (r) => r.requests,
    n_plus_one: (r) => r.nPlusOne,
    statement: (r) => r.statement,
  };
  return sortRows(rows, by[sort], sort === 'statement', (r) => r.statement);
}

function sortRows<R>(rows: R[], key: (r: R) => number | string, ascending: boolean, name: (r: R) => string): R[] {
  return rows.sort((a, b) => {
    const x = key(a);
    const y = key(b);
    const c = x < y ? -1 : x > y ? 1 : 0;
    return (ascending ? c : -c) || name(a).localeCompare(name(b));
  });
}

export interface LatencyPoint {
  /** Start of the interval (ms since the epoch). */
  startMs: number;
  requests: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface LatencySeries {
  endpoint: string | null;
  stepMs: number;
  points: LatencyPoint[];
}

/** Interval lengths a chart may use; the shortest giving at most MAX_POINTS points is taken. */
const STEPS = [1, 2, 5, 10, 20, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * MINUTE);
const MAX_POINTS = 120;

/** p50/p95/p99 and request volume per interval, for all endpoints or one. */
export async function latency(reader: RecordReader, range: TimeRange, endpoint?: string): Promise<LatencySeries> {
  const span = range.untilMs - range.fromMs;
  const stepMs = STEPS.find((s) => span / s <= MAX_POINTS) ?? STEPS.at(-1)!;
  // The coarsest rows that fit whole in a step (a 20-minute step reads 10-minute rows).
  const resolutionMs = [...ROLLUP_RESOLUTIONS].reverse().find((r) => stepMs % r === 0) as RollupResolution;
  const from = Math.floor(range.fromMs / stepMs) * stepMs;
  const rows = await reader.rollups({
    series: SERIES.endpoint,
    resolutionMs,
    fromMs: Math.floor(range.fromMs / resolutionMs) * resolutionMs,
    untilMs: range.untilMs,
    ...(endpoint !== undefined ? { key: endpoint } : {}),
  });
  const buckets = new Map<number, Record<string, number>>();
  for (const r of rows) {
    const at = Math.floor(r.bucketMs / stepMs) * stepMs;
    let f = buckets.get(at);
    if (!f) buckets.set(at, (f = {}));
    addFields(f, r.fields);
  }
  const points: LatencyPoint[] = [];
  for (let at = from; at < range.untilMs; at += stepMs) {
    const f = buckets.get(at) ?? {};
    const [p50, p95, p99] = quantiles(f, [0.5, 0.95, 0.99]);
    points.push({ startMs: at, requests: Math.max(0, f.n ?? 0), p50Ms: round(p50), p95Ms: round(p95), p99Ms: round(p99) });
  }
  return { endpoint: endpoint ?? null, stepMs, points };
}
