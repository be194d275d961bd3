// The correlation join as pure functions: the stored records of one correlation id -> the
// request span, its DB queries and what they add up to -> a summary record. No I/O and no
// clock, so the processor, the lookups (CLI, API, web page) and the tests share one truth.
import { createHash } from 'node:crypto';
import { SpanKind } from '../../collector/core/api.js';
import type { AttributeValue, Attributes, DerivedRecord, SpanRecord, StoredRecord } from '../../collector/core/api.js';
import { HTTP, SUMMARY } from './attributes.js';
import { profileSummaryAttributes } from './profile.js';
import { classifyStatement, normalizeSql, type StatementClass } from './statements.js';

export { classifyStatement, normalizeSql, type StatementClass };

export interface JoinOptions {
  /** How many of the slowest queries a summary lists. */
  slowestQueries: number;
  /** Identical statements (after normalization) at least this often are an N+1 pattern. */
  nPlusOneThreshold: number;
  /**
   * How far (ms) a statement may lie outside its request's window and still join it: clock skew
   * between the PHP host and the database host. Kept small on purpose: on a persistent
   * connection the next request of the same worker can start right after this one ends, still
   * carrying this request's tag (docs/correlation.md).
   */
  toleranceMs: number;
}

export const DEFAULT_JOIN_OPTIONS: JoinOptions = { slowestQueries: 5, nPlusOneThreshold: 5, toleranceMs: 2 };

/** The pg-agent's bound on how far a sampled statement's end may be from the truth (ms), as a span attribute. */
export const END_UNCERTAINTY = 'bitville.end_uncertainty_ms';

/** The request's own attributes a summary carries over (GELF maps them to _method, _url, _status_code). */
const REQUEST_ATTRIBUTES = Object.values(HTTP);

export const SUMMARY_SCOPE = 'bitville.correlate';

export type StoredSpan = SpanRecord & { id: number; receivedAtMs: number };
export type StoredSummary = DerivedRecord & { id: number; receivedAtMs: number };

/** A request span is a SERVER span. */
export function isRequestSpan(r: StoredRecord): r is StoredSpan {
  return r.kind === 'span' && r.spanKind === SpanKind.SERVER;
}

/** A DB span is a CLIENT span naming its database system (current or legacy convention). */
export function isDbSpan(r: StoredRecord): r is StoredSpan {
  return r.kind === 'span' && r.spanKind === SpanKind.CLIENT && (typeof r.attributes['db.system.name'] === 'string' || typeof r.attributes['db.system'] === 'string');
}

export function queryTextOf(span: SpanRecord): string {
  const text = span.attributes['db.query.text'] ?? span.attributes['db.statement'];
  return typeof text === 'string' && text !== '' ? text : span.name;
}

/**
 * Where a DB span stands in its request's join:
 * - `counted`: the application's statement, inside the request's window.
 * - `housekeeping`: a driver's or pooler's own statement (see StatementClass), inside the window.
 * - `outside_window`: outside the request's time window, so not this request's, whatever its
 *   tag says (typically a persistent connection still carrying an earlier request's tag): shown
 *   as unattributed, never counted.
 * - `no_request`: the request span is not stored (yet); nothing to bound it by.
 */
export type Placement = 'counted' | 'housekeeping' | 'outside_window' | 'no_request';

/**
 * Why a statement is the request's: it carries the request's correlation id (`tag`), or it ran on
 * a persistent connection still tagged by an earlier request of the same PHP worker while this
 * request was the one running there (`worker`, see workers.ts).
 */
export type AttributedBy = 'tag' | 'worker';

export interface Query {
  span: StoredSpan;
  attributedBy: AttributedBy;
  text: string;
  normalized: string;
  statement: StatementClass;
  placement: Placement;
}

export interface RepeatedQuery {
  normalized: string;
  count: number;
  totalMs: number;
  /** At or over the N+1 threshold. */
  nPlusOne: boolean;
}

