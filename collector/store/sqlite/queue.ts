// The SQLite store's durable queue: append, each exporter's backlog, delivery marks, retention.
//
// Delivery progress is the `deliveries` table: one narrow row per record still to deliver to
// an exporter, inserted in the append's transaction for the exporters of the record's signal,
// deleted when the exporter reports it delivered. Its primary key (exporter, record_id) is the
// exporter's FIFO index, so a backlog read never touches delivered rows and the number of
// exporters has no limit. A newly configured exporter has no rows for older records: it
// starts with what arrives from then on. An exporter dropped from the configuration keeps its
// rows (until retention) and resumes from them if it comes back.
//
// `forwarded_to_graylog` on each record is the design's flag for the GELF exporter, kept for
// people who open the file: set to 1 when the last GELF exporter (`gelf`, `gelf/<name>`)
// that had the record queued delivers it; 0 otherwise (still queued, or never routed to GELF).
import type Database from 'better-sqlite3';
import type { FlatRecord, Signal, StoredRecord } from '../../core/model.js';
import { durationOf, projectOf, signalOf, sourceOf, timeOf } from '../../core/model.js';
import type { ExporterRoute, StoreStats } from '../../core/store.js';
import { GELF_EXPORTER } from './schema.js';
import { toStored, type Row } from './reader.js';

const DELETE_CHUNK = 5000;

interface ExporterQueue {
  num: number;
  gelf: boolean;
}

export class SqliteQueue {
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #limits: { retentionMs: number; maxSizeBytes: number };
  readonly #insert: Database.Statement;
  readonly #queueRows: Database.Statement;
  readonly #pending: Database.Statement;
  readonly #delivered: Database.Statement;
  readonly #backlog: Database.Statement;
  readonly #appendTx: (records: readonly FlatRecord[]) => void;
  /** The configured exporters; per signal, the numbers of those that receive it. */
  #exporters = new Map<string, ExporterQueue>();
  #routes: Record<Signal, number[]> = { traces: [], logs: [], metrics: [] };
  /** Sets the GELF flag of delivered records that no GELF exporter still has queued. */
  #flagForwarded: Database.Statement | undefined;
  #dropped = { retention: 0, size: 0 };

