// One finished query as the agent saw it, from sampling, from the server log, or from both
// (merged). Spans are built from these, and nothing else.

/**
 * How the end time was found, best first:
 * - `exact`: start from pg_stat_activity, duration from the server log (microseconds).
 * - `state_change`: the server's own timestamp of the backend going idle (microseconds).
 * - `millisecond`: from the server log alone; log timestamps have millisecond resolution.
 * - `next_query`: the backend had started its next query when polled; the end lies between the
 *   last poll that saw it running and that next start.
 * - `poll`: the backend was gone when polled; the end lies between the last poll that saw it running and this one.
 * For `next_query` the end is the next start minus the client's turnaround (statements usually run
 * back to back), for `poll` the middle of the bounds; `endUncertaintyUs` reaches the farther bound.
 */
export type EndPrecision = 'exact' | 'state_change' | 'millisecond' | 'next_query' | 'poll';

export interface QueryObservation {
  source: 'sampling' | 'log' | 'sampling+log';
  pid: number;
  /** Microseconds since the epoch. */
  startUs: bigint;
  endUs: bigint;
  endPrecision: EndPrecision;
  /** The true end lies within endUs ± this (0 when the server said when it ended). */
  endUncertaintyUs: bigint;
  /**
   * The query_start of the statement's last protocol phase, when it was seen in several
   * (Parse, Bind, Execute each restart query_start): the server log times the Execute alone.
   */
  executeStartUs?: bigint;
  /** The client end of the backend's connection (absent for Unix sockets), and when the backend started: which connection ran it. */
  clientAddress?: string;
  clientPort?: number;
  backendStartUs?: bigint;
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
