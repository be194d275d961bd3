// SQLite store (better-sqlite3, WAL). One table of flat records in arrival (rowid) order.
//
// Per-exporter progress: `forwarded_to_graylog` holds one bit per exporter (bits assigned
// durably in `exporters`). With the usual single GELF exporter it is exactly the 0/1 flag of
// the design. Each exporter has a partial index over the rows whose bit is still clear, so
// reading a backlog never scans delivered rows. A record is inserted with the bits of the
// exporters that must not see it already set (other signal, exporter removed from config).
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { BitvilleError } from '../common/errors.js';
import { dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import type { FlatRecord, Signal, StoredRecord } from '../core/model.js';
import { durationOf, projectOf, signalOf, sourceOf, timeOf } from '../core/model.js';
import { Checkpointer } from './checkpointer.js';
import type { CorrelationActivity, LatestQuery, RecordKind } from '../core/api.js';
import type { ExporterRoute, Store, StoreStats } from '../core/store.js';

export interface SqliteStoreOptions {
  path: string;
  retentionMs: number;
  maxSizeBytes: number;
  /** NORMAL survives a process crash (kill -9); FULL also a power loss, at an fsync per commit. */
  synchronous: 'NORMAL' | 'FULL';
  now?: () => number;
  /** For lookups beside a running collector: never creates, migrates, writes or checkpoints. */
  readOnly?: boolean;
}

const MIGRATIONS: string[] = [
  `CREATE TABLE records (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     signal TEXT NOT NULL,
     time_unix_nano INTEGER NOT NULL,
     received_at_ms INTEGER NOT NULL,
     correlation_id TEXT,
     trace_id TEXT,
     span_id TEXT,
     project TEXT,
     source TEXT,
     name TEXT,
     duration_ms REAL,
     body TEXT NOT NULL,
     forwarded_to_graylog INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX records_correlation ON records(correlation_id) WHERE correlation_id IS NOT NULL;
   CREATE INDEX records_time ON records(time_unix_nano);
   -- start_after: the last record id when the exporter was first configured; it starts from there.
   CREATE TABLE exporters (id TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE, start_after INTEGER NOT NULL);`,
  // Components' durable state (ComponentState in api.ts).
  `CREATE TABLE component_state (
     component TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     updated_at_ms INTEGER NOT NULL,
     PRIMARY KEY (component, key)
   ) WITHOUT ROWID;`,
  // Summaries are a small share of the rows: partial indexes over them alone find an id's
  // newest summary (the correlation join) and rank the summaries of a time range (lookups;
  // covering, so ranking reads no table rows).
  `CREATE INDEX records_summary_by_correlation ON records(correlation_id, id) WHERE kind = 'summary';
   CREATE INDEX records_summary_by_time ON records(received_at_ms, duration_ms, time_unix_nano, project, correlation_id) WHERE kind = 'summary';`,
];

const MAX_EXPORTER_BITS = 62;
const DELETE_CHUNK = 5000;

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #options: SqliteStoreOptions;
  readonly #now: () => number;
  readonly #events = new EventEmitter();
  #bits = new Map<string, number>();
  #initialMask: Record<Signal, number> = { traces: 0, logs: 0, metrics: 0 };
  #dropped = { retention: 0, size: 0 };
  #insert: Database.Statement;
  readonly #checkpointer: Checkpointer | undefined;
  #markDelivered: Database.Statement;
  #appendTx: (records: readonly FlatRecord[]) => void;
  #queues = new Map<string, { mask: number; pending: Database.Statement; backlog: Database.Statement }>();

  constructor(options: SqliteStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    if (options.readOnly) {
      if (!existsSync(options.path)) throw new BitvilleError('BV_STORE_MISSING', `no store at ${options.path} (check storage.sqlite.path in the config)`);
      this.#db = new Database(options.path, { readonly: true, fileMustExist: true });
      this.#db.pragma('busy_timeout = 5000');
    } else {
      mkdirSync(dirname(options.path), { recursive: true });
      // Create the file ourselves so it is never readable by others, whatever the umask.
      closeSync(openSync(options.path, 'a', 0o600));
      chmodSync(options.path, 0o600);
      this.#db = new Database(options.path);
      // 16 KiB pages (for a new file; an existing one keeps its own): a 100-span commit writes a
      // quarter of the pages it would at 4 KiB, and each page written is a system call. Measured
      // here: about a third less CPU per inserted row.
      this.#db.pragma('page_size = 16384');
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma(`synchronous = ${options.synchronous}`);
      this.#db.pragma('busy_timeout = 5000');
      // Checkpoints run on their own thread (see checkpointer.ts); the WAL file is trimmed back
      // to 64 MiB after each so it does not keep its peak size.
      this.#db.pragma('wal_autocheckpoint = 0');
      this.#db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      this.#migrate();
      this.#checkpointer = new Checkpointer(options.path);
    }
    try {
      this.#insert = this.#db.prepare(
        `INSERT INTO records (kind, signal, time_unix_nano, received_at_ms, correlation_id, trace_id, span_id,
           project, source, name, duration_ms, body, forwarded_to_graylog)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
    } catch (err) {
      this.#db.close();
      throw new BitvilleError('BV_STORE_MISSING', `${options.path} is not a Bitville store: ${(err as Error).message}`);
    }
    this.#markDelivered = this.#db.prepare(
      'UPDATE records SET forwarded_to_graylog = forwarded_to_graylog | ? WHERE id IN (SELECT value FROM json_each(?))',
    );
    this.#appendTx = this.#db.transaction((records: readonly FlatRecord[]) => {
      const receivedAt = this.#now();
      for (const r of records) {
        const signal = signalOf(r);
        this.#insert.run(
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
          this.#initialMask[signal],
        );
      }
    });
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.#db.transaction(() => {
        this.#db.exec(MIGRATIONS[v]!);
        this.#db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  async configureExporters(routes: readonly ExporterRoute[]): Promise<void> {
    type Row = { id: string; bit: number; start_after: number };
    const known = new Map((this.#db.prepare('SELECT id, bit, start_after FROM exporters').all() as Row[]).map((r) => [r.id, r]));
    const used = new Set([...known.values()].map((r) => r.bit));
    // A newly configured exporter starts with the records that arrive from now on.
    const assign = this.#db.prepare("INSERT INTO exporters (id, bit, start_after) VALUES (?, ?, (SELECT coalesce(max(id), 0) FROM records))");
    this.#bits = new Map();
    this.#db.transaction(() => {
      for (const { id } of routes) {
        if (!known.has(id)) {
          let bit = 0;
          while (used.has(bit)) bit++;
          if (bit >= MAX_EXPORTER_BITS) throw new Error(`the store tracks at most ${MAX_EXPORTER_BITS} exporter ids`);
          used.add(bit);
          assign.run(id, bit);
          known.set(id, this.#db.prepare('SELECT id, bit, start_after FROM exporters WHERE id = ?').get(id) as Row);
        }
        this.#bits.set(id, known.get(id)!.bit);
      }
    })();
    // Bits of exporters that are not configured (now or any more) start set: nobody reads them.
    const allBits = [...used].reduce((mask, bit) => mask | 2 ** bit, 0);
    for (const signal of ['traces', 'logs', 'metrics'] as const) {
      const wanted = routes.filter((r) => r.signals.includes(signal)).reduce((m, r) => m | 2 ** this.#bits.get(r.id)!, 0);
      this.#initialMask[signal] = allBits - wanted;
    }
    const indexes = this.#db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'records_pending_%'").all() as { name: string }[];
    for (const { name } of indexes) {
      if (![...this.#bits.values()].some((bit) => name === `records_pending_${bit}`)) this.#db.exec(`DROP INDEX ${name}`);
    }
    this.#queues.clear();
    for (const [id, bit] of this.#bits) {
      const where = `(forwarded_to_graylog & ${2 ** bit}) = 0`;
      const after = known.get(id)!.start_after;
      this.#db.exec(`CREATE INDEX IF NOT EXISTS records_pending_${bit} ON records(id) WHERE ${where}`);
      this.#queues.set(id, {
        mask: 2 ** bit,
        pending: this.#db.prepare(`SELECT id, received_at_ms, body FROM records WHERE ${where} AND id > ${after} ORDER BY id LIMIT ?`),
        backlog: this.#db.prepare(`SELECT count(*) AS n FROM records WHERE ${where} AND id > ${after}`),
      });
    }
  }

  async append(records: readonly FlatRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.#appendTx(records);
    this.#checkpointer?.requested();
    this.#events.emit('commit');
  }

  async pending(exporterId: string, limit: number): Promise<StoredRecord[]> {
    const rows = this.#queue(exporterId).pending.all(limit) as { id: number; received_at_ms: number; body: string }[];
    return rows.map(toStored);
  }

  async markDelivered(exporterId: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    this.#markDelivered.run(this.#queue(exporterId).mask, JSON.stringify(ids));
  }

  async backlog(exporterId: string): Promise<number> {
    return (this.#queue(exporterId).backlog.get() as { n: number }).n;
  }

  async byCorrelationId(correlationId: string): Promise<StoredRecord[]> {
    const rows = this.#db
      .prepare('SELECT id, received_at_ms, body FROM records WHERE correlation_id = ? ORDER BY id')
      .all(correlationId) as { id: number; received_at_ms: number; body: string }[];
    return rows.map(toStored);
  }

  async correlationsAfterKind(kind: RecordKind, sinceMs: number, limit: number): Promise<CorrelationActivity[]> {
    // A rowid range scan over what arrived since, grouped by id; each group's newest record of
    // the kind comes from the partial index over that kind (summaries).
    return this.#db
      .prepare(
        `SELECT r.correlation_id AS correlationId, max(r.received_at_ms) AS lastReceivedAtMs
         FROM records r NOT INDEXED -- the rowid range, never a walk of the whole correlation index
         WHERE r.id >= @from AND r.received_at_ms >= @since AND r.correlation_id IS NOT NULL AND r.kind <> @kind
         GROUP BY r.correlation_id
         HAVING max(r.id) > coalesce(
           (SELECT max(s.id) FROM records s WHERE s.kind = @kind AND s.correlation_id = r.correlation_id), 0)
         ORDER BY lastReceivedAtMs, correlationId
         LIMIT @limit`,
      )
      .all({ from: this.#firstIdReceivedAtOrAfter(sinceMs), since: sinceMs, kind, limit }) as CorrelationActivity[];
  }

  async latestPerCorrelation(query: LatestQuery): Promise<StoredRecord[]> {
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
      }) as { id: number; received_at_ms: number; body: string }[];
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

  onCommit(listener: () => void): () => void {
    this.#events.on('commit', listener);
    return () => this.#events.off('commit', listener);
  }

  async enforceLimits(): Promise<number> {
    let removed = 0;
    // Retention: rows arrive in id order, so everything before the first young row is old.
    // Finding that row reads only the rows being dropped, never the whole table.
    const cutoff = this.#now() - this.#options.retentionMs;
    const firstYoung = this.#db.prepare('SELECT id FROM records WHERE received_at_ms >= ? ORDER BY id LIMIT 1').get(cutoff) as
      | { id: number }
      | undefined;
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
    for (let used = this.#usedBytes(); used > this.#options.maxSizeBytes; used = this.#usedBytes()) {
      // Drop about the share of rows that is over, in bounded steps.
      const share = (used - this.#options.maxSizeBytes) / used;
      const { changes } = dropOldest.run(Math.min(DELETE_CHUNK, Math.max(100, Math.ceil(this.stats().rows * share))));
      if (changes === 0) break;
      this.#dropped.size += changes;
      removed += changes;
    }
    if (removed > 0) this.#db.pragma('wal_checkpoint(PASSIVE)');
    return removed;
  }

  #usedBytes(): number {
    const pageSize = this.#db.pragma('page_size', { simple: true }) as number;
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    const free = this.#db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * pageSize;
  }

  stats(): StoreStats {
    // Ids are handed out in order and rows only ever leave from the oldest end, so the id range
    // counts the rows without the full scan count(*) would cost on a large store.
    const { lo, hi } = this.#db.prepare('SELECT (SELECT min(id) FROM records) AS lo, (SELECT max(id) FROM records) AS hi').get() as { lo: number | null; hi: number | null };
    const rows = lo === null || hi === null ? 0 : hi - lo + 1;
    return { sizeBytes: this.#usedBytes(), rows, dropped: { ...this.#dropped } };
  }

  async getState(component: string, key: string): Promise<string | undefined> {
    const row = this.#db.prepare('SELECT value FROM component_state WHERE component = ? AND key = ?').get(component, key) as { value: string } | undefined;
    return row?.value;
  }

  async setState(component: string, key: string, value: string): Promise<void> {
    this.#db
      .prepare(
        `INSERT INTO component_state (component, key, value, updated_at_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT (component, key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms`,
      )
      .run(component, key, value, this.#now());
  }

  /** One process owns a SQLite store, so nobody else ever changes its state. */
  onStateChange(): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    if (!this.#db.open) return;
    if (this.#checkpointer) {
      await this.#checkpointer.close();
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    }
    this.#db.close();
  }

  #queue(exporterId: string) {
    const queue = this.#queues.get(exporterId);
    if (!queue) throw new Error(`exporter ${exporterId} is not configured in the store`);
    return queue;
  }
}

function toStored(row: { id: number; received_at_ms: number; body: string }): StoredRecord {
  // Add the two fields to the parsed object itself: a spread copy costs as much as the parse.
  const record = JSON.parse(row.body) as StoredRecord;
  record.id = row.id;
  record.receivedAtMs = row.received_at_ms;
  return record;
}
