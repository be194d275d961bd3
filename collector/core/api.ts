// The public plugin API. Built-in plugins in plugins/ import from this file only, exactly as
// an outside plugin would. A plugin module's default export (or its `factories` export) is a
// factory, or a list of them.
//
// A factory names its kind and type, describes its config with a schema (any Standard Schema;
// the collector hands its own zod builder in, so plugins need no dependency of their own), and
// creates components. Every component has start() and shutdown(); shutdown drains in-flight work.

import { z } from 'zod';
import type { Logger } from 'pino';
import type { FlatRecord, RecordKind, Signal, StoredRecord, StoredText } from './model.js';
import { schemaHelpers, type StandardSchema } from '../common/schema.js';
import type { RollupQuery, RollupRow } from './rollup.js';

/**
 * The version of this API. A factory may state the version it was written for (`apiVersion`);
 * the collector refuses one whose major differs, instead of failing later in odd ways.
 */
export const PLUGIN_API_VERSION = 2;

export type * from './model.js';
export { SpanKind, StatusCode, CORRELATION_ATTRIBUTE, signalOf, timeOf, projectOf, sourceOf, durationOf, STORED_JSON, storedRecordJson, parseStored, readStored, textOf } from './model.js';
export { BitvilleError, ConsumerError } from '../common/errors.js';
export { parseDuration, formatDuration, parseSize, parseHostPort } from '../common/schema.js';
export type { StandardSchema, StandardResult } from '../common/schema.js';
export type { RollupContribution, RollupDelta, RollupQuery, RollupRow, RollupResolution } from './rollup.js';
export { attachRollup, addFields, coveringRanges, ROLLUP_RESOLUTIONS } from './rollup.js';
/** The schema builder the collector uses (zod 4), for plugins that want one; any Standard Schema works. */
export { z, schemaHelpers };

export type ComponentKind = 'receiver' | 'processor' | 'exporter';

export interface Component {
  /**
   * Acquire resources and begin work. `signal` aborts when the collector gives up on the start
   * (a stop request arrived meanwhile); a start that cannot finish should then reject.
   */
  start(signal: AbortSignal): Promise<void>;
  /**
   * Stop taking work, finish or cleanly abandon what is in flight, release resources. Called
   * on every created component, also one whose start never ran or failed: it must be safe then.
   * `signal` aborts when the drain grace is over: abandon what is still in flight (unmarked
   * work is offered again after a restart).
   */
  shutdown(signal: AbortSignal): Promise<void>;
  /** Pages or JSON the component serves on the admin server (the admin auth applies). */
  adminRoutes?(): readonly AdminRoute[];
}

/** One GET route on the admin server. */
export interface AdminRoute {
  /** Absolute path; `:name` segments become `params.name` (`/requests/:id`). */
  path: string;
  handle(request: AdminRequest): Promise<AdminResponse>;
}

export interface AdminRequest {
  params: Readonly<Record<string, string>>;
  /** Query string parameters; a repeated parameter keeps its last value, a bare `?flag` is ''. */
  query: Readonly<Record<string, string>>;
}

export interface AdminResponse {
  status?: number;
  /** `text/html; charset=utf-8`, `application/json`, ... */
  contentType: string;
  body: string;
}

export interface Counter {
  inc(value?: number): void;
}
export interface Gauge {
  set(value: number): void;
  inc(value?: number): void;
  dec(value?: number): void;
}
export interface Histogram {
  observe(value: number): void;
}

/**
 * Self-telemetry for one component. Every series gets the component's id as a label
 * (`receiver`, `processor` or `exporter`, as the OpenTelemetry Collector names them), so
 * two instances of one type report separately.
 */
export interface ComponentMetrics {
  counter(name: string, help: string): Counter;
  gauge(name: string, help: string, collect?: () => number): Gauge;
  histogram(name: string, help: string, buckets: number[]): Histogram;
}

