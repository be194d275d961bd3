// The public plugin API. Built-in plugins in plugins/ import from this file only, exactly as
// an outside plugin would. A plugin module's default export (or its `factories` export) is a
// factory, or a list of them.
//
// A factory names its kind and type, describes its config with a schema (built with the zod
// instance the collector passes in, so plugins need no dependency of their own), and creates
// components. Every component has start() and shutdown(); shutdown drains in-flight work.

import type { z as Zod, ZodType } from 'zod';
import type { Logger } from 'pino';
import type { FlatRecord, Signal, StoredRecord } from './model.js';
import type { schemaHelpers } from './config-helpers.js';

export type * from './model.js';
export { SpanKind, StatusCode, CORRELATION_ATTRIBUTE, signalOf, timeOf, projectOf, sourceOf, durationOf } from './model.js';
export { ConsumerError } from './errors.js';
export { parseDuration, formatDuration, parseSize, parseHostPort } from './config-helpers.js';

export type ComponentKind = 'receiver' | 'processor' | 'exporter';

export interface Component {
  start(): Promise<void>;
  /** Stop taking work, finish or cleanly abandon what is in flight, release resources. */
  shutdown(): Promise<void>;
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

/** A correlation id whose newest records are not covered by a summary yet. */
export interface UnsummarizedCorrelation {
  correlationId: string;
  /** Arrival time (ms since the epoch) of its newest record other than a summary. */
  lastReceivedAtMs: number;
}

/** Read access to stored records, for processors that work across requests. */
export interface StoreReader {
  /** Every stored record carrying this correlation id, oldest first. */
  byCorrelationId(correlationId: string): Promise<StoredRecord[]>;
  /**
   * Correlation ids with a record (other than a summary) that arrived at or after `sinceMs`
   * and was stored after the id's newest summary (store order), or that have no summary at
   * all; ordered by `lastReceivedAtMs`, oldest first, at most `limit`. Cost: proportional to
   * the records that arrived since `sinceMs`, never to the whole store.
   */
  unsummarizedCorrelations(sinceMs: number, limit: number): Promise<UnsummarizedCorrelation[]>;
}

export interface ProcessorContext extends ComponentContext {
  store: StoreReader;
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
  /** The config schema, with defaults. Unknown keys should be refused (z.strictObject). */
  configSchema(z: typeof Zod, helpers: SchemaHelpers): ZodType<C>;
}

export interface ReceiverFactory<C = any> extends FactoryBase<'receiver', C> {
  create(config: C, context: ReceiverContext): Receiver;
}
export interface ProcessorFactory<C = any> extends FactoryBase<'processor', C> {
  create(config: C, context: ProcessorContext): Processor;
}
export interface ExporterFactory<C = any> extends FactoryBase<'exporter', C> {
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
