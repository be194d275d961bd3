// The PostgreSQL store's rollups (core/rollup.ts). A contribution reaches the database inside
// its record's row: the record is inserted as a copy whose first key is `bitville.rollup`, and a
// BEFORE INSERT trigger (schema.ts, version 2) takes the key out of the body, adds the deltas
// to the rollup rows and stores the body without it, all in the insert's own transaction.
// That keeps the records' one-statement append as it is, and lets several instances add to
// the same rows atomically: commits carrying contributions take one advisory lock in turn (so
// their row upserts cannot deadlock), each upsert sums under its row's lock.
import type { FlatRecord } from '../../core/model.js';
import { rollupOf, ROLLUP_ONCE_HORIZON_MS, type RollupQuery, type RollupRow } from '../../core/rollup.js';
import type { Db } from './db.js';

/** The records as the trigger expects them: those with a contribution carry it as their first key. */
export function withRollupsInBody(records: readonly FlatRecord[]): readonly FlatRecord[] {
  if (!records.some((r) => rollupOf(r))) return records;
  return records.map((r) => {
    const c = rollupOf(r);
    return c ? ({ 'bitville.rollup': c, ...r } as unknown as FlatRecord) : r;
  });
}

export class PostgresRollups {
  constructor(private readonly db: Db) {}

  async read(q: RollupQuery): Promise<RollupRow[]> {
    const params: unknown[] = [q.series, q.resolutionMs, q.fromMs, q.untilMs];
    if (q.key !== undefined) params.push(q.key);
    const { rows } = await this.db.pool.query<{ bucket_ms: string; key: string; fields: Record<string, number> }>(
      `SELECT bucket_ms, key, fields FROM ${this.db.s}.rollups
       WHERE series = $1 AND resolution_ms = $2 AND bucket_ms >= $3 AND bucket_ms < $4${q.key !== undefined ? ' AND key = $5' : ''}`,
      params,
    );
    return rows.map((r) => ({ bucketMs: Number(r.bucket_ms), key: r.key, fields: r.fields }));
  }

  /** Drops rows whose interval ended before the retention cutoff, and once-keys past their horizon. */
  async enforceRetention(retentionMs: number): Promise<void> {
    const now = this.db.now();
    await this.db.pool.query(`DELETE FROM ${this.db.s}.rollups WHERE bucket_ms + resolution_ms <= $1`, [now - retentionMs]);
    await this.db.pool.query(`DELETE FROM ${this.db.s}.rollup_once WHERE added_at_ms < $1`, [now - ROLLUP_ONCE_HORIZON_MS]);
  }
}
