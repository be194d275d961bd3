// The SQLite store's durable queue: append, each exporter's backlog, delivery marks, retention.
//
// Delivery progress is the `delivery_ranges` table (see ../ranges.ts): per exporter, ranges of
// ids still to deliver, one added in the append's transaction for each run of ids it queued
// for the exporter (one per commit as a rule), shrunk or split when the exporter reports a
// batch delivered. Its primary key (exporter, from_id) is the exporter's FIFO index, so a
// backlog read never touches delivered rows and the number of exporters has no limit. A newly
// configured exporter has no ranges for older records: it starts with what arrives from then
// on. An exporter dropped from the configuration keeps its ranges (until retention) and
// resumes from them if it comes back.
//
// `forwarded_to_graylog` on each record is the design's flag for the GELF exporter, kept for
// people who open the file: set to 1 when the last GELF exporter (`gelf`, `gelf/<name>`)
// that had the record queued delivers it; 0 otherwise (still queued, or never routed to GELF).
// It is updated by one statement per run of delivered ids (one per batch as a rule).
import type Database from 'better-sqlite3';
import type { FlatRecord, Signal, StoredRecord, StoredText } from '../../core/model.js';
import { durationOf, projectOf, signalOf, sourceOf, STORED_JSON, timeOf } from '../../core/model.js';
import type { ExporterRoute, StoreStats } from '../../core/store.js';
import { GELF_EXPORTER } from './schema.js';
import { runsOf, sortedIds, subtract } from '../ranges.js';

const DELETE_CHUNK = 5000;

interface ExporterQueue {
  num: number;
}

/**
 * The appended record becomes the stored one: the pipeline is done with it once committed, and
 * a copy per record would double what the hand-off to the export queues allocates.
 */
function asStored(record: FlatRecord, id: number, receivedAtMs: number, json: string): StoredRecord {
  const stored = record as StoredRecord;
  stored.id = id;
  stored.receivedAtMs = receivedAtMs;
  stored[STORED_JSON] = json;
  return stored;
}

export class SqliteQueue {
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #limits: { retentionMs: number; maxSizeBytes: number };
  readonly #insert: Database.Statement;
  readonly #addRange: Database.Statement;
  readonly #pending: Database.Statement;
  readonly #overlapping: Database.Statement;
  readonly #dropRange: Database.Statement;
  readonly #backlog: Database.Statement;
  readonly #appendTx: (records: readonly FlatRecord[]) => Map<number, StoredRecord[]>;
  /** The configured exporters; per signal, the numbers of those that receive it. */
  #exporters = new Map<string, ExporterQueue>();
  #routes: Record<Signal, number[]> = { traces: [], logs: [], metrics: [] };
  /** Per GELF exporter number: sets the GELF flag of a delivered run that no GELF exporter still has queued. */
  #flagForwarded = new Map<number, Database.Statement>();
  #dropped = { retention: 0, size: 0 };