export interface ComponentContext {
  /** `type` or `type/name`, as written in the config. */
  id: string;
  /** Structured JSON logger with the component's id bound. */
  logger: Logger;
  metrics: ComponentMetrics;
  /** Directory for the component's own files (beside the store). */
  dataDir: string;
  /** Signals (pipelines) this component is wired into. */
  signals: readonly Signal[];
  /**
   * Small durable values kept in the store, scoped to this component's id: a circuit breaker's
   * state, a cursor. Every collector instance sharing the store (PostgreSQL) sees the same values.
   */
  state: ComponentState;
}

/** Durable key-value state of one component; values are strings (JSON is the usual choice). */
export interface ComponentState {
  /** The saved value, or undefined when the key was never set. */
  get(key: string): Promise<string | undefined>;
  /** Saves the value; resolves once it is committed (it survives a crash from then on). */
  set(key: string, value: string): Promise<void>;
  /**
   * Called when another collector instance sharing the store sets a key of this component
   * (never for this instance's own set). With SQLite there is one instance, so it never fires.
   */
  onChange(listener: (key: string, value: string) => void): () => void;
}

/** Where receivers hand their records. Resolves once the records are committed to storage. */
export interface Consumer {
  /**
   * Runs the signal's processors and commits the result in one transaction. Rejects with a
   * ConsumerError: `retryable` (overload, storage busy) or permanent (bad data).
   */
  consume(signal: Signal, records: FlatRecord[]): Promise<void>;
}

export interface ReceiverContext extends ComponentContext {
  consumer: Consumer;
}

/** One correlation id with recent records (RecordReader.correlationsAfterKind). */
export interface CorrelationActivity {
  correlationId: string;
  /** Arrival time (ms since the epoch) of its newest record not of the asked kind. */
  lastReceivedAtMs: number;
  /** Store id of that record. */
  lastId: number;
}

/** Where one stored record sits, without its body (RecordReader.correlationIndex). */
export interface RecordRef {
  id: number;
  kind: RecordKind;
  /** Lowercase hex, '' when the record has none. */
  spanId: string;
  receivedAtMs: number;
}

/** The newest record of one kind per correlation id, filtered (RecordReader.latestPerCorrelation). */
export interface LatestQuery {
  kind: RecordKind;
  /** Records that arrived at or after this time (ms since the epoch). */
  sinceMs: number;
  /** Resource `service.name` equal to this. */
  project?: string;
  /** The string attribute `key` contains `text` (case-insensitive). */
  attributeContains?: { key: string; text: string };
  minDurationMs?: number;
  /** `start`: latest record time first; `duration`: longest first. */
  order: 'start' | 'duration';
  limit: number;
}

/**
 * Read access to stored records, for processors that work across requests and for lookups.
 * Queries by kind are indexed for derived kinds (`summary`), which are a small share of rows.
 */
export interface RecordReader {
  /**
   * True when store ids follow commit order (one writer): once a reader has seen id N, no record
   * with an id of N or less can appear any more. False where concurrent writers take ids before
   * they commit (PostgreSQL's sequence), so a reader must look back in time instead.
   */
  readonly idsFollowCommits: boolean;
  /** Every stored record carrying this correlation id, oldest first. */
  byCorrelationId(correlationId: string): Promise<StoredRecord[]>;
  /** Of several records of the kind with one correlation id, only the newest (by store id) counts. */
  latestPerCorrelation(query: LatestQuery): Promise<StoredRecord[]>;
  /**
   * Correlation ids with a record not of `kind` that arrived at or after `sinceMs`, has a store id
   * above `afterId` and was stored after the id's newest record of `kind` (or the id has none);
   * ordered by `lastReceivedAtMs`, oldest first, at most `limit`. Cost: proportional to the
   * records that arrived since `sinceMs` (and after `afterId`), never to the whole store.
   */
  correlationsAfterKind(kind: RecordKind, sinceMs: number, limit: number, afterId?: number): Promise<CorrelationActivity[]>;
  /**
   * Every stored record carrying this correlation id as its id, kind and span id, oldest first:
   * byCorrelationId without reading (or parsing) the bodies.
   */
  correlationIndex(correlationId: string): Promise<RecordRef[]>;
  /**
   * Spans of one OTLP span kind whose start lies in [fromNs, toNs] (nanoseconds since the epoch,
   * decimal strings), whatever their correlation id; by start, then store id; at most `limit`.
   * Cost: proportional to the records whose time lies in the range.
   */
  spansStartingBetween(fromNs: string, toNs: string, spanKind: number, limit: number): Promise<StoredRecord[]>;
  /**
   * Rollup rows of one series and resolution in a time range (contributions attached to
   * committed records with `attachRollup`, summed per row). Cost: the rows asked for.
   */
  rollups(query: RollupQuery): Promise<RollupRow[]>;
}

