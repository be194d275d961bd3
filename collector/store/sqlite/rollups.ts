// The SQLite store's rollups (core/rollup.ts): contributions added inside the append's
// transaction, range reads, and retention.
import type Database from 'better-sqlite3';
import type { FlatRecord } from '../../core/model.js';
import { rollupOf, rowsOf, ROLLUP_ONCE_HORIZON_MS, type RollupContribution, type RollupQuery, type RollupRow } from '../../core/rollup.js';

export class SqliteRollups {
  readonly #db: Database.Database;
  readonly #now: () => number;
  #write: { once: Database.Statement; add: Database.Statement } | undefined;

  constructor(db: Database.Database, now: () => number) {
    this.#db = db;
    this.#now = now;
  }

  /** Adds the records' contributions; call inside the transaction that inserts the records. */
  add(records: readonly FlatRecord[]): void {
    const fresh: RollupContribution[] = [];
    for (const r of records) {
      const c = rollupOf(r);
      if (!c) continue;
      const w = this.#statements();
      if (w.once.run(c.once, this.#now()).changes > 0) fresh.push(c);
    }
    if (fresh.length === 0) return;
    const w = this.#statements();
    for (const row of rowsOf(fresh).values()) w.add.run(row.series, row.resolutionMs, row.bucketMs, row.key, JSON.stringify(row.add));
  }

  read(q: RollupQuery): RollupRow[] {
    const rows = this.#db
      .prepare(
        `SELECT bucket_ms, key, fields FROM rollups WHERE series = ? AND resolution_ms = ? AND bucket_ms >= ? AND bucket_ms < ?${q.key !== undefined ? ' AND key = ?' : ''}`,
      )
      .all(q.series, q.resolutionMs, q.fromMs, q.untilMs, ...(q.key !== undefined ? [q.key] : [])) as { bucket_ms: number; key: string; fields: string }[];
    return rows.map((r) => ({ bucketMs: r.bucket_ms, key: r.key, fields: JSON.parse(r.fields) as Record<string, number> }));
  }

  /** Drops rows whose interval ended before the retention cutoff, and once-keys past their horizon. */
  enforceRetention(retentionMs: number): number {
    const now = this.#now();
    const cutoff = now - retentionMs;
    // An hour row is kept while any of its minutes is within retention.
    const { changes } = this.#db.prepare('DELETE FROM rollups WHERE bucket_ms + resolution_ms <= ?').run(cutoff);
    this.#db.prepare('DELETE FROM rollup_once WHERE added_at_ms < ?').run(now - ROLLUP_ONCE_HORIZON_MS);
    return changes;
  }

  #statements() {
    this.#write ??= {
      once: this.#db.prepare('INSERT OR IGNORE INTO rollup_once (once, added_at_ms) VALUES (?, ?)'),
      // The key-wise sum in one statement: no read back into JavaScript. Keys that reach zero go.
      add: this.#db.prepare(
        `INSERT INTO rollups (series, resolution_ms, bucket_ms, key, fields) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (series, resolution_ms, bucket_ms, key) DO UPDATE SET fields = (
           SELECT coalesce(json_group_object(k, v), '{}') FROM (
             SELECT k, sum(v) AS v FROM (
               SELECT key AS k, value AS v FROM json_each(rollups.fields)
               UNION ALL SELECT key, value FROM json_each(excluded.fields))
             GROUP BY k) WHERE abs(v) >= 1e-9)`,
      ),
    };
    return this.#write;
  }
}
