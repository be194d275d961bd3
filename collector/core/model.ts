// The internal data model: one flat, typed record per span, log record and metric data point, with the
// resource and scope folded in, so processors and exporters never walk the nested OTLP shape.
//
// Lossless for what the store, the correlation join and GELF need. Two conversions are
// deliberate: 64-bit integer attribute values outside +-2^53 become decimal strings, and
// bytes values become base64 strings (both so a record is plain JSON).

export type AttributeValue =
  | string
  | number
  | boolean
  | null
  | AttributeValue[]
  | { [key: string]: AttributeValue };

export type Attributes = Record<string, AttributeValue>;

export type Signal = 'traces' | 'logs' | 'metrics';

/** Span kinds, numbered as in OTLP. */
export const SpanKind = {
  UNSPECIFIED: 0,
  INTERNAL: 1,
  SERVER: 2,
  CLIENT: 3,
  PRODUCER: 4,
  CONSUMER: 5,
} as const;

/** Span status codes, numbered as in OTLP. */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export interface Scope {
  name: string;
  version: string;
  attributes: Attributes;
}

interface RecordBase {
  /** Resource attributes (`service.name`, `host.name`, ...). */
  resource: Attributes;
  scope: Scope;
  attributes: Attributes;
  /** Lowercase hex, '' when absent. */
  traceId: string;
  /** Lowercase hex, '' when absent. */
  spanId: string;
  /**
   * The key the correlation join uses: the `bitville.correlation_id` attribute when present
   * (kept as given), else the trace id; '' when neither exists.
   */
  correlationId: string;
}

export interface SpanEvent {
  timeUnixNano: string;
  name: string;
  attributes: Attributes;
}

export interface SpanLink {
  traceId: string;
  spanId: string;
  traceState: string;
  attributes: Attributes;
}

export interface SpanRecord extends RecordBase {
  kind: 'span';
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP span kind number (see SpanKind). */
  spanKind: number;
  /** Nanoseconds since the epoch, as a decimal string (exceeds 2^53). */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  /** End minus start, in milliseconds (fractional). */
  durationMs: number;
  status: { code: number; message: string };
  events: SpanEvent[];
  links: SpanLink[];
  flags: number;
}

export interface LogRecord extends RecordBase {
  kind: 'log';
  /** Nanoseconds since the epoch as a decimal string; the observed time when the time is 0. */
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: AttributeValue;
  eventName: string;
  flags: number;
}

/**
 * A record a processor derived (for example a request summary). It is stored and
 * forwarded like any other record.
 */
export interface DerivedRecord extends RecordBase {
  kind: 'summary';
  name: string;
  /** Nanoseconds since the epoch as a decimal string. */
  timeUnixNano: string;
  durationMs: number;
}

/** How a metric's points aggregate, as OTLP names its data kinds. */
export type MetricType = 'gauge' | 'sum' | 'histogram' | 'exponential_histogram' | 'summary';

/** Buckets of an exponential histogram: counts for consecutive indexes from `offset`. */
export interface ExponentialBuckets {
  offset: number;
  bucketCounts: number[];
}

/**
 * One metric data point, with its metric's name, unit and type folded in (signal `metrics`).
 * Counts and integer values are numbers: exact up to 2^53, which no real counter reaches.
 * Which value fields are present depends on `metricType`.
 */
export interface MetricRecord extends RecordBase {
  kind: 'metric';
  name: string;
  description: string;
  unit: string;
  metricType: MetricType;
  /** OTLP aggregation temporality: 0 unspecified, 1 delta, 2 cumulative (sums and histograms). */
  temporality: number;
  /** Sums only: the value only goes up (a counter). */
  monotonic: boolean;
  /** Nanoseconds since the epoch as decimal strings; start is '0' when unknown. */
  startTimeUnixNano: string;
  timeUnixNano: string;
  /** Bit 0: no recorded value (a staleness marker). */
  flags: number;
  /** Gauge and sum. */
  value?: number;
  /** Histograms and summaries. */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  /** Histogram: counts per bucket, with bucket i ending at explicitBounds[i] (the last at +Inf). */
  bucketCounts?: number[];
  explicitBounds?: number[];
  /** Exponential histogram: bucket bounds are powers of 2^(2^-scale). */
  scale?: number;
  zeroCount?: number;
  zeroThreshold?: number;
  positive?: ExponentialBuckets;
  negative?: ExponentialBuckets;
  /** Summary: values at quantiles. */
  quantiles?: { quantile: number; value: number }[];
}

