// The correlate feature's store queries, phrased in the reader's generic terms (newest record of
// a kind per correlation id; ids with records newer than their newest record of a kind).
import type { CorrelationActivity, RecordReader, StoredRecord } from '../../collector/core/api.js';
import { HTTP } from './attributes.js';

/** Filters for listing request summaries. */
export interface RequestQuery {
  /** Summaries that arrived at or after this time (ms since the epoch). */
  sinceMs: number;
  /** Resource `service.name` equal to this. */
  project?: string;
  /** `url.full` containing this text (case-insensitive). */
  urlContains?: string;
  /** Requests that took at least this long. */
  minDurationMs?: number;
  /** `recent`: latest request start first; `slowest`: longest duration first. */
  order: 'recent' | 'slowest';
  limit: number;
}

/** The newest summary of each request matching the query (a late span re-summarizes a request). */
export function recentRequests(reader: RecordReader, query: RequestQuery): Promise<StoredRecord[]> {
  return reader.latestPerCorrelation({
    kind: 'summary',
    sinceMs: query.sinceMs,
    order: query.order === 'slowest' ? 'duration' : 'start',
    limit: query.limit,
    ...(query.project !== undefined ? { project: query.project } : {}),
    ...(query.urlContains !== undefined ? { attributeContains: { key: HTTP.urlFull, text: query.urlContains } } : {}),
    ...(query.minDurationMs !== undefined ? { minDurationMs: query.minDurationMs } : {}),
  });
}

/** Ids with records newer than their newest summary that arrived at or after `sinceMs` (and have store ids above `afterId`). */
export function unsummarizedCorrelations(reader: RecordReader, sinceMs: number, limit: number, afterId = 0): Promise<CorrelationActivity[]> {
  return reader.correlationsAfterKind('summary', sinceMs, limit, afterId);
}