export interface Joined {
  correlationId: string;
  /** The outermost SERVER span: the PHP request (absent while only DB spans are stored). */
  request: StoredSpan | undefined;
  /** Every DB span of the id, once each (by span id, the first stored), by start time. */
  queries: Query[];
  /** The queries a summary counts: in the window and not housekeeping (every non-housekeeping one while there is no request span). */
  counted: Query[];
  /** Every summary stored so far, oldest first. */
  summaries: StoredSummary[];
  /**
   * Newest store id among the records other than summaries and re-delivered spans, the
   * statements attributed by worker included (0 when none).
   */
  lastRecordId: number;
  /** The union of the counted statements' intervals, clipped to the request: never more than its duration. */
  dbTimeMs: number;
  /** Statements run more than once, most frequent first (transaction control excluded). */
  repeated: RepeatedQuery[];
}

/**
 * Groups one correlation id's stored records (any order). `byWorker`: DB spans carrying another
 * id that ran on this request's PHP worker while it was running (workers.ts finds them); they
 * join as this request's statements when they lie in its window.
 */
export function joinRecords(
  correlationId: string,
  records: readonly StoredRecord[],
  options: JoinOptions = DEFAULT_JOIN_OPTIONS,
  byWorker: readonly StoredSpan[] = [],
): Joined {
  // Spans are unique by span id: a re-delivered span (an agent's retry) is the same span, and
  // the first stored copy is the one that counts, so re-delivery never changes a summary.
  const firstCopies = new Map<string, StoredSpan>();
  let lastRecordId = 0;
  for (const r of [...records].sort((a, b) => a.id - b.id)) {
    if (r.kind === 'summary') continue;
    if (r.kind === 'span') {
      const key = `${r.traceId}/${r.spanId}`;
      if (firstCopies.has(key)) continue;
      firstCopies.set(key, r as StoredSpan);
    }
    lastRecordId = Math.max(lastRecordId, r.id);
  }
  const spans = [...firstCopies.values()];
  const borrowed = new Map<string, StoredSpan>();
  for (const s of [...byWorker].sort((a, b) => a.id - b.id)) {
    const key = `${s.traceId}/${s.spanId}`;
    if (!firstCopies.has(key) && !borrowed.has(key)) borrowed.set(key, s);
  }
  const request = requestSpanOf(spans);
  const window = request ? windowOf(request, options.toleranceMs) : undefined;
  const own = spans.filter(isDbSpan).map((span) => ({ span, attributedBy: 'tag' as const }));
  // Borrowed statements count only inside the window (the finder checked; a changed tolerance may not).
  const lent = window ? [...borrowed.values()].filter((span) => isDbSpan(span) && inWindow(span, window)).map((span) => ({ span, attributedBy: 'worker' as const })) : [];
  for (const { span } of lent) lastRecordId = Math.max(lastRecordId, span.id);
  const queries = [...own, ...lent]
    .sort((a, b) => compareNanos(a.span.startTimeUnixNano, b.span.startTimeUnixNano) || a.span.id - b.span.id)
    .map(({ span, attributedBy }): Query => {
      const text = queryTextOf(span);
      const { normalized, statement } = analyzed(text);
      const placement: Placement = !window ? 'no_request' : !inWindow(span, window) ? 'outside_window' : statement === 'housekeeping' ? 'housekeeping' : 'counted';
      return { span, attributedBy, text, normalized, statement, placement };
    });
  const counted = queries.filter((q) => q.placement === 'counted' || (q.placement === 'no_request' && q.statement !== 'housekeeping'));
  const groups = new Map<string, RepeatedQuery>();
  for (const q of counted) {
    if (q.statement !== 'query') continue;
    const g = groups.get(q.normalized) ?? { normalized: q.normalized, count: 0, totalMs: 0, nPlusOne: false };
    g.count++;
    g.totalMs += q.span.durationMs;
    g.nPlusOne = g.count >= options.nPlusOneThreshold;
    groups.set(q.normalized, g);
  }
  return {
    correlationId,
    request,
    queries,
    counted,
    summaries: records.filter((r): r is StoredSummary => r.kind === 'summary').sort((a, b) => a.id - b.id),
    lastRecordId,
    dbTimeMs: round(unionMs(counted.map((q) => q.span), request)),
    repeated: [...groups.values()].filter((g) => g.count > 1).sort((a, b) => b.count - a.count || b.totalMs - a.totalMs),
  };
}

