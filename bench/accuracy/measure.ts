// Compares what the monitoring stored with what each request measured about itself: pure, so
// the table's definitions are in one place. A stored DB span is matched to the statement of the
// same backend during whose PHP-timed call it ran (a backend runs one statement at a time);
// driver housekeeping (DEALLOCATE, RESET ALL, SET application_name) matches nothing.
import { CLIENT_TURNAROUND_US } from '../../agents/pg/sampler.js';
import { median, percentile } from '../util.js';

export interface TruthStatement {
  pid: number;
  sql: string;
  start_us: number;
  end_us: number;
}

export interface TruthRequest {
  id: string;
  page: string;
  /**
   * How the page connects: `ordinary` (a new connection, tagged by PGAPPNAME), `persistent`, or
   * `pooled` (through pgbouncer in transaction mode: no backend pid, a marker in each text).
   */
  connection: 'ordinary' | 'persistent' | 'pooled';
  start_us: number;
  end_us: number;
  statements: TruthStatement[];
}

export interface StoredDbSpan {
  spanId: string;
  correlationId: string;
  pid: number;
  startUs: number;
  endUs: number;
  text: string;
  endPrecision: string;
  endUncertaintyMs: number;
}

export interface StoredView {
  summary: { queryCount: number; dbTimeMs: number; nPlusOne: boolean } | null;
  /** Span ids the request's summary counts. */
  counted: string[];
}

export interface Measured {
  rows: [label: string, value: string][];
  /** Diagnostics printed under the table. */
  notes: string[];
}

const HOUSEKEEPING = /^\s*(DEALLOCATE|RESET|DISCARD|SET\s+(SESSION\s+)?application_name)\b/i;
/** The server starts a statement just after PHP's call begins; its clock is PHP's (one machine). */
const MATCH_SLACK_US = 1_000;
const LONG_MS = 100;
/** A next_query end is the next start minus this. */
const TURNAROUND_US = Number(CLIENT_TURNAROUND_US);

const pct = (n: number, of: number) => (of === 0 ? 'n/a' : `${((100 * n) / of).toFixed(n === of || n === 0 ? 0 : 1)}%`);
const ms = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;

/** A statement's text with literals made `?`, as the agent's redaction leaves it. */
function shapeOf(sql: string): string {
  return sql.replace(/'(?:[^']|'')*'/g, '?').replace(/\b\d+(\.\d+)?\b/g, '?').replace(/\s+/g, ' ').trim();
}

/** The union of intervals' length (µs). */
function unionUs(intervals: [number, number][]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [from, to] = [-Infinity, -Infinity];
  for (const [s, e] of sorted) {
    if (s > to) {
      if (to > from) total += to - from;
      [from, to] = [s, e];
    } else if (e > to) to = e;
  }
  if (to > from) total += to - from;
  return total;
}

