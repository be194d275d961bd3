// The PostgreSQL store's read queries (RecordReader in api.ts).
import type { CorrelationActivity, LatestQuery, RecordKind, RecordRef } from '../../core/api.js';
import type { StoredRecord } from '../../core/model.js';
import { toStored, type Db } from './db.js';

export class PostgresReader {
  constructor(private readonly db: Db) {}

  async byCorrelationId(correlationId: string): Promise<StoredRecord[]> {
    const { rows } = await this.db.pool.query<{ id: string; received_at_ms: string; body: string }>(
      `SELECT id, received_at_ms, body FROM ${this.db.s}.records WHERE correlation_id = $1 ORDER BY id`,
      [correlationId],
    );
    return rows.map(toStored);
  }

  /** See RecordReader.correlationIndex. */
  async correlationIndex(correlationId: string): Promise<RecordRef[]> {
    const { rows } = await this.db.pool.query<{ id: string; kind: RecordKind; span_id: string | null; received_at_ms: string }>(
      `SELECT id, kind, span_id, received_at_ms FROM ${this.db.s}.records WHERE correlation_id = $1 ORDER BY id`,
      [correlationId],
    );
    return rows.map((r) => ({ id: Number(r.id), kind: r.kind, spanId: r.span_id ?? '', receivedAtMs: Number(r.received_at_ms) }));
  }

  /** See RecordReader.spansStartingBetween: the time index bounds the rows. */
  async spansStartingBetween(fromNs: string, toNs: string, spanKind: number, limit: number): Promise<StoredRecord[]> {
    const { rows } = await this.db.pool.query<{ id: string; received_at_ms: string; body: string }>(
      `SELECT id, received_at_ms, body FROM ${this.db.s}.records
       WHERE time_unix_nano BETWEEN $1::bigint AND $2::bigint AND kind = 'span' AND (body::jsonb ->> 'spanKind')::int = $3
       ORDER BY time_unix_nano, id LIMIT $4`,
      [fromNs, toNs, spanKind, limit],
    );
    return rows.map(toStored);
  }

  /** See RecordReader.correlationsAfterKind: the records that arrived since, grouped by id. */
  async correlationsAfterKind(kind: RecordKind, sinceMs: number, limit: number, afterId = 0): Promise<CorrelationActivity[]> {
    const s = this.db.s;
    const { rows } = await this.db.pool.query<{ correlationId: string; lastReceivedAtMs: string; lastId: string }>(
      `SELECT r.correlation_id AS "correlationId", max(r.received_at_ms) AS "lastReceivedAtMs", max(r.id) AS "lastId"
       FROM ${s}.records r
       WHERE r.received_at_ms >= $1 AND r.id > $4 AND r.correlation_id IS NOT NULL AND r.kind <> $3
       GROUP BY r.correlation_id
       HAVING max(r.id) > coalesce(
         (SELECT max(s.id) FROM ${s}.records s WHERE s.kind = $3 AND s.correlation_id = r.correlation_id), 0)
       ORDER BY 2, 1
       LIMIT $2`,
      [sinceMs, limit, kind, afterId],
    );
    return rows.map((r) => ({ correlationId: r.correlationId, lastReceivedAtMs: Number(r.lastReceivedAtMs), lastId: Number(r.lastId) }));
  }

  /** See RecordReader.latestPerCorrelation. */
  async latestPerCorrelation(query: LatestQuery): Promise<StoredRecord[]> {
    const s = this.db.s;
    const order = query.order === 'duration' ? 'r.duration_ms DESC, r.id DESC' : 'r.time_unix_nano DESC, r.id DESC';
    const { rows } = await this.db.pool.query<{ id: string; received_at_ms: string; body: string }>(
      `SELECT r.id, r.received_at_ms, r.body FROM ${s}.records r
       WHERE r.kind = $6 AND r.received_at_ms >= $1
         AND ($2::text IS NULL OR r.project = $2)
         AND ($3::text IS NULL OR strpos(lower(r.body::jsonb -> 'attributes' ->> $7::text), lower($3)) > 0)
         AND ($4::float8 IS NULL OR r.duration_ms >= $4)
         AND NOT EXISTS (SELECT 1 FROM ${s}.records n
                         WHERE n.kind = $6 AND n.correlation_id = r.correlation_id AND n.id > r.id)
       ORDER BY ${order}
       LIMIT $5`,
      [query.sinceMs, query.project ?? null, query.attributeContains?.text ?? null, query.minDurationMs ?? null, query.limit, query.kind, query.attributeContains?.key ?? ''],
    );
    return rows.map(toStored);
  }
}