/** The request among one id's records: the outermost SERVER span (its parent is not among them), earliest start first. */
export function requestSpanOf(records: readonly StoredRecord[]): StoredSpan | undefined {
  const ids = new Set(records.map((r) => r.spanId));
  const servers = records.filter(isRequestSpan);
  const outer = servers.filter((s) => !ids.has(s.parentSpanId));
  return (outer.length > 0 ? outer : servers).sort((a, b) => compareNanos(a.startTimeUnixNano, b.startTimeUnixNano) || a.id - b.id)[0];
}

export interface Window {
  /** Earliest start and latest end a statement may have, in ns. */
  fromNs: bigint;
  toNs: bigint;
}

/** The request's window: its interval widened by the tolerance on both sides. */
export function windowOf(request: SpanRecord, toleranceMs: number): Window {
  const tolerance = BigInt(Math.round(toleranceMs * 1e6));
  return { fromNs: BigInt(request.startTimeUnixNano) - tolerance, toNs: BigInt(request.endTimeUnixNano) + tolerance };
}

/**
 * Inside when it starts within the window and its end, as early as the agent's uncertainty
 * allows, is within it too. The start is exact (pg_stat_activity's query_start); a sampled end
 * may be late by up to the uncertainty.
 */
export function inWindow(span: SpanRecord, w: Window): boolean {
  const start = BigInt(span.startTimeUnixNano);
  const u = span.attributes[END_UNCERTAINTY];
  const uncertainty = typeof u === 'number' && Number.isFinite(u) && u > 0 ? BigInt(Math.round(u * 1e6)) : 0n;
  const earliestEnd = BigInt(span.endTimeUnixNano) - uncertainty;
  return start >= w.fromNs && start <= w.toNs && earliestEnd <= w.toNs;
}

/** Total time covered by the spans' intervals (overlaps once), clipped to the request's own interval when there is one. */
function unionMs(spans: readonly SpanRecord[], request: SpanRecord | undefined): number {
  const lo = request ? BigInt(request.startTimeUnixNano) : undefined;
  const hi = request ? BigInt(request.endTimeUnixNano) : undefined;
  const intervals: [bigint, bigint][] = [];
  for (const s of spans) {
    let a = BigInt(s.startTimeUnixNano);
    let b = BigInt(s.endTimeUnixNano);
    if (lo !== undefined && a < lo) a = lo;
    if (hi !== undefined && b > hi) b = hi;
    if (b > a) intervals.push([a, b]);
  }
  intervals.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  let total = 0n;
  let curA = 0n;
  let curB = -1n;
  for (const [a, b] of intervals) {
    if (curB < curA || a > curB) {
      if (curB > curA) total += curB - curA;
      curA = a;
      curB = b;
    } else if (b > curB) curB = b;
  }
  if (curB > curA) total += curB - curA;
  return Number(total) / 1e6;
}

/**
 * The deterministic id of a summary covering the records up to `lastRecordId`: two collector
 * instances that summarize the same stored records produce the same id (and the same record).
 */
export function summaryIdOf(correlationId: string, lastRecordId: number): string {
  return createHash('sha256').update(`${correlationId}\n${lastRecordId}`).digest('hex').slice(0, 16);
}

/**
 * The summary record for the join, or undefined when there is nothing to summarize: no request
 * span yet, or the newest summary already covers every record.
 */
