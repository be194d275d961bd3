// The correlation join as pure functions: the stored records of one correlation id -> the
// request span, its DB queries and what they add up to -> a summary record. No I/O and no
// clock, so the processor, the lookups (CLI, API, web page) and the tests share one truth.
import { createHash } from 'node:crypto';
import { SpanKind } from '../../collector/core/api.js';
import type { AttributeValue, Attributes, DerivedRecord, SpanRecord, StoredRecord } from '../../collector/core/api.js';
import { HTTP, SUMMARY } from './attributes.js';
import { profileSummaryAttributes } from './profile.js';

export interface JoinOptions {
  /** How many of the slowest queries a summary lists. */
  slowestQueries: number;
  /** Identical statements (after normalization) at least this often are an N+1 pattern. */
  nPlusOneThreshold: number;
}

export const DEFAULT_JOIN_OPTIONS: JoinOptions = { slowestQueries: 5, nPlusOneThreshold: 5 };

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
 * The text two executions of "the same statement" share: comments (sqlcommenter's
 * traceparent differs per request) and literals dropped, placeholders unified, whitespace and
 * case folded, IN lists collapsed. `SELECT * FROM t WHERE id = 7` and `... id = $1` meet.
 */
export function normalizeSql(text: string): string {
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

export interface Query {
  span: StoredSpan;
  text: string;
  normalized: string;
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
  /** DB spans, by start time. */
  queries: Query[];
  /** Every summary stored so far, oldest first. */
  summaries: StoredSummary[];
  /** Newest store id among the records other than summaries (0 when none). */
  lastRecordId: number;
  dbTimeMs: number;
  /** Statements run more than once, most frequent first. */
  repeated: RepeatedQuery[];
}

/** Groups one correlation id's stored records (any order). */
export function joinRecords(correlationId: string, records: readonly StoredRecord[], options: JoinOptions = DEFAULT_JOIN_OPTIONS): Joined {
  const spans = records.filter((r): r is StoredSpan => r.kind === 'span');
  const servers = spans.filter(isRequestSpan);
  // The outermost server span: its parent is not among this id's spans; earliest start breaks ties.
  const ids = new Set(spans.map((s) => s.spanId));
  const outer = servers.filter((s) => !ids.has(s.parentSpanId));
  const request = (outer.length > 0 ? outer : servers).sort((a, b) => compareNanos(a.startTimeUnixNano, b.startTimeUnixNano))[0];
  const queries = spans
    .filter(isDbSpan)
    .sort((a, b) => compareNanos(a.startTimeUnixNano, b.startTimeUnixNano) || a.id - b.id)
    .map((span) => {
      const text = queryTextOf(span);
      return { span, text, normalized: normalizeSql(text) };
    });
  const groups = new Map<string, RepeatedQuery>();
  for (const q of queries) {
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
    summaries: records.filter((r): r is StoredSummary => r.kind === 'summary').sort((a, b) => a.id - b.id),
    lastRecordId: records.reduce((max, r) => (r.kind !== 'summary' && r.id > max ? r.id : max), 0),
    dbTimeMs: round(queries.reduce((sum, q) => sum + q.span.durationMs, 0)),
    repeated: [...groups.values()].filter((g) => g.count > 1).sort((a, b) => b.count - a.count || b.totalMs - a.totalMs),
  };
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
  const { request, queries, correlationId } = joined;
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
  const slowest = [...queries]
    .sort((a, b) => b.span.durationMs - a.span.durationMs)
    .slice(0, options.slowestQueries)
    .map((q): AttributeValue => ({ query: q.text, duration_ms: round(q.span.durationMs), span_id: q.span.spanId }));
  const repeated = joined.repeated.filter((g) => g.nPlusOne);
  Object.assign(attributes, {
    [SUMMARY.correlationId]: correlationId,
    [SUMMARY.requestSpanId]: request.spanId,
    [SUMMARY.dbTimeMs]: joined.dbTimeMs,
    [SUMMARY.dbQueryCount]: queries.length,
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

function compareNanos(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