export function measure(truth: TruthRequest[], spans: StoredDbSpan[], views: Map<string, StoredView>, thresholdMs: number): Measured {
  // Match each application span to the statement whose call it started in.
  // By backend; a pooled statement (pid 0) by its text, unique through its marker.
  type Candidate = { req: TruthRequest; st: TruthStatement; spans: StoredDbSpan[] };
  const candidates = new Map<string, Candidate[]>();
  const keyOf = (pid: number, sql: string) => (pid === 0 ? `text:${shapeOf(sql)}` : `pid:${pid}`);
  for (const req of truth) for (const st of req.statements) {
    const key = keyOf(st.pid, st.sql);
    const list = candidates.get(key);
    if (list) list.push({ req, st, spans: [] });
    else candidates.set(key, [{ req, st, spans: [] }]);
  }
  let unmatched = 0;
  for (const span of spans) {
    if (HOUSEKEEPING.test(span.text)) continue;
    let best: { spans: StoredDbSpan[] } | undefined;
    let bestGap = Infinity;
    const shape = shapeOf(span.text);
    // Just after its start: a start from the log may be off by up to half its millisecond, and a
    // sampled end may reach over statements the polls missed or to the next poll.
    const at = span.startUs + Math.min((span.endUs - span.startUs) / 2, 500);
    for (const c of [...(candidates.get(keyOf(span.pid, '')) ?? []), ...(candidates.get(keyOf(0, span.text)) ?? [])]) {
      if (at < c.st.start_us - MATCH_SLACK_US || at > c.st.end_us + MATCH_SLACK_US) continue;
      // The same text first (a sub-millisecond statement's logged times overlap its neighbours'), then the closest.
      const gap = (shapeOf(c.st.sql) === shape ? 0 : 1e9) + (at < c.st.start_us ? c.st.start_us - at : at > c.st.end_us ? at - c.st.end_us : 0);
      if (gap < bestGap) (best = c), (bestGap = gap);
    }
    if (best) best.spans.push(span);
    else unmatched++;
  }
  const countedIn = new Map<string, string>();
  for (const [id, v] of views) for (const spanId of v.counted) countedIn.set(spanId, id);

  const matched = [...candidates.values()].flat();
  const isSlow = (r: TruthRequest) => (r.end_us - r.start_us) / 1000 >= thresholdMs;
  const slow = truth.filter(isSlow);
  const fast = truth.filter((r) => !isSlow(r));
  const summarized = (r: TruthRequest) => views.get(r.id)?.summary != null;

  // Statements of 100 ms or more in slow (summarized) requests.
  const placement = (filter: (r: TruthRequest) => boolean) => {
    const c = { right: 0, wrong: 0, unattributed: 0, missing: 0, total: 0 };
    for (const m of matched) {
      if (!isSlow(m.req) || !filter(m.req) || (m.st.end_us - m.st.start_us) / 1000 < LONG_MS) continue;
      c.total++;
      const span = m.spans[0];
      const where = span ? countedIn.get(span.spanId) : undefined;
      if (!span) c.missing++;
      else if (where === m.req.id) c.right++;
      else if (where !== undefined) c.wrong++;
      else c.unattributed++;
    }
    return c;
  };
  const long = placement(() => true);
  const longOrdinary = placement((r) => r.connection === 'ordinary');
  const longPersistent = placement((r) => r.connection === 'persistent');
  const longPooled = placement((r) => r.connection === 'pooled');
  const share = (c: typeof long) => `${pct(c.right, c.total)} right (${c.right}/${c.wrong}/${c.unattributed}/${c.missing})`;

  const captured = matched.filter((m) => m.spans.length > 0);
  const duplicates = matched.reduce((n, m) => n + Math.max(0, m.spans.length - 1), 0);
  const endErrors = captured.map((m) => (m.spans[0]!.endUs - m.st.end_us) / 1000);
  // The PHP-timed end is later than the server's by the result's way back: allow 2 ms.
  const withinUncertainty = captured.filter((m) => Math.abs(m.spans[0]!.endUs - m.st.end_us) / 1000 <= m.spans[0]!.endUncertaintyMs + 2).length;

  // DB time: the summary against the union of the statements PHP timed, per page.
  const pages = [...new Set(truth.map((r) => r.page))].sort();
  const dbErrors = pages.map((page) => {
    const errs = slow
      .filter((r) => r.page === page && summarized(r))
      .map((r) => {
        const truthMs = unionUs(r.statements.map((s) => [s.start_us, s.end_us])) / 1000;
        const diff = views.get(r.id)!.summary!.dbTimeMs - truthMs;
        return { rel: truthMs > 0 ? diff / truthMs : 0, diff };
      });
    if (errs.length === 0) return `${page} n/a`;
    return `${page} ${ms(100 * median(errs.map((e) => e.rel)))}% (${ms(median(errs.map((e) => e.diff)))} ms)`;
  });

  const withSummary = truth.filter(summarized);
  const nPlusOne = withSummary.filter((r) => r.page === 'nplus1');
  const others = withSummary.filter((r) => r.page !== 'nplus1');
  const exact = (rs: TruthRequest[]) => rs.filter((r) => views.get(r.id)!.summary!.queryCount === r.statements.length).length;
  const ordinarySummaries = withSummary.filter((r) => r.connection === 'ordinary');

  const byPrecision = new Map<string, number[]>();
  for (const m of captured) {
    const p = m.spans[0]!.endPrecision;
    byPrecision.set(p, [...(byPrecision.get(p) ?? []), (m.spans[0]!.endUs - m.st.end_us) / 1000]);
  }

  // What the middle of a next_query span's bounds (the estimate before) would have given: the
  // bounds are [end - uncertainty, next start], and the next start is the end plus the turnaround.
  const middle = captured
    .filter((m) => m.spans[0]!.endPrecision === 'next_query')
    .map((m) => {
      const s = m.spans[0]!;
      const u = s.endUncertaintyMs * 1000;
      const low = s.endUs - u;
      const high = s.endUs + Math.min(u, TURNAROUND_US);
      return ((low + high) / 2 - m.st.end_us) / 1000;
    });

  return {
    rows: [
      ['requests (slow / fast)', `${slow.length} / ${fast.length}`],
      ['slow requests captured / fast wrongly captured', `${slow.filter(summarized).length}/${slow.length}, ${fast.filter(summarized).length}/${fast.length}`],
      ['statements >= 100 ms right (right/wrong/unattributed/missing)', share(long)],
      ['same, ordinary connections only', share(longOrdinary)],
      ['same, persistent connections only', share(longPersistent)],
      ['same, through pgbouncer (transaction mode) only', longPooled.total ? share(longPooled) : 'not run'],
      ['all statements captured', `${pct(captured.length, matched.length)} (${captured.length}/${matched.length})`],
      ['duplicate spans / spans matching no statement', `${duplicates} / ${unmatched}`],
      ['span end minus PHP-measured end, median / p99 (ms)', endErrors.length ? `${ms(median(endErrors))} / ${ms(percentile(endErrors, 99))}` : 'n/a'],
      ['PHP-measured end within the stated uncertainty (+2 ms)', pct(withinUncertainty, captured.length)],
      ['DB time error vs PHP, median, per slow page', dbErrors.join(', ')],
      ['N+1 page flagged / other pages flagged', `${pct(nPlusOne.filter((r) => views.get(r.id)!.summary!.nPlusOne).length, nPlusOne.length)}, ${others.filter((r) => views.get(r.id)!.summary!.nPlusOne).length}/${others.length}`],
      ['query count exact (all / ordinary connections)', `${exact(withSummary)} of ${withSummary.length} / ${exact(ordinarySummaries)} of ${ordinarySummaries.length}`],
    ],
    notes: [
      `span end minus PHP end by end precision, median ms (n): ${[...byPrecision].map(([p, e]) => `${p} ${ms(median(e))} (${e.length})`).join(', ')}`,
      ...(middle.length ? [`next_query ends at the middle of their bounds instead: median ${ms(median(middle))} ms, p1 ${ms(percentile(middle, 1))} ms`] : []),
    ],
  };
}