export type FlatRecord = SpanRecord | LogRecord | DerivedRecord | MetricRecord;
export type RecordKind = FlatRecord['kind'];

/** A record as read back from the store: its store id (FIFO order) and when it arrived. */
export type StoredRecord = FlatRecord & { id: number; receivedAtMs: number; [STORED_JSON]?: string };

/**
 * The record's JSON text as the store holds it (without id and receivedAtMs), carried by the
 * stores on the records they hand out, so the complete record as JSON costs no second
 * JSON.stringify. A symbol key: never part of the record's own JSON or of a field walk.
 */
export const STORED_JSON: unique symbol = Symbol('bitville.storedJson');

/**
 * The complete stored record as JSON, id and receivedAtMs last: the same text as
 * JSON.stringify(record), built from the stored text when the store handed it over.
 */
export function storedRecordJson(record: StoredRecord): string {
  const text = record[STORED_JSON];
  if (text === undefined || !text.endsWith('}')) return JSON.stringify(record);
  return `${text.length > 2 ? text.slice(0, -1) + ',' : '{'}"id":${record.id},"receivedAtMs":${record.receivedAtMs}}`;
}

/**
 * A stored record as text: its id, arrival, kind and stored JSON text (STORED_JSON: without id
 * and receivedAtMs). What the store reads for an exporter before any parse, so an exporter that
 * hands the text on (GELF's encoder thread) costs the reading thread no JSON.parse.
 */
export interface StoredText {
  id: number;
  receivedAtMs: number;
  kind: RecordKind;
  json: string;
  /** The record itself, when it was at hand (a caught-up export queue's commits from memory). */
  record?: StoredRecord;
}

/** The record of a stored text (parsed unless at hand). Throws when the text is not JSON. */
export function parseStored(text: StoredText): StoredRecord {
  return text.record ?? parseStoredJson(text.json, text.id, text.receivedAtMs);
}

/** The record of a stored text, or, when the text is not JSON (a damaged row), why it cannot be read. */
export function readStored(text: StoredText): StoredRecord | Error {
  try {
    return parseStored(text);
  } catch (err) {
    return new Error(`cannot read the stored record: ${(err as Error).message}`);
  }
}

/** A record from its stored JSON text. Throws when the text is not JSON. */
export function parseStoredJson(json: string, id: number, receivedAtMs: number): StoredRecord {
  // Add the fields to the parsed object itself: a spread copy costs as much as the parse.
  const record = JSON.parse(json) as StoredRecord;
  record.id = id;
  record.receivedAtMs = receivedAtMs;
  record[STORED_JSON] = json;
  return record;
}

/** A stored record as text: its stored JSON text when the store handed it over, else its JSON without id and receivedAtMs. */
export function textOf(record: StoredRecord): StoredText {
  let json = record[STORED_JSON];
  if (json === undefined) {
    const { id: _id, receivedAtMs: _receivedAtMs, ...flat } = record;
    json = JSON.stringify(flat);
  }
  return { id: record.id, receivedAtMs: record.receivedAtMs, kind: record.kind, json, record };
}

export function signalOf(record: FlatRecord): Signal {
  return record.kind === 'log' ? 'logs' : record.kind === 'metric' ? 'metrics' : 'traces';
}

/** The record's own time: a span's start, a log's or a metric point's timestamp. */
export function timeOf(record: FlatRecord): string {
  return record.kind === 'span' ? record.startTimeUnixNano : record.timeUnixNano;
}

/** Resource `service.name`, which this project calls the project. */
export function projectOf(record: FlatRecord): string {
  const name = record.resource['service.name'];
  return typeof name === 'string' ? name : '';
}

/** Which agent or sender produced the record: `bitville.source`, else `otlp`. */
export function sourceOf(record: FlatRecord): string {
  const source = record.resource['bitville.source'] ?? record.attributes['bitville.source'];
  return typeof source === 'string' && source !== '' ? source : 'otlp';
}

export function durationOf(record: FlatRecord): number | undefined {
  return record.kind === 'log' || record.kind === 'metric' ? undefined : record.durationMs;
}

export const CORRELATION_ATTRIBUTE = 'bitville.correlation_id';
