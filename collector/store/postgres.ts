// PostgreSQL store, shared by several collector instances (node-postgres). This class opens the
// pool and composes the roles, each in its own module under postgres/: migrations and daily
// partitions (schema.ts), LISTEN/NOTIFY between instances (notify.ts), the durable queue with
// claims (queue.ts), read queries (reader.ts) and component state (state.ts). Whether it can
// commit is tracked by health.ts.
//
// Records live in a table partitioned by arrival day, so retention drops whole partitions
// instead of deleting rows. Delivery progress is one queue row per record and exporter, claimed
// with FOR UPDATE SKIP LOCKED so instances share forwarding without duplicates (queue.ts).
import pg from 'pg';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseStored, type FlatRecord, type StoredRecord, type StoredText } from '../core/model.js';
import type { CorrelationActivity, LatestQuery, RecordKind, RecordRef } from '../core/api.js';
import type { ExporterRoute, Store, StoreStats } from '../core/store.js';
import type { Db, PostgresStoreOptions } from './postgres/db.js';
import { migrate, Partitions } from './postgres/schema.js';
import { Listener } from './postgres/notify.js';
import { PostgresQueue } from './postgres/queue.js';
import { PostgresReader } from './postgres/reader.js';
import { PostgresState } from './postgres/state.js';
import { PostgresRollups, withRollupsInBody } from './postgres/rollups.js';
import type { RollupQuery, RollupRow } from '../core/rollup.js';
import { StoreHealth } from './health.js';

export type { PostgresStoreOptions } from './postgres/db.js';

const STATS_REFRESH_MS = 15_000;

/**
 * SQLSTATE classes (and driver errors without one) that mean the database cannot commit now
 * but may later: connection lost or refused, disk full / out of resources, shut down, I/O, a
 * read-only standby. Data errors (class 22, 23) are the records' fault, not the store's.
 */
function isStorageFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true; // ECONNREFUSED, a dropped socket, a timeout
  return /^(08|53|57|58|XX)/.test(code) || code === '25006';
}

