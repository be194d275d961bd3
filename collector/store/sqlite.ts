// SQLite store (better-sqlite3, WAL): one file, owned by one collector process. This class
// opens the file and composes the roles, each in its own module under sqlite/: the schema and
// its migrations (schema.ts), the durable queue with per-exporter delivery rows and the GELF
// flag (queue.ts), read queries (reader.ts), component state (state.ts), and checkpoints on a
// thread of their own (checkpointer.ts). Whether it can commit is tracked by health.ts.
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { BitvilleError } from '../common/errors.js';
import { parseStored, type FlatRecord, type StoredRecord, type StoredText } from '../core/model.js';
import type { CorrelationActivity, LatestQuery, RecordKind, RecordRef } from '../core/api.js';
import type { CommitTaker, ExporterRoute, Store, StoreStats } from '../core/store.js';
import { Checkpointer } from './sqlite/checkpointer.js';
import { migrate } from './sqlite/schema.js';
import { SqliteQueue } from './sqlite/queue.js';
import { SqliteReader } from './sqlite/reader.js';
import { SqliteState } from './sqlite/state.js';
import { SqliteRollups } from './sqlite/rollups.js';
import type { RollupQuery, RollupRow } from '../core/rollup.js';
import { StoreHealth } from './health.js';

export interface SqliteStoreOptions {
  path: string;
  retentionMs: number;
  maxSizeBytes: number;
  /** NORMAL survives a process crash (kill -9); FULL also a power loss, at an fsync per commit. */
  synchronous: 'NORMAL' | 'FULL';
  now?: () => number;
  /** For lookups beside a running collector: never creates, migrates, writes or checkpoints. */
  readOnly?: boolean;
  logger?: Logger;
  /** How often an unwritable store tries a small write (ms). */
  probeEveryMs?: number;
}

const CHECKPOINT_LOG_EVERY_MS = 10_000;