  constructor(db: Database.Database, limits: { retentionMs: number; maxSizeBytes: number }, now: () => number) {
    this.#db = db;
    this.#limits = limits;
    this.#now = now;
    this.#insert = db.prepare(
      `INSERT INTO records (kind, signal, time_unix_nano, received_at_ms, correlation_id, trace_id, span_id, project, source, name, duration_ms, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // One statement per exporter and signal per append (not one per record): measurably cheaper.
    this.#queueRows = db.prepare('INSERT INTO deliveries (exporter, record_id) SELECT ?, value FROM json_each(?)');
    // CROSS JOIN: walk the exporter's queue rows in order, then look each record up.
    this.#pending = db.prepare(
      'SELECT r.id, r.received_at_ms, r.body FROM deliveries d CROSS JOIN records r ON r.id = d.record_id WHERE d.exporter = ? AND d.record_id > ? ORDER BY d.record_id LIMIT ?',
    );
    this.#delivered = db.prepare('DELETE FROM deliveries WHERE exporter = ? AND record_id IN (SELECT value FROM json_each(?))');
    this.#backlog = db.prepare('SELECT count(*) AS n FROM deliveries WHERE exporter = ?');
    this.#appendTx = db.transaction((records: readonly FlatRecord[]) => {
      const receivedAt = this.#now();
      const ids: Record<Signal, number[]> = { traces: [], logs: [], metrics: [] };
      for (const r of records) {
        const signal = signalOf(r);
        const { lastInsertRowid } = this.#insert.run(
          r.kind,
          signal,
          BigInt(timeOf(r)),
          receivedAt,
          r.correlationId || null,
          r.traceId || null,
          r.spanId || null,
          projectOf(r) || null,
          sourceOf(r),
          r.kind === 'log' ? r.eventName || r.severityText || null : r.name,
          durationOf(r) ?? null,
          JSON.stringify(r),
        );
        ids[signal].push(Number(lastInsertRowid));
      }
      for (const signal of Object.keys(ids) as Signal[]) {
        if (ids[signal].length === 0 || this.#routes[signal].length === 0) continue;
        const json = JSON.stringify(ids[signal]);
        for (const num of this.#routes[signal]) this.#queueRows.run(num, json);
      }
    });
  }

  configureExporters(routes: readonly ExporterRoute[]): void {
    const known = new Map((this.#db.prepare('SELECT id, num FROM exporters').all() as { id: string; num: number }[]).map((r) => [r.id, r.num]));
    const used = new Set(known.values());
    const add = this.#db.prepare('INSERT INTO exporters (id, num, start_after, signals) VALUES (?, ?, 0, ?)');
    const update = this.#db.prepare('UPDATE exporters SET signals = ? WHERE id = ?');
    this.#db.transaction(() => {
      let next = 0;
      for (const { id, signals } of routes) {
        if (known.has(id)) {
          update.run(signals.join(','), id);
          continue;
        }
        while (used.has(next)) next++;
        used.add(next);
        known.set(id, next);
        add.run(id, next, signals.join(','));
      }
    })();
    this.#exporters = new Map(routes.map((r) => [r.id, { num: known.get(r.id)!, gelf: GELF_EXPORTER(r.id) }]));
    this.#routes = { traces: [], logs: [], metrics: [] };
    for (const r of routes) for (const signal of r.signals) this.#routes[signal].push(known.get(r.id)!);
    // Every GELF exporter ever configured counts: one dropped from the configuration still has
    // its queued records, which are not forwarded.
    const gelf = [...known].filter(([id]) => GELF_EXPORTER(id)).map(([, num]) => num);
    this.#flagForwarded =
      gelf.length === 0
        ? undefined
        : this.#db.prepare(
            `UPDATE records SET forwarded_to_graylog = 1 WHERE id IN (SELECT value FROM json_each(?))
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.exporter IN (${gelf.join(',')}) AND d.record_id = records.id)`,
          );
  }

  /** Commits the records and their queue rows in one transaction. */
  append(records: readonly FlatRecord[]): void {
    this.#appendTx(records);
  }

  pending(exporterId: string, limit: number, afterId = 0): StoredRecord[] {
    return (this.#pending.all(this.#queue(exporterId).num, afterId, limit) as Row[]).map(toStored);
  }

  markDelivered(exporterId: string, ids: readonly number[]): void {
    const queue = this.#queue(exporterId);
    const json = JSON.stringify(ids);
    this.#db.transaction(() => {
      this.#delivered.run(queue.num, json);
      if (queue.gelf) this.#flagForwarded?.run(json);
    })();
  }

  backlog(exporterId: string): number {
    return (this.#backlog.get(this.#queue(exporterId).num) as { n: number }).n;
  }

  enforceLimits(): number {
    let removed = 0;
    // Retention: rows arrive in id order, so everything before the first young row is old.
    // Finding that row reads only the rows being dropped, never the whole table.
    const cutoff = this.#now() - this.#limits.retentionMs;
    const firstYoung = this.#db.prepare('SELECT id FROM records WHERE received_at_ms >= ? ORDER BY id LIMIT 1').get(cutoff) as { id: number } | undefined;
    const limitId = firstYoung?.id ?? Number.MAX_SAFE_INTEGER;
    const dropBefore = this.#db.prepare(`DELETE FROM records WHERE id IN (SELECT id FROM records WHERE id < ? ORDER BY id LIMIT ${DELETE_CHUNK})`);
    for (;;) {
      const { changes } = dropBefore.run(limitId);
      this.#dropped.retention += changes;
      removed += changes;
      if (changes < DELETE_CHUNK) break;
    }
    // Size cap: drop the oldest rows until the data fits. Freed pages are reused, so the file
    // stops growing at about the cap instead of shrinking (no VACUUM on a live store).
    const dropOldest = this.#db.prepare('DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id LIMIT ?)');
    for (let used = this.#usedBytes(); used > this.#limits.maxSizeBytes; used = this.#usedBytes()) {
      // Drop about the share of rows that is over, in bounded steps.
      const share = (used - this.#limits.maxSizeBytes) / used;
      const { changes } = dropOldest.run(Math.min(DELETE_CHUNK, Math.max(100, Math.ceil(this.#rows() * share))));
      if (changes === 0) break;
      this.#dropped.size += changes;
      removed += changes;
      this.#dropQueueRowsOfGoneRecords();
    }
    if (removed > 0) {
      this.#dropQueueRowsOfGoneRecords();
      this.#db.pragma('wal_checkpoint(PASSIVE)');
    }
    return removed;
  }

  /** Records leave from the oldest end only: queue rows below the oldest record left go. */
  #dropQueueRowsOfGoneRecords(): void {
    const oldest = (this.#db.prepare('SELECT min(id) AS id FROM records').get() as { id: number | null }).id ?? Number.MAX_SAFE_INTEGER;
    const drop = this.#db.prepare('DELETE FROM deliveries WHERE exporter = ? AND record_id < ?');
    for (const { num } of this.#db.prepare('SELECT num FROM exporters').all() as { num: number }[]) drop.run(num, oldest);
  }

  #usedBytes(): number {
    const pageSize = this.#db.pragma('page_size', { simple: true }) as number;
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    const free = this.#db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * pageSize;
  }

  /**
   * Ids are handed out in order and rows only ever leave from the oldest end, so the id range
   * counts the rows without the full scan count(*) would cost on a large store.
   */
  #rows(): number {
    const { lo, hi } = this.#db.prepare('SELECT (SELECT min(id) FROM records) AS lo, (SELECT max(id) FROM records) AS hi').get() as { lo: number | null; hi: number | null };
    return lo === null || hi === null ? 0 : hi - lo + 1;
  }

  stats(): Omit<StoreStats, 'commitFailures'> {
    return { sizeBytes: this.#usedBytes(), rows: this.#rows(), dropped: { ...this.#dropped } };
  }

  #queue(exporterId: string): ExporterQueue {
    const queue = this.#exporters.get(exporterId);
    if (!queue) throw new Error(`exporter ${exporterId} is not configured in the store`);
    return queue;
  }
}
