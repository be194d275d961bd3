// The store's contracts, one interface per role. The store is the durable queue between
// processors and exporters: a sender's 2xx follows the commit, and every exporter reads its own
// backlog from here, oldest first. SQLite (embedded default) and PostgreSQL (several instances)
// implement all three roles; each part of the collector is handed only the role it needs:
// export queues the RecordQueue, components their ComponentState (via StateStore), processors and
// lookups the RecordReader (api.ts).
import type { RecordReader } from './api.js';
import type { FlatRecord, Signal, StoredRecord, StoredText } from './model.js';

export interface ExporterRoute {
  id: string;
  signals: readonly Signal[];
}

/**
 * An exporter's queue that takes what a commit queued for it straight from memory, so a queue
 * that is caught up never reads back what was just written (export-queue.ts).
 */
export interface CommitTaker {
  /**
   * Right after the commit: the records it queued for the exporter, in id order, as stored (id
   * and receivedAtMs set). They stay queued in the store until markDelivered.
   */
  take(records: readonly StoredRecord[]): void;
}

export interface StoreStats {
  /** Bytes in use by data (excluding free pages). */
  sizeBytes: number;
  rows: number;
  /** Records dropped since start, by reason. */
  dropped: { retention: number; size: number };
  /** Commits that failed for a storage reason (disk full, I/O error, database unreachable) since start. */
  commitFailures: number;
}

/** The durable queue: append, each exporter's backlog, delivery marks, retention. */
export interface RecordQueue {
  /**
   * Declares the exporters of this configuration and the signals each receives. Records
   * appended afterwards are queued for exactly those exporters.
   */
  configureExporters(routes: readonly ExporterRoute[]): Promise<void>;
  /** Commits the records in one transaction; resolves after the commit. */
  append(records: readonly FlatRecord[]): Promise<void>;
  /**
   * The exporter's oldest undelivered records, at most `limit`; with `afterId`, only records
   * with a larger id (those after the batches still in flight).
   */
  pending(exporterId: string, limit: number, afterId?: number): Promise<StoredRecord[]>;
  /** The same records as pending(), unparsed: their stored text (what an exporter that only forwards the text needs). */
  pendingTexts(exporterId: string, limit: number, afterId?: number): Promise<StoredText[]>;
  /**
   * Marks exactly these records delivered for the exporter. The store keeps progress as ranges
   * of ids, so a batch of consecutive records costs one or two range rows, not a row per record.
   */
  markDelivered(exporterId: string, ids: readonly number[]): Promise<void>;
  /**
   * Hands the exporter's share of every later commit to the taker, when the store can (SQLite,
   * the single owner of its file); a store shared by instances (PostgreSQL) never does, and its
   * queues read and claim from the store.
   */
  takeCommits(exporterId: string, taker: CommitTaker): () => void;
  /** Number of records waiting for the exporter. */
  backlog(exporterId: string): Promise<number>;
  /**
   * Called after every commit that added records (in this process, or another sharing the
   * store). `handedOver`: the commit's records went to the takers first (takeCommits); false
   * when only a read of the store can see them (PostgreSQL: any commit, or another instance's
   * claim that expired).
   */
  onCommit(listener: (handedOver: boolean) => void): () => void;
  /**
   * False from a commit that failed for a storage reason (disk full, I/O error, database
   * unreachable) until a commit succeeds again; while false the store tries a small write by
   * itself now and then, so it turns true again without traffic. Readiness follows it.
   */
  writable(): boolean;
  /** Drops what is past retention or over the size cap; returns how many rows went. */
  enforceLimits(): Promise<number>;
  stats(): StoreStats;
}

/** Components' small durable values (ComponentState in api.ts), keyed by component id. */
export interface StateStore {
  getState(component: string, key: string): Promise<string | undefined>;
  /** Commits the value; instances sharing the store are told (onStateChange). */
  setState(component: string, key: string, value: string): Promise<void>;
  /** Called when another instance sharing the store sets a state value. */
  onStateChange(listener: (component: string, key: string, value: string) => void): () => void;
}

/** What an implementation provides: every role, and closing. */
export interface Store extends RecordQueue, StateStore, RecordReader {
  close(): Promise<void>;
}