export function buildSummary(joined: Joined, options: JoinOptions = DEFAULT_JOIN_OPTIONS): DerivedRecord | undefined {
  const { request, counted, correlationId } = joined;
  if (!request) return undefined;
  const previous = joined.summaries.at(-1);
  if (previous && previous.id > joined.lastRecordId) return undefined;
  const summaryId = summaryIdOf(correlationId, joined.lastRecordId);
  const revisions = new Set(joined.summaries.map((s) => s.spanId)).size;

  const attributes: Attributes = {};
  for (const key of REQUEST_ATTRIBUTES) {
    const value = request.attributes[key];
    if (value !== undefined) attributes[key] = value;
  }
  const slowest = [...counted]
    .sort((a, b) => b.span.durationMs - a.span.durationMs)
    .slice(0, options.slowestQueries)
    .map((q): AttributeValue => ({ query: q.text, duration_ms: round(q.span.durationMs), span_id: q.span.spanId }));
  const repeated = joined.repeated.filter((g) => g.nPlusOne);
  Object.assign(attributes, {
    [SUMMARY.correlationId]: correlationId,
    [SUMMARY.requestSpanId]: request.spanId,
    [SUMMARY.dbTimeMs]: joined.dbTimeMs,
    [SUMMARY.dbQueryCount]: counted.length,
    [SUMMARY.dbHousekeepingCount]: joined.queries.filter((q) => q.placement === 'housekeeping').length,
    [SUMMARY.dbUnattributedCount]: joined.queries.filter((q) => q.placement === 'outside_window').length,
    [SUMMARY.dbWorkerAttributedCount]: counted.filter((q) => q.attributedBy === 'worker').length,
    [SUMMARY.slowestQueries]: slowest,
    [SUMMARY.nPlusOne]: repeated.length > 0,
    [SUMMARY.repeatedQueries]: repeated.map((g): AttributeValue => ({ query: g.normalized, count: g.count, total_ms: round(g.totalMs) })),
    [SUMMARY.id]: summaryId,
    [SUMMARY.revision]: revisions + 1,
    [SUMMARY.lastRecordId]: joined.lastRecordId,
  } satisfies Attributes);
  if (repeated[0]) {
    attributes[SUMMARY.nPlusOneQuery] = repeated[0].normalized;
    attributes[SUMMARY.nPlusOneCount] = repeated[0].count;
  }
  if (previous) attributes[SUMMARY.supersedes] = previous.spanId;
  // Profile hook (profile.ts): bitville.profile_top, when the request span carries a profile.
  Object.assign(attributes, profileSummaryAttributes(request));

  return {
    kind: 'summary',
    // The request's resource (project, host), with this processor as the source.
    resource: { ...request.resource, 'bitville.source': 'correlate' },
    scope: { name: SUMMARY_SCOPE, version: '', attributes: {} },
    attributes,
    traceId: request.traceId,
    spanId: summaryId,
    correlationId,
    name: request.name,
    timeUnixNano: request.startTimeUnixNano,
    durationMs: round(request.durationMs),
  };
}

/**
 * Normalized text and class of a statement, remembered: the same text recurs (prepared
 * statements, N+1 loops, the same page again), and the scan is most of a join's time. The memo
 * is dropped whole when full, which keeps it simple and bounded.
 */
const ANALYZED = new Map<string, { normalized: string; statement: StatementClass }>();
const ANALYZED_MAX = 10_000;

function analyzed(text: string): { normalized: string; statement: StatementClass } {
  let a = ANALYZED.get(text);
  if (a === undefined) {
    const normalized = normalizeSql(text);
    a = { normalized, statement: classifyStatement(normalized) };
    if (ANALYZED.size >= ANALYZED_MAX) ANALYZED.clear();
    ANALYZED.set(text, a);
  }
  return a;
}

function compareNanos(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
