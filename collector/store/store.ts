// The store is the durable queue between processors and exporters: a sender's 2xx follows the
// commit, and every exporter reads its own backlog from here, oldest first. One interface,
// implemented by SQLite (embedded default) and, for several instances, PostgreSQL.
import type { StoreReader } from '../api.js';
import type { FlatRecord, Signal, StoredRecord } from '../model.js';

export interface ExporterRoute {
  id: string;
  signals: readonly Signal[];
}

export interface StoreStats {
  /** Bytes in use by data (excluding free pages). */
  sizeBytes: number;
  rows: number;
  /** Records dropped since start, by reason. */
  dropped: { retention: number; size: number };
}

/** Filters for listing request summaries (the `requests` lookup). */
export interface RequestQuery {
  /** Summaries that arrived at or after this time (ms since the epoch). */
  sinceMs: number;
  /** Resource `service.name` equal to this. */
  project?: string;
  /** `url.full` containing this text (case-insensitive). */
  urlContains?: string;
  /** Requests that took at least this long. */
  minDurationMs?: number;
  /** `recent`: latest request start first; `slowest`: longest duration first. */
  order: 'recent' | 'slowest';
  limit: number;
}

export interface Store extends StoreReader {
  /**
   * Request summaries (records of kind `summary`) matching the query; of several summaries of
   * one correlation id (a late span re-summarized it) only the newest. Backed by an index over
   * summaries alone, so the cost follows the number of summaries in the time range.
   */
  recentRequests(query: RequestQuery): Promise<StoredRecord[]>;
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
  /** Marks exactly these records delivered for the exporter. */
  markDelivered(exporterId: string, ids: readonly number[]): Promise<void>;
  /** Number of records waiting for the exporter. */
  backlog(exporterId: string): Promise<number>;
  /** Called after every commit that added records (in this process). */
  onCommit(listener: () => void): () => void;
  /** Drops what is past retention or over the size cap; returns how many rows went. */
  enforceLimits(): Promise<number>;
  stats(): StoreStats;
  /** The component's durable state value under `key` (see ComponentState in api.ts). */
  getState(component: string, key: string): Promise<string | undefined>;
  /** Commits the value; instances sharing the store are told (onStateChange). */
  setState(component: string, key: string, value: string): Promise<void>;
  /** Called when another instance sharing the store sets a state value. */
  onStateChange(listener: (component: string, key: string, value: string) => void): () => void;
  close(): Promise<void>;
}