  /**
   * `alsoInTransaction`: more writes that must commit with the records or not at all (the rollup
   * contributions they carry), run inside the append's one transaction.
   */
  constructor(
    db: Database.Database,
    limits: { retentionMs: number; maxSizeBytes: number },
    now: () => number,
    private readonly alsoInTransaction: (records: readonly FlatRecord[]) => void = () => {},
  ) {
    this.#db = db;
    this.#limits = limits;
    this.#now = now;
    this.#insert = db.prepare(
      `INSERT INTO records (kind, signal, time_unix_nano, received_at_ms, correlation_id, trace_id, span_id, project, source, name, duration_ms, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#addRange = db.prepare('INSERT INTO delivery_ranges (exporter, from_id, to_id) VALUES (?, ?, ?)');
    // CROSS JOIN: walk the exporter's ranges in order, then each range's records by id.
    this.#pending = db.prepare(
      `SELECT r.id, r.received_at_ms AS receivedAtMs, r.kind, r.body AS json FROM delivery_ranges d CROSS JOIN records r ON r.id BETWEEN max(d.from_id, @after + 1) AND d.to_id
       WHERE d.exporter = @exporter AND d.to_id > @after ORDER BY d.from_id, r.id LIMIT @limit`,
    );
    this.#overlapping = db.prepare('SELECT from_id, to_id FROM delivery_ranges WHERE exporter = ? AND from_id <= ? AND to_id >= ? ORDER BY from_id');
    this.#dropRange = db.prepare('DELETE FROM delivery_ranges WHERE exporter = ? AND from_id = ?');
    this.#backlog = db.prepare('SELECT coalesce(sum(to_id - from_id + 1), 0) AS n FROM delivery_ranges WHERE exporter = ?');
    this.#appendTx = db.transaction((records: readonly FlatRecord[]) => {
      const receivedAt = this.#now();
      const stored: Record<Signal, StoredRecord[]> = { traces: [], logs: [], metrics: [] };
      for (const r of records) {
        const signal = signalOf(r);
        const json = JSON.stringify(r);
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
          json,
        );
        if (this.#routes[signal].length > 0) stored[signal].push(asStored(r, Number(lastInsertRowid), receivedAt, json));
      }
      // Per exporter, its records of this commit in id order, and one range per run of ids.
      const queued = new Map<number, StoredRecord[]>();
      for (const signal of Object.keys(stored) as Signal[]) {
        if (stored[signal].length === 0) continue;
        for (const num of this.#routes[signal]) {
          const mine = queued.get(num);
          queued.set(num, mine ? mine.concat(stored[signal]) : stored[signal]);
        }
      }
      for (const [num, mine] of queued) {
        if (mine.length > 1 && mine.some((r, i) => i > 0 && r.id < mine[i - 1]!.id)) mine.sort((a, b) => a.id - b.id);
        for (const [from, to] of runsOf(mine.map((r) => r.id))) this.#addRange.run(num, from, to);
      }
      this.alsoInTransaction(records);
      return queued;
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
    this.#exporters = new Map(routes.map((r) => [r.id, { num: known.get(r.id)! }]));
    this.#routes = { traces: [], logs: [], metrics: [] };
    for (const r of routes) for (const signal of r.signals) this.#routes[signal].push(known.get(r.id)!);
    // Every GELF exporter ever configured counts: one dropped from the configuration still has
    // its queued records, which are not forwarded.
    const gelf = [...known].filter(([id]) => GELF_EXPORTER(id)).map(([, num]) => num);
    this.#flagForwarded = new Map();
    for (const num of gelf) {
      // With one GELF exporter (the usual case), its own delivery is the whole condition.
      const others = gelf.filter((n) => n !== num);
      const stillQueued =
        others.length === 0
          ? ''
          : ` AND NOT EXISTS (SELECT 1 FROM delivery_ranges d WHERE d.exporter IN (${others.join(',')}) AND d.from_id <= records.id AND d.to_id >= records.id)`;
      this.#flagForwarded.set(num, this.#db.prepare(`UPDATE records SET forwarded_to_graylog = 1 WHERE id BETWEEN ? AND ?${stillQueued}`));
    }
  }

  /**
   * Commits the records and their ranges in one transaction. Returns, per exporter number, the
   * records queued for it, as stored (for the queues that take commits from memory).
   */
  append(records: readonly FlatRecord[]): Map<number, StoredRecord[]> {
    return this.#appendTx(records);
  }

  /** The exporter's number in the store (the key of append's result). */
  numOf(exporterId: string): number {
    return this.#queue(exporterId).num;
  }

  /** The exporter's oldest undelivered records after `afterId`, as their stored text (rows come out as StoredText). */
  pendingTexts(exporterId: string, limit: number, afterId = 0): StoredText[] {
    return this.#pending.all({ exporter: this.#queue(exporterId).num, after: afterId, limit }) as StoredText[];
  }

  markDelivered(exporterId: string, ids: readonly number[]): void {
    const { num } = this.#queue(exporterId);
    const sorted = sortedIds(ids);
    if (sorted.length === 0) return;
    this.#db.transaction(() => {
      const ranges = this.#overlapping.all(num, sorted.at(-1), sorted[0]) as { from_id: number; to_id: number }[];
      const delivered: number[] = [];
      for (const { from_id, to_id } of ranges) {
        const left = subtract([from_id, to_id], sorted);
        if (left.length === 1 && left[0]![0] === from_id && left[0]![1] === to_id) continue; // none of its ids
        this.#dropRange.run(num, from_id);
        for (const [from, to] of left) this.#addRange.run(num, from, to);
        for (const id of sorted) if (id >= from_id && id <= to_id) delivered.push(id);
      }
      const flag = this.#flagForwarded.get(num);
      if (flag) for (const [from, to] of runsOf(delivered)) flag.run(from, to);
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

  /** Records leave from the oldest end only: ranges below the oldest record left go or shrink. */
  #dropQueueRowsOfGoneRecords(): void {
    const oldest = (this.#db.prepare('SELECT min(id) AS id FROM records').get() as { id: number | null }).id ?? Number.MAX_SAFE_INTEGER;
    const drop = this.#db.prepare('DELETE FROM delivery_ranges WHERE exporter = ? AND to_id < ?');
    const trim = this.#db.prepare('UPDATE delivery_ranges SET from_id = ? WHERE exporter = ? AND from_id < ?');
    for (const { num } of this.#db.prepare('SELECT num FROM exporters').all() as { num: number }[]) {
      drop.run(num, oldest);
      trim.run(oldest, num, oldest);
    }
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