export class PostgresStore implements Store {
  readonly #db: Db;
  readonly #partitions: Partitions;
  readonly #listener: Listener;
  readonly #queue: PostgresQueue;
  readonly #reader: PostgresReader;
  readonly #state: PostgresState;
  readonly #rollups: PostgresRollups;
  readonly #health: StoreHealth;
  #statsTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    const pool = new pg.Pool({ connectionString: options.dsn, max: options.poolSize, application_name: 'bitville-collector' });
    // An idle connection that breaks is replaced on next use; the error must not crash the process.
    pool.on('error', (err) => options.logger?.warn({ err }, 'PostgreSQL connection lost (idle); it is replaced on next use'));
    let ready!: Promise<void>;
    this.#db = {
      options,
      now: options.now ?? Date.now,
      pool,
      s: `"${options.schema}"`,
      channel: `bitville_${options.schema}`,
      instanceId: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      events: new EventEmitter(),
      get ready() {
        return ready;
      },
      closed: () => this.#closed,
    };
    this.#partitions = new Partitions(this.#db);
    this.#queue = new PostgresQueue(this.#db, this.#partitions);
    this.#reader = new PostgresReader(this.#db);
    this.#state = new PostgresState(this.#db);
    this.#rollups = new PostgresRollups(this.#db);
    this.#listener = new Listener(this.#db, (component, key) => this.#state.get(component, key));
    this.#health = new StoreHealth(`the PostgreSQL store (schema ${options.schema})`, options.logger, () => this.#state.probe(), options.probeEveryMs);
    ready = this.#open();
    ready.catch(() => {}); // reported by the first call that awaits it
  }

  /** Names this process in claims; a restarted instance is a new claimer. */
  get instanceId(): string {
    return this.#db.instanceId;
  }

  async #open(): Promise<void> {
    await migrate(this.#db);
    await this.#partitions.ensure();
    await this.#listener.listen();
    await this.#queue.refreshStats();
    this.#statsTimer = setInterval(() => void this.#queue.refreshStats().catch(() => {}), STATS_REFRESH_MS);
    this.#statsTimer.unref();
  }

  async configureExporters(routes: readonly ExporterRoute[]): Promise<void> {
    await this.#db.ready;
    await this.#queue.configureExporters(routes);
  }

  async append(records: readonly FlatRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#db.ready;
    await this.#health.commit(() => this.#queue.append(withRollupsInBody(records)), isStorageFailure);
    this.#db.events.emit('commit', false);
  }

  /**
   * Never hands commits over: instances share each exporter's queue and each forwards in store
   * order, so a queue here always claims from the store (a record handed over in memory would
   * skip older records another instance left unclaimed).
   */
  takeCommits(): () => void {
    return () => {};
  }

  async pending(exporterId: string, limit: number, afterId?: number): Promise<StoredRecord[]> {
    return (await this.pendingTexts(exporterId, limit, afterId)).map(parseStored);
  }

  async pendingTexts(exporterId: string, limit: number, afterId?: number): Promise<StoredText[]> {
    await this.#db.ready;
    return this.#queue.pendingTexts(exporterId, limit, afterId);
  }

  async markDelivered(exporterId: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.ready;
    await this.#health.commit(() => this.#queue.markDelivered(exporterId, ids), isStorageFailure);
  }

  async backlog(exporterId: string): Promise<number> {
    await this.#db.ready;
    return this.#queue.backlog(exporterId);
  }

  writable(): boolean {
    return this.#health.writable;
  }

  async byCorrelationId(correlationId: string): Promise<StoredRecord[]> {
    await this.#db.ready;
    return this.#reader.byCorrelationId(correlationId);
  }

  /** Instances take ids from one sequence before they commit: a smaller id may become visible later. */
  readonly idsFollowCommits = false;

  async correlationsAfterKind(kind: RecordKind, sinceMs: number, limit: number, afterId?: number): Promise<CorrelationActivity[]> {
    await this.#db.ready;
    return this.#reader.correlationsAfterKind(kind, sinceMs, limit, afterId);
  }

  async correlationIndex(correlationId: string): Promise<RecordRef[]> {
    await this.#db.ready;
    return this.#reader.correlationIndex(correlationId);
  }

  async spansStartingBetween(fromNs: string, toNs: string, spanKind: number, limit: number): Promise<StoredRecord[]> {
    await this.#db.ready;
    return this.#reader.spansStartingBetween(fromNs, toNs, spanKind, limit);
  }

  async latestPerCorrelation(query: LatestQuery): Promise<StoredRecord[]> {
    await this.#db.ready;
    return this.#reader.latestPerCorrelation(query);
  }

  onCommit(listener: (handedOver: boolean) => void): () => void {
    this.#db.events.on('commit', listener);
    return () => this.#db.events.off('commit', listener);
  }

  async enforceLimits(): Promise<number> {
    await this.#db.ready;
    const removed = await this.#queue.enforceLimits();
    await this.#rollups.enforceRetention(this.#db.options.retentionMs);
    return removed;
  }

  async rollups(query: RollupQuery): Promise<RollupRow[]> {
    await this.#db.ready;
    return this.#rollups.read(query);
  }

  /** Figures refreshed every 15 s and after each limits check (stats() is synchronous). */
  stats(): StoreStats {
    const { sizeBytes, rows, dropped } = this.#queue.stats;
    return { sizeBytes, rows, dropped: { ...dropped }, commitFailures: this.#health.commitFailures };
  }

  async getState(component: string, key: string): Promise<string | undefined> {
    await this.#db.ready;
    return this.#state.get(component, key);
  }

  async setState(component: string, key: string, value: string): Promise<void> {
    await this.#db.ready;
    await this.#health.commit(() => this.#state.set(component, key, value), isStorageFailure);
  }

  onStateChange(listener: (component: string, key: string, value: string) => void): () => void {
    this.#db.events.on('state', listener);
    return () => this.#db.events.off('state', listener);
  }

  /** Hands this instance's unfinished claims back at once (others are told), then disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#statsTimer);
    this.#health.close();
    try {
      await this.#db.ready;
      await this.#queue.releaseClaims();
    } catch (err) {
      this.#db.options.logger?.warn({ err }, 'cannot release claims at close; they expire after claim_timeout');
    } finally {
      await this.#listener.close();
      await this.#db.pool.end();
    }
  }
}
