// The SQLite store's read queries (RecordReader in api.ts): a request's records, the newest
// record of a kind per correlation id, ids with records newer than their newest summary, an id's
// records without their bodies, and spans by start time.
import type Database from 'better-sqlite3';
import type { CorrelationActivity, LatestQuery, RecordKind, RecordRef } from '../../core/api.js';
import { parseStoredJson, type StoredRecord } from '../../core/model.js';

type Row = { id: number; received_at_ms: number; body: string };

function toStored(row: Row): StoredRecord {
  return parseStoredJson(row.body, row.id, row.received_at_ms);
}

export class SqliteReader {
  readonly #db: Database.Database;
  // Prepared once: the join runs these for every id (preparing costs as much as a small query).
  readonly #byCorrelation: Database.Statement;
  readonly #index: Database.Statement;
  readonly #spansBetween: Database.Statement;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#byCorrelation = db.prepare('SELECT id, received_at_ms, body FROM records WHERE correlation_id = ? ORDER BY id');
    this.#index = db.prepare("SELECT id, kind, coalesce(span_id, '') AS spanId, received_at_ms AS receivedAtMs FROM records WHERE correlation_id = ? ORDER BY id");
    // The time index (records_time) bounds the rows; the span kind is only in the body.
    this.#spansBetween = db.prepare(
      `SELECT id, received_at_ms, body FROM records
       WHERE time_unix_nano BETWEEN @from AND @to AND kind = 'span' AND json_extract(body, '$.spanKind') = @spanKind
       ORDER BY time_unix_nano, id LIMIT @limit`,
    );
  }

  byCorrelationId(correlationId: string): StoredRecord[] {
    return (this.#byCorrelation.all(correlationId) as Row[]).map(toStored);
  }

  correlationIndex(correlationId: string): RecordRef[] {
    return this.#index.all(correlationId) as RecordRef[];
  }

  spansStartingBetween(fromNs: string, toNs: string, spanKind: number, limit: number): StoredRecord[] {
    return (this.#spansBetween.all({ from: BigInt(fromNs), to: BigInt(toNs), spanKind, limit }) as Row[]).map(toStored);
  }

  correlationsAfterKind(kind: RecordKind, sinceMs: number, limit: number, afterId = 0): CorrelationActivity[] {
    // A rowid range scan over what arrived since, grouped by id; each group's newest record of
    // the kind comes from the partial index over that kind (summaries).
    return this.#db
      .prepare(
        `SELECT r.correlation_id AS correlationId, max(r.received_at_ms) AS lastReceivedAtMs, max(r.id) AS lastId
         FROM records r NOT INDEXED -- the rowid range, never a walk of the whole correlation index
         WHERE r.id >= @from AND r.received_at_ms >= @since AND r.correlation_id IS NOT NULL AND r.kind <> @kind
         GROUP BY r.correlation_id
         HAVING max(r.id) > coalesce(
           (SELECT max(s.id) FROM records s WHERE s.kind = @kind AND s.correlation_id = r.correlation_id), 0)
         ORDER BY lastReceivedAtMs, correlationId
         LIMIT @limit`,
      )
      .all({ from: Math.max(afterId + 1, this.#firstIdReceivedAtOrAfter(sinceMs)), since: sinceMs, kind, limit }) as CorrelationActivity[];
  }

  latestPerCorrelation(query: LatestQuery): StoredRecord[] {
    const order = query.order === 'duration' ? 'duration_ms DESC, id DESC' : 'time_unix_nano DESC, id DESC';
    const rank = query.order === 'duration' ? 'r.duration_ms DESC, r.id DESC' : 'r.time_unix_nano DESC, r.id DESC';
    // Ranks the ids first and reads only the winners' bodies (sorting whole rows reads them all).
    const rows = this.#db
      .prepare(
        `SELECT id, received_at_ms, body FROM records WHERE id IN (
         SELECT r.id FROM records r
         WHERE r.kind = @kind AND r.received_at_ms >= @since
           AND (@project IS NULL OR r.project = @project)
           AND (@text IS NULL OR instr(lower(json_extract(r.body, '$.attributes.' || json_quote(@key))), lower(@text)) > 0)
           AND (@min IS NULL OR r.duration_ms >= @min)
           AND NOT EXISTS (SELECT 1 FROM records n
                           WHERE n.kind = @kind AND n.correlation_id = r.correlation_id AND n.id > r.id)
         ORDER BY ${rank}
         LIMIT @limit)
         ORDER BY ${order}`,
      )
      .all({
        kind: query.kind,
        since: query.sinceMs,
        project: query.project ?? null,
        key: query.attributeContains?.key ?? '',
        text: query.attributeContains?.text ?? null,
        min: query.minDurationMs ?? null,
        limit: query.limit,
      }) as Row[];
    return rows.map(toStored);
  }

  /**
   * The first id that arrived at or after `ms`. Ids follow arrival, so a binary search over
   * primary-key lookups finds it in about 30 reads on any store size, with no time index to
   * maintain on ingest. (A wall clock stepping back can blur the boundary by that step.)
   */
  #firstIdReceivedAtOrAfter(ms: number): number {
    // Two subqueries: each is one b-tree seek, where `SELECT min(id), max(id)` scans the table.
    const bounds = this.#db.prepare('SELECT (SELECT min(id) FROM records) AS lo, (SELECT max(id) FROM records) AS hi').get() as {
      lo: number | null;
      hi: number | null;
    };
    if (bounds.lo === null || bounds.hi === null) return 0;
    const at = this.#db.prepare('SELECT id, received_at_ms FROM records WHERE id >= ? ORDER BY id LIMIT 1');
    // Smallest x such that the first row with id >= x arrived at or after `ms` (or none exists).
    let lo = bounds.lo;
    let hi = bounds.hi + 1;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const row = at.get(mid) as { id: number; received_at_ms: number } | undefined;
      if (!row || row.received_at_ms >= ms) hi = mid;
      else lo = row.id + 1;
    }
    return lo;
  }
}