export interface ProcessorContext extends ComponentContext {
  /** Stored records, read-only. */
  reader: RecordReader;
  /** Commits records this processor produced on its own (for example after a timer). */
  emit(records: FlatRecord[]): Promise<void>;
}

export interface Receiver extends Component {}

export interface Processor extends Component {
  /** Returns the records to pass on: the same, changed, fewer or more. */
  process(records: FlatRecord[], signal: Signal): FlatRecord[] | Promise<FlatRecord[]>;
}

export type ExportResult =
  | {
      kind: 'success';
      /** Records that can never be sent (cannot be serialized): counted as dropped, never retried. */
      rejected?: { id: number; reason: string }[];
    }
  /** Nothing of the batch counts as sent; the same batch is offered again after the delay. */
  | { kind: 'retryable'; error: Error; retryAfterMs?: number }
  /** The whole batch can never be sent: counted as dropped and skipped. */
  | { kind: 'permanent'; error: Error };

export interface ExporterContext extends ComponentContext {}

/**
 * Exporters are fed from the store: the collector reads records the exporter has not yet
 * delivered, oldest first, and calls export() with one batch at a time. Progress is durable
 * per exporter, and only what export() reported as sent is marked.
 */
export interface Exporter extends Component {
  export(batch: StoredRecord[]): Promise<ExportResult>;
  /**
   * Optional: takes the batch as stored texts instead of parsed records (called instead of
   * export()). For an exporter that hands the text on, or parses it elsewhere (GELF's encoder
   * thread): a batch read from the store is then never parsed on the collector's main thread.
   */
  exportTexts?(batch: StoredText[]): Promise<ExportResult>;
  /** Largest batch to offer at once (default 500). */
  readonly batchSize?: number;
  /**
   * Batches that may be in export() at once (default 1). Above 1 the collector offers the
   * batches that follow in store order before earlier ones resolved, and handles the results
   * in order: an exporter that learns of delivery late (GELF over TCP) keeps its throughput.
   */
  readonly maxBatchesInFlight?: number;
}

export type SchemaHelpers = typeof schemaHelpers;

interface FactoryBase<K extends ComponentKind, C> {
  kind: K;
  /** The type name used in the config (`otlp`, `gelf`, ...). */
  type: string;
  /** The PLUGIN_API_VERSION the plugin was written for; a different major is refused at load. */
  apiVersion?: number;
  /**
   * The config schema, with defaults; unknown keys should be refused (`z.strictObject`). Built
   * with the `z` handed in, or any Standard Schema library.
   */
  configSchema(builder: typeof z, helpers: SchemaHelpers): StandardSchema<C>;
}

export interface ReceiverFactory<C = unknown> extends FactoryBase<'receiver', C> {
  create(config: C, context: ReceiverContext): Receiver;
}
export interface ProcessorFactory<C = unknown> extends FactoryBase<'processor', C> {
  create(config: C, context: ProcessorContext): Processor;
}
export interface ExporterFactory<C = unknown> extends FactoryBase<'exporter', C> {
  create(config: C, context: ExporterContext): Exporter;
}

export type Factory = ReceiverFactory | ProcessorFactory | ExporterFactory;

/** Identity helpers that give a factory literal its types. */
export function defineReceiver<C>(factory: ReceiverFactory<C>): ReceiverFactory<C> {
  return factory;
}
export function defineProcessor<C>(factory: ProcessorFactory<C>): ProcessorFactory<C> {
  return factory;
}
export function defineExporter<C>(factory: ExporterFactory<C>): ExporterFactory<C> {
  return factory;
}
