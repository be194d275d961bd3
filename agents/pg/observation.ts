// One finished query as the agent saw it, from sampling, from the server log, or from both
// (merged). Spans are built from these, and nothing else.

/**
 * How the end time was found, best first:
 * - `exact`: start from pg_stat_activity, duration from the server log (microseconds).
 * - `state_change`: the server's own timestamp of the backend going idle (microseconds).
 * - `millisecond`: from the server log alone; log timestamps have millisecond resolution.
 * - `next_query`: the backend had started its next query when polled; the end is no later than that start.
 * - `poll`: the backend was gone when polled; the end lies between the last poll that saw it running and this one.
 */
export type EndPrecision = 'exact' | 'state_change' | 'millisecond' | 'next_query' | 'poll';

export interface QueryObservation {
  source: 'sampling' | 'log' | 'sampling+log';
  pid: number;
  /** Microseconds since the epoch. */
  startUs: bigint;
  endUs: bigint;
  endPrecision: EndPrecision;
  applicationName: string | null;
  /** The statement text as the server showed it (may be cut short, see truncated). */
  query: string;
  database: string | null;
  waitEvents: string[];
  /** pg_stat_activity.query_id / log query_id, when the server computes it (compute_query_id). */
  queryId: string | undefined;
  /** Cut short by track_activity_query_size. */
  truncated: boolean;
  /** The backend was left in an aborted transaction: the statement failed. */
  failed: boolean;
}
