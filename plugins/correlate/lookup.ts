// Request lookups, in one place for the CLI (`bitville requests`, `bitville trace`), the admin
// JSON API (/api/requests) and the web page: filters parsed and checked once, the list of
// recent requests (from their summaries) and one request's waterfall (from its spans).
import { BitvilleError, parseDuration, projectOf, z } from '../../collector/core/api.js';
import type { AttributeValue, DerivedRecord, RecordReader, StoredRecord } from '../../collector/core/api.js';
import { HTTP, SUMMARY } from './attributes.js';
import { END_UNCERTAINTY } from './join.js';
import { DEFAULT_JOIN_OPTIONS, joinRecords, type AttributedBy, type JoinOptions, type Joined, type Placement } from './join.js';
import { WorkerAttribution } from './workers.js';
import { recentRequests } from './queries.js';
import { formatProfileTop, profileOf, type ProfileView } from './profile.js';
import { formatSpanTree, spanTreeOf, type SpanTree } from './trace-view.js';

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  try {
    return parseDuration(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const flag = z.union([z.boolean(), z.enum(['', '1', 'true', 'yes', 'on', '0', 'false', 'no', 'off'])]).transform((v) => v === true || ['', '1', 'true', 'yes', 'on'].includes(v as string));
const text = z.string().trim().max(2000).transform((v) => (v === '' ? undefined : v));

/** The filters, as written on the command line or in a query string (`?since=1h&slowest`). */
export const requestFiltersSchema = z.strictObject({
  /** How far back (by arrival of the summary): `15m`, `1h`, `7d`. */
  since: duration.default(24 * 3_600_000),
  /** Longest first instead of newest first. */
  slowest: flag.default(false),
  project: text.optional(),
  /** Part of the URL (case-insensitive). */
  url: text.optional(),
  /** Only requests that took at least this long. */
  min_duration: duration.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

export type RequestFilters = z.output<typeof requestFiltersSchema>;

/** Checks filters from a query string or CLI options; throws BitvilleError naming the bad one. */
export function parseRequestFilters(input: Record<string, unknown>): RequestFilters {
  // An empty form field means "no filter" (but a bare `?slowest` means yes).
  const given = Object.fromEntries(Object.entries(input).filter(([k, v]) => k === 'slowest' || v !== ''));
  const result = requestFiltersSchema.safeParse(given);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) =>
    i.code === 'unrecognized_keys' ? `unknown filter ${i.keys.join(', ')}` : `${i.path.join('.') || 'filters'}: ${i.message}`,
  );
  throw new BitvilleError('BV_BAD_FILTER', problems.join('; '));
}

/** One request as the list shows it (from its newest summary). */
export interface RequestRow {
  correlationId: string;
  project: string;
  /** Request start, ISO 8601. */
  time: string;
  name: string;
  method: string | null;
  url: string | null;
  status: number | null;
  durationMs: number;
  dbTimeMs: number;
  queryCount: number;
  nPlusOne: boolean;
  /** The repeated statement behind the N+1 flag, normalized. */
  nPlusOneQuery: string | null;
  /** 1, or more when late spans re-summarized the request. */
  revision: number;
}

export async function listRequests(reader: RecordReader, filters: RequestFilters, now = Date.now()): Promise<RequestRow[]> {
  const summaries = await recentRequests(reader, {
    sinceMs: now - filters.since,
    order: filters.slowest ? 'slowest' : 'recent',
    limit: filters.limit,
    ...(filters.project ? { project: filters.project } : {}),
    ...(filters.url ? { urlContains: filters.url } : {}),
    ...(filters.min_duration !== undefined ? { minDurationMs: filters.min_duration } : {}),
  });
  return summaries.filter((s): s is DerivedRecord & { id: number; receivedAtMs: number } => s.kind === 'summary').map(rowOf);
}

function rowOf(s: DerivedRecord): RequestRow {
  const a = s.attributes;
  return {
    correlationId: s.correlationId,
    project: projectOf(s),
    time: isoOf(s.timeUnixNano),
    name: s.name,
    method: str(a[HTTP.method]),
    url: str(a[HTTP.urlFull]) ?? str(a[HTTP.urlPath]),
    status: num(a[HTTP.statusCode]),
    durationMs: s.durationMs,
    dbTimeMs: num(a[SUMMARY.dbTimeMs]) ?? 0,
    queryCount: num(a[SUMMARY.dbQueryCount]) ?? 0,
    nPlusOne: a[SUMMARY.nPlusOne] === true,
    nPlusOneQuery: str(a[SUMMARY.nPlusOneQuery]),
    revision: num(a[SUMMARY.revision]) ?? 1,
  };
}

export interface WaterfallQuery {
  spanId: string;
  text: string;
  normalized: string;
  /** Start, relative to the waterfall's start (ms). */
  offsetMs: number;
  durationMs: number;
  /** How often this normalized statement ran in the request. */
  repeats: number;
  /** Part of an N+1 pattern. */
  nPlusOne: boolean;
  error: boolean;
  /**
   * `counted`; `housekeeping` (a driver's or pooler's own statement, not counted);
   * `outside_window` (carries this id but ran outside the request: unattributed, not counted);
   * `no_request` (no request span stored yet).
   */
  placement: Placement;
  /**
   * `tag`: it carries this request's id; `worker`: it carries an earlier request's id (a
   * persistent connection) but ran on this request's PHP worker while this request ran there.
   */
  attributedBy: AttributedBy;
  /** How far the agent's end time may be off (ms), when it said. */
  endUncertaintyMs: number | null;
}

/**
 * Where the request summary stands:
 * - `made`: a summary is stored (`summary`);
 * - `pending`: a join can still happen: a request span or DB spans arrived within the last join
 *   window and no summary covers them yet;
 * - `not_made`: a request span is stored but no summary, and its window has passed (no correlate
 *   processor joined it: not in the pipeline, or the collector was down);
 * - `none`: nothing to summarize: a trace without a request (SERVER) span is complete on its own.
 */
export type SummaryState = 'made' | 'pending' | 'not_made' | 'none';

export interface TraceView {
  correlationId: string;
  project: string;
  /** The newest summary, absent until the join window has passed. */
  summary: RequestRow | null;
  summaryState: SummaryState;
  request: { name: string; spanId: string; offsetMs: number; durationMs: number; method: string | null; url: string | null; status: number | null; error: boolean } | null;
  /** Waterfall start (ISO 8601) and extent: from the first span start to the last span end (unattributed statements left out). */
  start: string | null;
  extentMs: number;
  dbTimeMs: number;
  /** The application's statements the request is charged with. */
  queryCount: number;
  /** Every DB span of the id, by start: counted, housekeeping and unattributed alike (see placement). */
  queries: WaterfallQuery[];
  /** Statements repeated at least the N+1 threshold, most frequent first. */
  nPlusOne: { query: string; count: number; totalMs: number }[];
  /** Records of the id that are neither the request, a DB span nor a summary (logs, other spans). */
  otherRecords: number;
  /** The request's sampled profile (profile.ts), null without one. */
  profile: ProfileView | null;
  /** Every span of the id as a tree, and its log records in time order (trace-view.ts). */
  trace: SpanTree;
}

/** When the lookup runs and the join window it judges "pending" by. */
export interface LookupClock {
  windowMs: number;
  now?: number;
}

/** One request's waterfall, or undefined when the store holds nothing for the id. */
export async function traceOf(
  reader: RecordReader,
  correlationId: string,
  options: JoinOptions = DEFAULT_JOIN_OPTIONS,
  clock: LookupClock = { windowMs: 10_000 },
): Promise<TraceView | undefined> {
  const records = await reader.byCorrelationId(correlationId);
  if (records.length === 0) return undefined;
  let joined = joinRecords(correlationId, records, options);
  // The same statements the processor gives the request by worker (workers.ts).
  if (joined.request) {
    const lent = await new WorkerAttribution(reader, options.toleranceMs).statementsFor(correlationId, joined.request);
    if (lent.length > 0) joined = joinRecords(correlationId, records, options, lent);
  }
  return viewOf(joined, records, clock);
}

function summaryStateOf(j: Joined, records: StoredRecord[], clock: LookupClock): SummaryState {
  if (j.summaries.length > 0) return 'made';
  if (!j.request && j.queries.length === 0) return 'none';
  // The processor joins an id one window after its newest record arrived (collector clock).
  const newest = records.reduce((at, r) => (r.kind !== 'summary' && r.receivedAtMs > at ? r.receivedAtMs : at), 0);
  if (newest + clock.windowMs > (clock.now ?? Date.now())) return 'pending';
  return j.request ? 'not_made' : 'none';
}

function viewOf(j: Joined, records: StoredRecord[], clock: LookupClock): TraceView {
  const newest = j.summaries.at(-1);
  const summary = newest ? rowOf(newest) : null;
  // With a summary, its N+1 verdict (made with the collector's configured threshold) decides.
  const flagged = newest
    ? new Set(arr(newest.attributes[SUMMARY.repeatedQueries]).map((g) => str((g as Record<string, AttributeValue>)?.query)))
    : new Set(j.repeated.filter((g) => g.nPlusOne).map((g) => g.normalized));
  // A statement outside the window would stretch the waterfall to minutes: it is listed, not scaled.
  const spans = [...(j.request ? [j.request] : []), ...j.queries.filter((q) => q.placement !== 'outside_window').map((q) => q.span)];
  const startNs = spans.length ? spans.map((s) => BigInt(s.startTimeUnixNano)).reduce((a, b) => (b < a ? b : a)) : 0n;
  const endNs = spans.length ? spans.map((s) => BigInt(s.endTimeUnixNano)).reduce((a, b) => (b > a ? b : a)) : 0n;
  const offset = (ns: string) => Number(BigInt(ns) - startNs) / 1e6;
  const counts = new Map<string, number>();
  for (const q of j.counted) counts.set(q.normalized, (counts.get(q.normalized) ?? 0) + 1);
  const counted = new Set(j.counted);
  const r = j.request;
  // Statements the join gave the request nest under it (they carry no parent span of their own).
  const tree = spanTreeOf(records, j.request ? { parentSpanId: j.request.spanId, spanIds: new Set(j.queries.filter((q) => q.placement !== 'outside_window').map((q) => q.span.spanId)) } : undefined);
  // Without a request span, the trace's root span names the project (not whichever record came first).
  const project = r ? projectOf(r) : (tree.spans[0]?.service ?? (records[0] ? projectOf(records[0]) : ''));
  // Re-delivered copies of a span are the span itself, not other records.
  const spanKeys = new Set([...spans, ...j.queries.map((q) => q.span)].map((s) => `${s.traceId}/${s.spanId}`));
  const related = (x: StoredRecord) => x.kind === 'summary' || (x.kind === 'span' && spanKeys.has(`${x.traceId}/${x.spanId}`));
  return {
    correlationId: j.correlationId,
    project,
    summary,
    summaryState: summaryStateOf(j, records, clock),
    request: r
      ? {
          name: r.name,
          spanId: r.spanId,
          offsetMs: offset(r.startTimeUnixNano),
          durationMs: r.durationMs,
          method: str(r.attributes[HTTP.method]),
          url: str(r.attributes[HTTP.urlFull]) ?? str(r.attributes[HTTP.urlPath]),
          status: num(r.attributes[HTTP.statusCode]),
          error: r.status.code === 2,
        }
      : null,
    start: spans.length ? isoOf(startNs.toString()) : null,
    extentMs: Number(endNs - startNs) / 1e6,
    dbTimeMs: j.dbTimeMs,
    queryCount: j.counted.length,
    queries: j.queries.map((q) => ({
      spanId: q.span.spanId,
      text: q.text,
      normalized: q.normalized,
      offsetMs: offset(q.span.startTimeUnixNano),
      durationMs: q.span.durationMs,
      repeats: counts.get(q.normalized) ?? 1,
      nPlusOne: counted.has(q) && q.statement === 'query' && flagged.has(q.normalized),
      error: q.span.status.code === 2,
      placement: q.placement,
      attributedBy: q.attributedBy,
      endUncertaintyMs: num(q.span.attributes[END_UNCERTAINTY]),
    })),
    nPlusOne: j.repeated.filter((g) => flagged.has(g.normalized)).map((g) => ({ query: g.normalized, count: g.count, totalMs: Math.round(g.totalMs * 1000) / 1000 })),
    otherRecords: records.filter((x) => !related(x)).length,
    profile: r ? profileOf(r) : null,
    trace: tree,
  };
}

/** A text waterfall for terminals: one line per span, bars drawn to scale in `width` columns. */
export function formatWaterfall(view: TraceView, width = 50): string {
  const scale = view.extentMs > 0 ? width / view.extentMs : 0;
  const bar = (offsetMs: number, durationMs: number, fill: string) => {
    const from = Math.min(width - 1, Math.floor(offsetMs * scale));
    const len = Math.max(1, Math.min(width - from, Math.round(durationMs * scale)));
    return `|${' '.repeat(from)}${fill.repeat(len)}${' '.repeat(width - from - len)}|`;
  };
  const ms = (v: number) => `${v.toFixed(1)} ms`.padStart(10);
  const lines: string[] = [];
  const r = view.request;
  const s = view.summary;
  const isRequest = r !== null || view.queries.length > 0;
  lines.push(`${isRequest ? 'request' : 'trace'} ${view.correlationId}${view.project ? ` (${view.project})` : ''}`);
  if (isRequest) {
    if (r) lines.push(`  ${[r.method, r.url, r.status].filter((x) => x !== null).join(' ')}${r.error ? '  [error]' : ''}`);
    else lines.push(`  (no request span stored${view.summaryState === 'pending' ? ' yet' : ''}: only DB spans)`);
    lines.push(
      `  started ${view.start ?? '-'}, ${r ? `${r.durationMs.toFixed(1)} ms total, ` : ''}DB ${view.dbTimeMs.toFixed(1)} ms in ${view.queryCount} queries` +
        (s ? (s.revision > 1 ? ` (summary revision ${s.revision})` : '') : SUMMARY_NOTE[view.summaryState]),
    );
    for (const g of view.nPlusOne) lines.push(`  N+1: ${g.count}x ${g.query} (${g.totalMs.toFixed(1)} ms)`);
    lines.push(...formatProfileTop(view.profile));
    lines.push('');
    if (r) lines.push(`${bar(r.offsetMs, r.durationMs, '=')} ${ms(r.durationMs)}  ${r.name}`);
    for (const q of view.queries) {
      if (q.placement === 'outside_window') continue;
      const mark = (q.nPlusOne ? ` [N+1 x${q.repeats}]` : q.placement === 'housekeeping' ? ' [housekeeping]' : '') + (q.attributedBy === 'worker' ? ' [by worker]' : '');
      lines.push(`${bar(q.offsetMs, q.durationMs, q.nPlusOne ? '#' : q.placement === 'housekeeping' ? '.' : '-')} ${ms(q.durationMs)}  ${oneLine(q.text, 100)}${mark}${q.error ? ' [error]' : ''}`);
    }
    const outside = view.queries.filter((q) => q.placement === 'outside_window');
    if (outside.length > 0) {
      lines.push('', `unattributed: ${outside.length} statements carry this id but ran outside the request's window (a persistent connection still tagged with it); not counted here (a later request of the same PHP worker may count them)`);
      for (const q of outside) lines.push(`  ${`${q.offsetMs >= 0 ? '+' : ''}${q.offsetMs.toFixed(1)} ms`.padStart(14)} ${ms(q.durationMs)}  ${oneLine(q.text, 100)}`);
    }
    lines.push('');
  } else {
    const t = view.trace;
    lines.push(`  started ${t.start ?? '-'}, ${t.extentMs.toFixed(1)} ms, ${t.spans.length} spans, ${t.logs.length} log records (no request span: a complete trace, nothing to summarize)`, '');
  }
  lines.push(...formatSpanTree(view.trace, width));
  return lines.join('\n') + '\n';
}

const SUMMARY_NOTE: Record<SummaryState, string> = {
  made: '',
  pending: ' (not summarized yet: join window open)',
  not_made: ' (no summary stored: no correlate processor joined it after its window)',
  none: ' (no request span: nothing to summarize)',
};

/** A table of requests for terminals. */
export function formatRequests(rows: RequestRow[]): string {
  if (rows.length === 0) return 'no requests match (summaries appear once a request\'s join window has passed)\n';
  const head = ['time', 'duration', 'db', 'queries', 'status', 'method', 'url', 'correlation id'];
  const body = rows.map((r) => [
    r.time.replace('T', ' ').slice(0, 23),
    `${r.durationMs.toFixed(0)} ms`,
    `${r.dbTimeMs.toFixed(0)} ms`,
    `${r.queryCount}${r.nPlusOne ? ' N+1' : ''}`,
    r.status === null ? '-' : String(r.status),
    r.method ?? '-',
    oneLine(r.url ?? r.name, 60),
    r.correlationId,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  return [head, ...body].map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function isoOf(nanos: string): string {
  const ns = BigInt(nanos);
  return `${new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 23)}${(ns % 1_000_000n).toString().padStart(6, '0').slice(0, 3)}Z`;
}

function str(v: AttributeValue | undefined): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}
function num(v: AttributeValue | undefined): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return Number(v);
  return null;
}
function arr(v: AttributeValue | undefined): AttributeValue[] {
  return Array.isArray(v) ? v : [];
}
