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
 * What a statement is to the application:
 * - `query`: its own work; counted, in DB time, an N+1 candidate.
 * - `transaction`: BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: the application asked for them and a
 *   COMMIT can be slow (it waits for the WAL flush), so counted and in DB time, but never an N+1
 *   pattern (a loop of transactions repeats its inner statement, which is flagged instead).
 * - `housekeeping`: what drivers and poolers run on their own (pdo_pgsql's DEALLOCATE,
 *   pg_pconnect's RESET ALL, pgbouncer's DISCARD ALL and SET application_name): kept and shown,
 *   never counted, not in DB time, never N+1.
 */
export type StatementClass = 'query' | 'transaction' | 'housekeeping';

/** Session settings that drivers and poolers set or reset themselves (pgbouncer replays the client's). */
const POOLER_SETTINGS = new Set(['application_name', 'client_encoding', 'datestyle', 'timezone', 'intervalstyle', 'standard_conforming_strings', 'extra_float_digits']);
const TRANSACTION_WORDS = new Set(['begin', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release']);

/** Classifies a normalized statement (see normalizeSql) by its first words. */
export function classifyStatement(normalized: string): StatementClass {
  const words = normalized.split(' ', 4);
  const first = words[0] ?? '';
  if (first === 'deallocate' || first === 'discard' || first === 'reset') return 'housekeeping';
  if (first === 'set') {
    // `SET [SESSION|LOCAL] name {=|TO} ...`, with or without spaces around `=`.
    const name = (words[1] === 'session' || words[1] === 'local' ? words[2] : words[1])?.split('=')[0];
    return name !== undefined && POOLER_SETTINGS.has(name) ? 'housekeeping' : 'query';
  }
  // pgsql's persistent links release advisory locks when a request ends.
  if (normalized === 'select pg_advisory_unlock_all()') return 'housekeeping';
  if (TRANSACTION_WORDS.has(first) || ((first === 'start' || first === 'prepare') && words[1] === 'transaction')) return 'transaction';
  return 'query';
}

const enum Ch {
  Tab = 9, Nl = 10, Cr = 13, Space = 32, Dollar = 36, Quote = 39, DQuote = 34, LParen = 40, RParen = 41, Star = 42, Comma = 44,
  Dash = 45, Dot = 46, Slash = 47, D0 = 48, D9 = 57, Colon = 58, Semi = 59, Question = 63, A = 65, Z = 90, Under = 95, La = 97, Lz = 122,
}
const isDigit = (c: number) => c >= Ch.D0 && c <= Ch.D9;
const isWordStart = (c: number) => (c >= Ch.La && c <= Ch.Lz) || (c >= Ch.A && c <= Ch.Z) || c === Ch.Under || c > 127;
const isWordPart = (c: number) => isWordStart(c) || isDigit(c) || c === Ch.Dollar;
const isSpace = (c: number) => c === Ch.Space || c === Ch.Tab || c === Ch.Nl || c === Ch.Cr || c === 12;

/**
 * The text two executions of "the same statement" share: comments (sqlcommenter's
 * traceparent differs per request) and literals dropped, placeholders unified, whitespace and
 * case folded, IN lists collapsed. `SELECT * FROM t WHERE id = 7` and `... id = $1` meet.
 * One pass over the characters: it runs for every statement of every join (issue 13).
 */
export function normalizeSql(text: string): string {
  const n = text.length;
  let out = '';
  let space = false;
  // Where the current `(?, ?, ...` list began in `out` (-1: not in a list of placeholders only).
  let listOpen = -1;
  const emit = (piece: string) => {
    if (space && out !== '') out += ' ';
    space = false;
    out += piece;
  };
  const placeholder = () => {
    if (listOpen >= 0 && out.endsWith(',')) {
      // `(?,` + `?`: the list stays `(?` however long it is.
      out = out.slice(0, -1);
      space = false;
    } else if (out.endsWith('(')) {
      out += '?';
      space = false;
      listOpen = out.length - 2;
    } else {
      emit('?');
      listOpen = -1;
    }
  };
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      space = true;
      i++;
    } else if (c === Ch.Dash && text.charCodeAt(i + 1) === Ch.Dash) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl;
      space = true;
    } else if (c === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (text.charCodeAt(i) === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) (depth++, (i += 2));
        else if (text.charCodeAt(i) === Ch.Star && text.charCodeAt(i + 1) === Ch.Slash) (depth--, (i += 2));
        else i++;
      }
      space = true;
    } else if (c === Ch.Quote) {
      i = skipQuoted(text, i + 1, Ch.Quote);
      placeholder();
    } else if (c === Ch.DQuote) {
      const end = skipQuoted(text, i + 1, Ch.DQuote);
      listOpen = -1;
      emit(text.slice(i, end).toLowerCase());
      i = end;
    } else if (c === Ch.Dollar) {
      let j = i + 1;
      if (isDigit(text.charCodeAt(j))) {
        while (isDigit(text.charCodeAt(j))) j++;
        i = j;
        placeholder();
        continue;
      }
      // A dollar-quoted string: $tag$ ... $tag$.
      while (j < n && isWordPart(text.charCodeAt(j)) && text.charCodeAt(j) !== Ch.Dollar) j++;
      if (text.charCodeAt(j) === Ch.Dollar) {
        const tag = text.slice(i, j + 1);
        const close = text.indexOf(tag, j + 1);
        i = close < 0 ? n : close + tag.length;
        placeholder();
      } else {
        listOpen = -1;
        emit('$');
        i++;
      }
    } else if (c === Ch.Colon && text.charCodeAt(i + 1) === Ch.Colon) {
      // A cast, not a named placeholder.
      listOpen = -1;
      emit('::');
      i += 2;
    } else if (c === Ch.Colon && isWordStart(text.charCodeAt(i + 1))) {
      let j = i + 1;
      while (j < n && isWordPart(text.charCodeAt(j))) j++;
      i = j;
      placeholder();
    } else if (c === Ch.Question) {
      i++;
      placeholder();
    } else if (isDigit(c) || (c === Ch.Dot && isDigit(text.charCodeAt(i + 1)))) {
      let j = i;
      while (j < n && (isDigit(text.charCodeAt(j)) || text.charCodeAt(j) === Ch.Dot)) j++;
      const e = text.charCodeAt(j) | 0x20;
      if (e === 101 /* e */) {
        let k = j + 1;
        const sign = text.charCodeAt(k);
        if (sign === 43 || sign === Ch.Dash) k++;
        if (isDigit(text.charCodeAt(k))) {
          while (isDigit(text.charCodeAt(k))) k++;
          j = k;
        }
      }
      i = j;
      placeholder();
    } else if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordPart(text.charCodeAt(j))) j++;
      // E'...', B'...', X'...', N'...': prefixed string literals.
      if (j === i + 1 && text.charCodeAt(j) === Ch.Quote && 'eEbBxXnN'.includes(text[i]!)) {
        i = skipQuoted(text, j + 1, Ch.Quote);
        placeholder();
        continue;
      }
      listOpen = -1;
      emit(text.slice(i, j).toLowerCase());
      i = j;
    } else {
      if (c === Ch.Comma && listOpen >= 0) {
        out += ',';
        space = false;
      } else if (c === Ch.RParen && listOpen >= 0) {
        out = `${out.slice(0, listOpen)}(?)`;
        space = false;
        listOpen = -1;
      } else {
        listOpen = -1;
        emit(text[i]!);
      }
      i++;
    }
  }
  while (out.endsWith(';')) out = out.slice(0, -1).trimEnd();
  return out;
}

