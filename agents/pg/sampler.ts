// Follows each (pid, query_start) of the backends worth watching from first sight to
// completion, one pg_stat_activity snapshot at a time. Pure state: the poll loop hands it rows,
// it hands back the queries that finished, so it is tested without a clock.
import { correlationIdFromAppName } from './correlation.js';
import type { EndPrecision, QueryObservation } from './observation.js';

/** One row of the poll query (see ACTIVITY_SQL). Timestamps are microseconds since the epoch, as text. */
export interface ActivityRow {
  pid: number;
  datname: string | null;
  application_name: string | null;
  state: string | null;
  query_start_us: string | null;
  state_change_us: string | null;
  wait_event_type: string | null;
  wait_event: string | null;
  query_id: string | null;
  query: string | null;
  query_bytes: number | null;
  client_addr?: string | null;
  client_port?: number | null;
  backend_start_us?: string | null;
  xact_start_us?: string | null;
}

/**
 * The one query per poll. Client backends carrying a correlation id, or (when enabled) a
 * sqlcommenter traceparent, plus the backends being followed ($1), so a followed query's end is
 * seen even when its backend stops qualifying. Timestamps as integer microseconds (exact: extract
 * returns numeric). The client address, port and backend start say which connection ran a
 * statement (a persistent connection outlives the request that tagged it). Never the agent's own session.
 */
export const ACTIVITY_SQL = `SELECT pid, datname, application_name, state,
  (extract(epoch FROM query_start) * 1000000)::int8::text AS query_start_us,
  (extract(epoch FROM state_change) * 1000000)::int8::text AS state_change_us,
  wait_event_type, wait_event, query_id::text AS query_id, query, octet_length(query) AS query_bytes,
  host(client_addr) AS client_addr, client_port, (extract(epoch FROM backend_start) * 1000000)::int8::text AS backend_start_us,
  (extract(epoch FROM xact_start) * 1000000)::int8::text AS xact_start_us
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND (application_name LIKE 'req:%' OR ($2 AND query LIKE '%traceparent%') OR pid = ANY($1::int[]))`;

export interface SamplerOptions {
  /** track_activity_query_size in bytes: a text of size-1 bytes was cut short. */
  queryTextLimit: number;
  sqlcommenter: boolean;
}

/**
 * The extended protocol (PDO, pg_query_params) restarts query_start at Parse, Bind and Execute
 * of one statement, with the same text, inside one transaction. A new query_start with the same
 * text and transaction start this soon after the followed one is the next phase of the same
 * statement, not a second execution: a second autocommit execution has a transaction of its own,
 * and inside an explicit transaction a poll ~100 ms later finds a second execution this close to
 * the first only if that one ran for most of the interval. Parse and Bind (planning) take well
 * under this on OLTP statements; slower planning is reported as two statements.
 */
const PHASE_GAP_US = 50_000n;
/**
 * An idle backend shows no transaction start (the implicit transaction ended with the
 * statement), so it cannot be compared: then only a gap this small counts as the next phase.
 */
const PHASE_GAP_UNKNOWN_XACT_US = 5_000n;

/**
 * What separates one statement's end from the next statement's query_start on the same backend
 * when the client sends it at once: the result's way to the client, the driver handing it over
 * and the next message's way back (local TCP or a Unix socket: tens to hundreds of µs). A
 * statement seen running and then followed by a new query_start ended between the two; the
 * next start minus this is the likeliest end within those bounds, because applications run
 * statements back to back far more often than they pause between them (and a pause, or a
 * statement the polls missed, is covered by the stated uncertainty).
 */
export const CLIENT_TURNAROUND_US = 200n;

/** Whether the row shows the next protocol phase (Bind, Execute) of the followed statement. */
function isNextPhase(followed: Followed, row: ActivityRow, startUs: bigint): boolean {
  if (row.query !== followed.row.query || startUs <= followed.phaseStartUs) return false;
  const gap = startUs - followed.phaseStartUs;
  const a = row.xact_start_us ?? null;
  const b = followed.row.xact_start_us ?? null;
  if (a !== null && b !== null) return a === b && gap <= PHASE_GAP_US;
  return gap <= PHASE_GAP_UNKNOWN_XACT_US;
}

interface Followed {
  /** The statement's start: query_start of its first phase seen. */
  startUs: bigint;
  /** query_start of the phase now running (identifies it in the next snapshot). */
  phaseStartUs: bigint;
  /** When the last poll that saw it running was sent (agent clock, µs): the end is no earlier. */
  lastSeenUs: bigint;
  row: ActivityRow;
  waits: Set<string>;
}

export class ActivitySampler {
  private readonly followed = new Map<number, Followed>();
  /** Per pid, the query_start of the last query already handled, so an idle backend's last query is reported once. */
  private readonly handled = new Map<number, bigint>();
  private primed = false;

  constructor(private readonly options: SamplerOptions) {}

  /** The pids to pass as $1 of ACTIVITY_SQL. */
  followedPids(): number[] {
    return [...this.followed.keys()];
  }

