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
}

/**
 * The one query per poll. Client backends carrying a correlation id, or (when enabled) a
 * sqlcommenter traceparent, plus the backends being followed ($1), so a followed query's end is
 * seen even when its backend stops qualifying. Timestamps as integer microseconds (exact: extract
 * returns numeric). Never the agent's own session.
 */
export const ACTIVITY_SQL = `SELECT pid, datname, application_name, state,
  (extract(epoch FROM query_start) * 1000000)::int8::text AS query_start_us,
  (extract(epoch FROM state_change) * 1000000)::int8::text AS state_change_us,
  wait_event_type, wait_event, query_id::text AS query_id, query, octet_length(query) AS query_bytes
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND (application_name LIKE 'req:%' OR ($2 AND query LIKE '%traceparent%') OR pid = ANY($1::int[]))`;

export interface SamplerOptions {
  /** track_activity_query_size in bytes: a text of size-1 bytes was cut short. */
  queryTextLimit: number;
  sqlcommenter: boolean;
}

interface Followed {
  startUs: bigint;
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

  /** Takes one snapshot taken at nowUs; returns the queries found finished. */
  observe(rows: readonly ActivityRow[], nowUs: bigint): QueryObservation[] {
    const done: QueryObservation[] = [];
    const seen = new Set<number>();
    for (const row of rows) {
      if (row.query_start_us === null) continue;
      seen.add(row.pid);
      const startUs = BigInt(row.query_start_us);
      const active = row.state === 'active';
      const current = this.followed.get(row.pid);
      if (current && current.startUs !== startUs) {
        // It finished before the next one started.
        done.push(this.finish(current, startUs, 'next_query', false));
        this.followed.delete(row.pid);
      }
      if (current && current.startUs === startUs) {
        if (active) this.noteWait(current, row);
        else {
          done.push(this.finish(current, this.stateChange(row, nowUs), 'state_change', row.state === 'idle in transaction (aborted)'));
          this.followed.delete(row.pid);
          this.handled.set(row.pid, startUs);
        }
        continue;
      }
      if (startUs <= (this.handled.get(row.pid) ?? -1n) || !this.qualifies(row.application_name, row.query)) continue;
      if (active) {
        const followed: Followed = { startUs, row, waits: new Set() };
        this.noteWait(followed, row);
        this.followed.set(row.pid, followed);
      } else {
        // Began and ended between two polls; the server still shows it, with both timestamps.
        // On the first poll these are old news from before the agent started.
        if (this.primed) done.push(this.finish({ startUs, row, waits: new Set() }, this.stateChange(row, nowUs), 'state_change', row.state === 'idle in transaction (aborted)'));
        this.handled.set(row.pid, startUs);
      }
    }
    for (const [pid, followed] of this.followed) {
      if (seen.has(pid)) continue;
      done.push(this.finish(followed, nowUs, 'poll', false));
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

  private finish(followed: Followed, endUs: bigint, endPrecision: EndPrecision, failed: boolean): QueryObservation {
    const { row } = followed;
    return {
      source: 'sampling',
      pid: row.pid,
      startUs: followed.startUs,
      endUs: endUs < followed.startUs ? followed.startUs : endUs,
      endPrecision,
      applicationName: row.application_name,
      query: row.query ?? '',
      database: row.datname,
      waitEvents: [...followed.waits],
      queryId: row.query_id && row.query_id !== '0' ? row.query_id : undefined,
      truncated: (row.query_bytes ?? 0) >= this.options.queryTextLimit - 1,
      failed,
    };
  }
}