/** The index after a quoted run starting at `from` (after the opening quote); a doubled quote is an escaped one. */
function skipQuoted(text: string, from: number, quote: number): number {
  let i = from;
  for (;;) {
    const at = text.indexOf(String.fromCharCode(quote), i);
    if (at < 0) return text.length;
    if (text.charCodeAt(at + 1) === quote) i = at + 2;
    else return at + 1;
  }
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

export interface Query {
  span: StoredSpan;
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
  /** Newest store id among the records other than summaries and re-delivered spans (0 when none). */
  lastRecordId: number;
  /** The union of the counted statements' intervals, clipped to the request: never more than its duration. */
  dbTimeMs: number;
  /** Statements run more than once, most frequent first (transaction control excluded). */
  repeated: RepeatedQuery[];
}

/** Groups one correlation id's stored records (any order). */
export function joinRecords(correlationId: string, records: readonly StoredRecord[], options: JoinOptions = DEFAULT_JOIN_OPTIONS): Joined {
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
  const servers = spans.filter(isRequestSpan);
  // The outermost server span: its parent is not among this id's spans; earliest start breaks ties.
  const ids = new Set(spans.map((s) => s.spanId));
  const outer = servers.filter((s) => !ids.has(s.parentSpanId));
  const request = (outer.length > 0 ? outer : servers).sort((a, b) => compareNanos(a.startTimeUnixNano, b.startTimeUnixNano) || a.id - b.id)[0];
  const window = request ? windowOf(request, options.toleranceMs) : undefined;
  const queries = spans
    .filter(isDbSpan)
    .sort((a, b) => compareNanos(a.startTimeUnixNano, b.startTimeUnixNano) || a.id - b.id)
    .map((span): Query => {
      const text = queryTextOf(span);
      const normalized = normalizeSql(text);
      const statement = classifyStatement(normalized);
      const placement: Placement = !window ? 'no_request' : !inWindow(span, window) ? 'outside_window' : statement === 'housekeeping' ? 'housekeeping' : 'counted';
      return { span, text, normalized, statement, placement };
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

interface Window {
  /** Earliest start and latest end a statement may have, in ns. */
  fromNs: bigint;
  toNs: bigint;
}

function windowOf(request: SpanRecord, toleranceMs: number): Window {
  const tolerance = BigInt(Math.round(toleranceMs * 1e6));
  return { fromNs: BigInt(request.startTimeUnixNano) - tolerance, toNs: BigInt(request.endTimeUnixNano) + tolerance };
}

/**
 * Inside when it starts within the window and its end, as early as the agent's uncertainty
 * allows, is within it too. The start is exact (pg_stat_activity's query_start); a sampled end
 * may be late by up to the uncertainty.
 */
function inWindow(span: SpanRecord, w: Window): boolean {
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