  /** Whether a backend is worth watching: a correlation id in its application_name, or a sqlcommenter traceparent when enabled. */
  qualifies(applicationName: string | null, query: string | null): boolean {
    if (correlationIdFromAppName(applicationName)) return true;
    return this.options.sqlcommenter && /traceparent\s*=\s*'/.test(query ?? '');
  }

  /**
   * Takes one snapshot; returns the queries found finished. `nowUs`: when the snapshot had
   * arrived; `sentUs`: when the poll was sent (the snapshot lies between the two).
   */
  observe(rows: readonly ActivityRow[], nowUs: bigint, sentUs: bigint = nowUs): QueryObservation[] {
    const done: QueryObservation[] = [];
    const seen = new Set<number>();
    for (const row of rows) {
      if (row.query_start_us === null) continue;
      seen.add(row.pid);
      const startUs = BigInt(row.query_start_us);
      const active = row.state === 'active';
      let current = this.followed.get(row.pid);
      if (current && current.phaseStartUs !== startUs) {
        if (isNextPhase(current, row, startUs)) {
          current.phaseStartUs = startUs;
          current.row = row;
        } else {
          // It finished after the last poll that saw it running and before the next one started.
          done.push(this.finish(current, current.lastSeenUs, startUs, 'next_query', false, startUs - CLIENT_TURNAROUND_US));
          this.followed.delete(row.pid);
          current = undefined;
        }
      }
      if (current) {
        if (active) {
          this.noteWait(current, row);
          current.lastSeenUs = sentUs;
        } else {
          const end = this.stateChange(row, nowUs);
          done.push(this.finish(current, end, end, 'state_change', row.state === 'idle in transaction (aborted)'));
          this.followed.delete(row.pid);
          this.handled.set(row.pid, startUs);
        }
        continue;
      }
      if (startUs <= (this.handled.get(row.pid) ?? -1n) || !this.qualifies(row.application_name, row.query)) continue;
      if (active) {
        const followed: Followed = { startUs, phaseStartUs: startUs, lastSeenUs: sentUs, row, waits: new Set() };
        this.noteWait(followed, row);
        this.followed.set(row.pid, followed);
      } else {
        // Began and ended between two polls; the server still shows it, with both timestamps.
        // On the first poll these are old news from before the agent started.
        const end = this.stateChange(row, nowUs);
        if (this.primed) done.push(this.finish({ startUs, phaseStartUs: startUs, lastSeenUs: startUs, row, waits: new Set() }, end, end, 'state_change', row.state === 'idle in transaction (aborted)'));
        this.handled.set(row.pid, startUs);
      }
    }
    for (const [pid, followed] of this.followed) {
      if (seen.has(pid)) continue;
      done.push(this.finish(followed, followed.lastSeenUs, nowUs, 'poll', false));
      this.followed.delete(pid);
    }
    for (const pid of this.handled.keys()) if (!seen.has(pid)) this.handled.delete(pid);
    this.primed = true;
    return done;
  }

  private stateChange(row: ActivityRow, nowUs: bigint): bigint {
    return row.state_change_us === null ? nowUs : BigInt(row.state_change_us);
  }

  private noteWait(followed: Followed, row: ActivityRow): void {
    if (row.wait_event_type) followed.waits.add(`${row.wait_event_type}:${row.wait_event ?? ''}`);
  }

  /**
   * The end lies in [lowUs, highUs]. It is reported at `likelyUs` (kept within the bounds) when
   * there is a likeliest point, else at the middle; the uncertainty reaches the farther bound,
   * so the true end always lies within end ± uncertainty.
   */
  private finish(followed: Followed, lowUs: bigint, highUs: bigint, endPrecision: EndPrecision, failed: boolean, likelyUs?: bigint): QueryObservation {
    const { row } = followed;
    // It ran until at least its last phase began, and cannot have ended before it started.
    const floor = followed.phaseStartUs;
    const low = lowUs < floor ? floor : lowUs;
    const high = highUs < low ? low : highUs;
    const guess = likelyUs ?? (low + high) / 2n;
    const endUs = guess < low ? low : guess > high ? high : guess;
    const obs: QueryObservation = {
      source: 'sampling',
      pid: row.pid,
      startUs: followed.startUs,
      endUs,
      endPrecision,
      endUncertaintyUs: likelyUs === undefined ? (high - low + 1n) / 2n : endUs - low > high - endUs ? endUs - low : high - endUs,
      applicationName: row.application_name,
      query: row.query ?? '',
      database: row.datname,
      waitEvents: [...followed.waits],
      queryId: row.query_id && row.query_id !== '0' ? row.query_id : undefined,
      truncated: (row.query_bytes ?? 0) >= this.options.queryTextLimit - 1,
      failed,
    };
    if (followed.phaseStartUs !== followed.startUs) obs.executeStartUs = followed.phaseStartUs;
    if (row.client_addr) obs.clientAddress = row.client_addr;
    if (typeof row.client_port === 'number' && row.client_port > 0) obs.clientPort = row.client_port;
    if (row.backend_start_us) obs.backendStartUs = BigInt(row.backend_start_us);
    return obs;
  }
}