/** SQLite result codes that mean the storage, not the data, failed: the commit may work later. */
function isStorageFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(FULL|IOERR|CANTOPEN|READONLY|BUSY|LOCKED|CORRUPT|NOTADB|PROTOCOL|NOMEM)/.test(code);
}

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #options: SqliteStoreOptions;
  readonly #events = new EventEmitter();
  readonly #queue: SqliteQueue | undefined;
  readonly #reader: SqliteReader;
  readonly #state: SqliteState | undefined;
  readonly #rollups: SqliteRollups;
  readonly #checkpointer: Checkpointer | undefined;
  readonly #health: StoreHealth;
  /** Exporter id to the queue that takes its share of each commit from memory. */
  readonly #takers = new Map<string, CommitTaker>();
  #lastCheckpointLog = -Infinity;

  constructor(options: SqliteStoreOptions) {
    this.#options = options;
    const now = options.now ?? Date.now;
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
      // Checkpoints run on their own thread (see sqlite/checkpointer.ts); the WAL file is
      // trimmed back to 64 MiB after each so it does not keep its peak size.
      this.#db.pragma('wal_autocheckpoint = 0');
      this.#db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      migrate(this.#db);
      this.#checkpointer = new Checkpointer(options.path, (err) => this.#checkpointFailed(err));
    }
    try {
      this.#reader = new SqliteReader(this.#db);
      this.#rollups = new SqliteRollups(this.#db, now);
      // Read-only (lookups) needs the records table only; the queue and state are for the owner.
      this.#db.prepare('SELECT id, received_at_ms, body, correlation_id, kind FROM records LIMIT 0').all();
      if (!options.readOnly) {
        // The rollup contributions the records carry commit in the append's own transaction.
        const rollups = this.#rollups;
        this.#queue = new SqliteQueue(this.#db, options, now, (records) => rollups.add(records));
        this.#state = new SqliteState(this.#db, now);
      }
    } catch (err) {
      this.#db.close();
      throw new BitvilleError('BV_STORE_MISSING', `${options.path} is not a Bitville store: ${(err as Error).message}`);
    }
    this.#health = new StoreHealth(
      `the SQLite store ${options.path}`,
      options.logger,
      async () => this.#writer().state.set('bitville.store', 'write_probe', new Date(now()).toISOString()),
      options.probeEveryMs,
    );
  }

  async configureExporters(routes: readonly ExporterRoute[]): Promise<void> {
    this.#writer().queue.configureExporters(routes);
  }

  async append(records: readonly FlatRecord[]): Promise<void> {
    if (records.length === 0) return;
    const { queue } = this.#writer();
    const queued = this.#health.commitSync(() => queue.append(records), isStorageFailure);
    this.#checkpointer?.requested();
    // One owner, so every record of the commit is this process's to send.
    for (const [id, taker] of this.#takers) {
      const mine = queued.get(queue.numOf(id));
      if (mine) taker.take(mine);
    }
    this.#events.emit('commit', true);
  }

  takeCommits(exporterId: string, taker: CommitTaker): () => void {
    this.#takers.set(exporterId, taker);
    return () => {
      if (this.#takers.get(exporterId) === taker) this.#takers.delete(exporterId);
    };
  }

  async pending(exporterId: string, limit: number, afterId?: number): Promise<StoredRecord[]> {
    return (await this.pendingTexts(exporterId, limit, afterId)).map(parseStored);
  }

  async pendingTexts(exporterId: string, limit: number, afterId?: number): Promise<StoredText[]> {
    return this.#writer().queue.pendingTexts(exporterId, limit, afterId);
  }

  async markDelivered(exporterId: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    const { queue } = this.#writer();
    this.#health.commitSync(() => queue.markDelivered(exporterId, ids), isStorageFailure);
  }

  async backlog(exporterId: string): Promise<number> {
    return this.#writer().queue.backlog(exporterId);
  }

  writable(): boolean {
    return this.#health.writable;
  }

  async byCorrelationId(correlationId: string): Promise<StoredRecord[]> {
    return this.#reader.byCorrelationId(correlationId);
  }

  /** One writer (this process, this connection): ids are handed out in commit order. */
  readonly idsFollowCommits = true;

  async correlationsAfterKind(kind: RecordKind, sinceMs: number, limit: number, afterId?: number): Promise<CorrelationActivity[]> {
    return this.#reader.correlationsAfterKind(kind, sinceMs, limit, afterId);
  }

  async correlationIndex(correlationId: string): Promise<RecordRef[]> {
    return this.#reader.correlationIndex(correlationId);
  }

  async spansStartingBetween(fromNs: string, toNs: string, spanKind: number, limit: number): Promise<StoredRecord[]> {
    return this.#reader.spansStartingBetween(fromNs, toNs, spanKind, limit);
  }

  async latestPerCorrelation(query: LatestQuery): Promise<StoredRecord[]> {
    return this.#reader.latestPerCorrelation(query);
  }

  async rollups(query: RollupQuery): Promise<RollupRow[]> {
    return this.#rollups.read(query);
  }

  onCommit(listener: (handedOver: boolean) => void): () => void {
    this.#events.on('commit', listener);
    return () => this.#events.off('commit', listener);
  }

  async enforceLimits(): Promise<number> {
    const { queue } = this.#writer();
    return this.#health.commitSync(() => {
      const removed = queue.enforceLimits();
      this.#rollups.enforceRetention(this.#options.retentionMs);
      return removed;
    }, isStorageFailure);
  }

  stats(): StoreStats {
    return { ...this.#writer().queue.stats(), commitFailures: this.#health.commitFailures };
  }

  async getState(component: string, key: string): Promise<string | undefined> {
    return this.#writer().state.get(component, key);
  }

  async setState(component: string, key: string, value: string): Promise<void> {
    const { state } = this.#writer();
    this.#health.commitSync(() => state.set(component, key, value), isStorageFailure);
  }

  /** One process owns a SQLite store, so nobody else ever changes its state. */
  onStateChange(): () => void {
    return () => {};
  }

  /**
   * Never throws for want of space: the final checkpoint (which folds the WAL into the database
   * file) may fail on a full disk; that is logged and the WAL, which holds every commit, is
   * replayed on the next open.
   */
  async close(): Promise<void> {
    if (!this.#db.open) return;
    this.#health.close();
    if (this.#checkpointer) {
      await this.#checkpointer.close();
      try {
        this.#db.pragma('wal_checkpoint(TRUNCATE)');
      } catch (err) {
        this.#options.logger?.warn({ err: (err as Error).message, code: (err as { code?: string }).code }, 'final checkpoint failed; the WAL keeps every commit and is folded in on the next start');
      }
    }
    try {
      this.#db.close();
    } catch (err) {
      this.#options.logger?.warn({ err: (err as Error).message }, 'closing the SQLite store failed; the WAL is folded in on the next start');
    }
  }

  #checkpointFailed(err: Error): void {
    const now = Date.now();
    if (now - this.#lastCheckpointLog < CHECKPOINT_LOG_EVERY_MS) return;
    this.#lastCheckpointLog = now;
    this.#options.logger?.error({ err: err.message, code: (err as { code?: string }).code }, 'WAL checkpoint failed; commits go on in the WAL, which grows until one succeeds');
  }

  #writer(): { queue: SqliteQueue; state: SqliteState } {
    if (!this.#queue || !this.#state) throw new Error(`the store ${this.#options.path} is open read-only`);
    return { queue: this.#queue, state: this.#state };
  }
}
