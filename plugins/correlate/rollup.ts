// What a request summary adds to the overview's rollups (docs/overview.md): one row per
// endpoint and minute, one per statement and minute. The contribution travels with the summary
// to its commit (attachRollup), so a crash keeps both or neither. A summary that supersedes an
// earlier one (late spans) takes the earlier one's figures back in the same contribution, so a
// request is counted once, with its latest figures.
import { attachRollup, StatusCode } from '../../collector/core/api.js';
import type { DerivedRecord, RollupDelta } from '../../collector/core/api.js';
import { joinRecords, type JoinOptions, type Joined, type StoredSpan } from './join.js';
import { HTTP, SUMMARY } from './attributes.js';
import { observe } from './histogram.js';
import { HTTP_STATUS_ERROR_FROM, SERIES, endpointOf } from './rollup-names.js';

/** Longest statement text kept as a rollup key (longer ones are cut and marked). */
const MAX_STATEMENT_KEY = 2000;

/** The summary, with its rollup contribution attached (the correlate processor's one hook). */
export function withRollup(summary: DerivedRecord, joined: Joined, options: JoinOptions): DerivedRecord {
  const deltas = contributionOf(joined, 1);
  const previous = joined.summaries.at(-1);
  if (previous) {
    // The previous summary covered the records up to its last record id: join those again.
    const last = Number(previous.attributes[SUMMARY.lastRecordId]);
    if (Number.isFinite(last)) {
      const spans: StoredSpan[] = [joined.request, ...joined.queries.map((q) => q.span)].filter((s): s is StoredSpan => s !== undefined && s.id <= last);
      deltas.push(...contributionOf(joinRecords(joined.correlationId, spans, options), -1));
    }
  }
  return attachRollup(summary, { once: summary.spanId, deltas });
}

/** One request's figures as rollup deltas, times `sign` (-1 takes them back). */
export function contributionOf(joined: Joined, sign: 1 | -1): RollupDelta[] {
  const request = joined.request;
  if (!request) return [];
  const atMs = Number(BigInt(request.startTimeUnixNano) / 1_000_000n);
  const status = request.attributes[HTTP.statusCode];
  const failed =
    (typeof status === 'number' && status >= HTTP_STATUS_ERROR_FROM) || request.status.code === StatusCode.ERROR || request.attributes[HTTP.errorType] !== undefined;
  const nPlusOne = new Set(joined.repeated.filter((g) => g.nPlusOne).map((g) => g.normalized));
  const endpoint: Record<string, number> = {
    n: sign,
    ms: sign * request.durationMs,
    db: sign * joined.dbTimeMs,
    q: sign * joined.counted.length,
  };
  if (failed) endpoint.err = sign;
  if (nPlusOne.size > 0) endpoint.np1 = sign;
  observe(endpoint, request.durationMs, sign);
  const deltas: RollupDelta[] = [{ series: SERIES.endpoint, atMs, key: endpointOf(request), add: endpoint }];

  const statements = new Map<string, Record<string, number>>();
  for (const q of joined.counted) {
    if (q.statement !== 'query') continue;
    const key = q.normalized.length > MAX_STATEMENT_KEY ? `${q.normalized.slice(0, MAX_STATEMENT_KEY)}…` : q.normalized;
    let s = statements.get(key);
    if (!s) {
      s = { reqs: sign };
      if (nPlusOne.has(q.normalized)) s.np1 = sign;
      statements.set(key, s);
    }
    s.calls = (s.calls ?? 0) + sign;
    s.ms = (s.ms ?? 0) + sign * q.span.durationMs;
    observe(s, q.span.durationMs, sign);
  }
  for (const [key, add] of statements) deltas.push({ series: SERIES.statement, atMs, key, add });
  return deltas;
}

