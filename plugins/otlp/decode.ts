// OTLP request -> flat records. One walker serves both encodings: protobufjs's decoded
// messages and parsed OTLP/JSON share field names (lowerCamelCase) and differ only in leaf
// representations, which the helpers below accept in either form: ids as bytes or hex (any
// case), 64-bit integers as Long, decimal string or number, enums as integers (or names).
//
// A problem with one record (a missing or malformed id, a value of the wrong type, a value the
// store cannot hold) rejects that record and is reported through partial_success; a problem
// with the request's shape rejects the request (400). What is rejected and what is normalised,
// field by field, is in docs/faults.md ("Poison values").
import { ConsumerError, CORRELATION_ATTRIBUTE } from '../../collector/core/api.js';
import type { AttributeValue, Attributes, LogRecord, Scope, SpanEvent, SpanLink, SpanRecord } from '../../collector/core/api.js';

export interface Flattened<R> {
  records: R[];
  rejected: number;
  /** The first rejection's reason, for partial_success.error_message. */
  error: string;
}

type Obj = Record<string, any>;

const has = (o: Obj, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

class RecordError extends Error {}

function badRequest(message: string): ConsumerError {
  return new ConsumerError('BV_BAD_DATA', message);
}

/** A list of the request's shape (resources, scopes, records): not a list fails the request. */
function list(value: unknown, what: string): Obj[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badRequest(`${what} must be an array`);
  return value;
}

/** A list inside a record (attributes, events, array values): not a list fails that record. */
function innerList(value: unknown, what: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RecordError(`${what} must be an array`);
  return value;
}

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}

function isLong(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && typeof (v as LongLike).low === 'number' && typeof (v as LongLike).high === 'number';
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function int64(value: unknown, what: string): bigint {
  let n: bigint;
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'string') {
    if (!/^-?\d{1,20}$/.test(value)) throw new RecordError(`${what} "${cut(value)}" is not an integer`);
    n = BigInt(value);
  } else if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RecordError(`${what} ${value} is not an integer`);
    n = BigInt(value);
  } else if (isLong(value)) {
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    n = value.unsigned ? bits : BigInt.asIntN(64, bits);
  } else {
    throw new RecordError(`${what} has an unexpected type`);
  }
  // Both stores keep 64-bit signed integers; anything wider would fail the commit (and with it
  // the whole request, retried forever), so it fails this record here instead.
  if (n < INT64_MIN || n > INT64_MAX) throw new RecordError(`${what} ${n} is outside the 64-bit signed range the store can hold`);
  return n;
}

/** A time in ns since the epoch: 0 (unset) up to 2^63-1 (the year 2262), the store's range. */
function timestamp(value: unknown, what: string): bigint {
  const n = int64(value, what);
  if (n < 0n) throw new RecordError(`${what} ${n} is negative`);
  return n;
}

function intAttribute(value: unknown): number | string {
  const n = int64(value, 'intValue');
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

/** Shortens a value quoted in a reason, so a huge bad value does not make a huge answer. */
function cut(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}...` : value;
}

function hexId(value: unknown, bytes: number, what: string): string {
  if (value === undefined || value === null) return '';
  let hex: string;
  if (value instanceof Uint8Array) {
    if (value.length === 0) return '';
    if (value.length !== bytes) throw new RecordError(`${what} must be ${bytes} bytes, got ${value.length}`);
    hex = Buffer.from(value.buffer, value.byteOffset, value.length).toString('hex');
  } else if (typeof value === 'string') {
    if (value === '') return '';
    if (value.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(value)) {
      throw new RecordError(`${what} "${cut(clean(value))}" is not ${bytes * 2} hex digits`);
    }
    hex = value.toLowerCase();
  } else {
    throw new RecordError(`${what} must be hex text or bytes`);
  }
  return /^0+$/.test(hex) ? '' : hex;
}

/**
 * Text as the stores can hold and index it: NUL (which PostgreSQL text refuses and C tools
 * cut at) and unpaired surrogates (not representable in UTF-8) become U+FFFD. Normalised,
 * not rejected: invalid UTF-8 in a protobuf string is already decoded to U+FFFD the same way.
 */
function clean(value: string): string {
  if (value.includes('\0')) value = value.replaceAll('\0', '\uFFFD');
  const s = value as WellFormed;
  return s.isWellFormed() ? value : s.toWellFormed();
}
// ES2024 string methods, present in Node 20; the project's TypeScript lib predates them.
type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

function text(value: unknown): string {
  return typeof value === 'string' ? clean(value) : '';
}

/** A fixed32 field (flags): anything else is read as 0. */
function uint(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? value : 0;
}

function enumValue(value: unknown, names: readonly string[]): number {
  if (typeof value === 'number') return Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31 ? value : 0;
  if (typeof value === 'string') {
    const index = names.indexOf(value);
    if (index >= 0) return index;
  }
  return 0;
}

const SPAN_KINDS = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];
const STATUS_CODES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'];
const SEVERITIES = [
  'SEVERITY_NUMBER_UNSPECIFIED',
  ...['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'].flatMap((l) => [l, `${l}2`, `${l}3`, `${l}4`].map((n) => `SEVERITY_NUMBER_${n}`)),
];

/**
 * Deepest nesting of arrayValue/kvlistValue accepted in an attribute value or log body (a
 * scalar attribute is depth 1). A record with a deeper value is rejected, not truncated:
 * cutting would silently change what the sender meant. It also keeps every stored body far
 * below SQLite's JSON depth limit (1,000), so no stored record can break a read.
 */
export const MAX_ATTRIBUTE_DEPTH = 32;

export function anyValue(value: unknown, depth = 1): AttributeValue {
  if (value === undefined || value === null || typeof value !== 'object') return null;
  const v = value as Obj;
  if (has(v, 'stringValue')) return text(v.stringValue);
  if (has(v, 'boolValue')) return v.boolValue === true;
  if (has(v, 'intValue')) return intAttribute(v.intValue);
  if (has(v, 'doubleValue')) return double(v.doubleValue);
  if (has(v, 'arrayValue') || has(v, 'kvlistValue')) {
    if (depth >= MAX_ATTRIBUTE_DEPTH) throw new RecordError(`an attribute value is nested deeper than ${MAX_ATTRIBUTE_DEPTH} levels`);
    if (has(v, 'arrayValue')) return innerList(v.arrayValue?.values, 'arrayValue.values').map((item) => anyValue(item, depth + 1));
    return attributes(v.kvlistValue?.values, depth + 1);
  }
  if (has(v, 'bytesValue')) {
    const bytes = v.bytesValue;
    return bytes instanceof Uint8Array ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64') : text(bytes);
  }
  return null;
}

/**
 * A double as JSON can hold it: NaN and the infinities (valid in protobuf, and as strings in
 * OTLP/JSON) are kept as the strings OTLP/JSON writes for them, where JSON would make them null.
 */
function double(value: unknown): number | string {
  const n = Number(value);
  if (Number.isFinite(n)) return n;
  return Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
}

export function attributes(kvs: unknown, depth = 1): Attributes {
  const out: Attributes = {};
  for (const kv of innerList(kvs, 'attributes') as Obj[]) {
    if (typeof kv?.key !== 'string') continue;
    const key = clean(kv.key);
    const value = anyValue(kv.value, depth);
    // A key "__proto__" is data like any other, not the object's prototype.
    if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    else out[key] = value;
  }
  return out;
}

function scopeOf(scope: Obj | undefined | null): Scope {
  return { name: text(scope?.name), version: text(scope?.version), attributes: attributes(scope?.attributes) };
}

/** Longest correlation id kept: it is an indexed column, and PostgreSQL refuses index entries past ~2.7 kB. */
export const MAX_CORRELATION_ID_LENGTH = 256;

function correlationOf(attrs: Attributes, resource: Attributes, traceId: string): string {
  const given = attrs[CORRELATION_ATTRIBUTE] ?? resource[CORRELATION_ATTRIBUTE];
  if (typeof given !== 'string' || given === '') return traceId;
  if (given.length > MAX_CORRELATION_ID_LENGTH) {
    throw new RecordError(`${CORRELATION_ATTRIBUTE} is ${given.length} characters long (at most ${MAX_CORRELATION_ID_LENGTH})`);
  }
  return given;
}

/** The entries of a list inside a record; an entry that is not an object rejects the record. */
function entries(value: unknown, what: string): Obj[] {
  const items = innerList(value, what) as Obj[];
  for (const item of items) if (typeof item !== 'object' || item === null) throw new RecordError(`an entry of ${what} is not an object`);
  return items;
}

function span(s: Obj, resource: Attributes, scope: Scope): SpanRecord {
  const traceId = hexId(s.traceId, 16, 'traceId');
  const spanId = hexId(s.spanId, 8, 'spanId');
  if (!traceId) throw new RecordError('a span has no valid traceId');
  if (!spanId) throw new RecordError(`span in trace ${traceId} has no valid spanId`);
  const start = timestamp(s.startTimeUnixNano, 'startTimeUnixNano');
  const end = timestamp(s.endTimeUnixNano, 'endTimeUnixNano');
  const attrs = attributes(s.attributes);
  const events: SpanEvent[] = entries(s.events, 'events').map((e) => ({
    timeUnixNano: timestamp(e.timeUnixNano, 'event timeUnixNano').toString(),
    name: text(e.name),
    attributes: attributes(e.attributes),
  }));
  const links: SpanLink[] = entries(s.links, 'links').map((l) => ({
    traceId: hexId(l.traceId, 16, 'link traceId'),
    spanId: hexId(l.spanId, 8, 'link spanId'),
    traceState: text(l.traceState),
    attributes: attributes(l.attributes),
  }));
  return {
    kind: 'span',
    resource,
    scope,
    attributes: attrs,
    traceId,
    spanId,
    correlationId: correlationOf(attrs, resource, traceId),
    parentSpanId: hexId(s.parentSpanId, 8, 'parentSpanId'),
    traceState: text(s.traceState),
    name: text(s.name),
    spanKind: enumValue(s.kind, SPAN_KINDS),
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: end.toString(),
    durationMs: end > start ? Number(end - start) / 1e6 : 0,
    status: { code: enumValue(s.status?.code, STATUS_CODES), message: text(s.status?.message) },
    events,
    links,
    flags: uint(s.flags),
  };
}

function logRecord(l: Obj, resource: Attributes, scope: Scope, nowNano: bigint): LogRecord {
  const traceId = hexId(l.traceId, 16, 'traceId');
  const observed = timestamp(l.observedTimeUnixNano, 'observedTimeUnixNano');
  const time = timestamp(l.timeUnixNano, 'timeUnixNano') || observed || nowNano;
  const attrs = attributes(l.attributes);
  return {
    kind: 'log',
    resource,
    scope,
    attributes: attrs,
    traceId,
    spanId: hexId(l.spanId, 8, 'spanId'),
    correlationId: correlationOf(attrs, resource, traceId),
    timeUnixNano: time.toString(),
    observedTimeUnixNano: observed.toString(),
    severityNumber: enumValue(l.severityNumber, SEVERITIES),
    severityText: text(l.severityText),
    body: anyValue(l.body),
    eventName: text(l.eventName),
    flags: uint(l.flags),
  };
}

function walk<R>(
  groups: unknown,
  groupsName: string,
  scopesName: string,
  itemsName: string,
  convert: (item: Obj, resource: Attributes, scope: Scope) => R,
): Flattened<R> {
  const out: Flattened<R> = { records: [], rejected: 0, error: '' };
  const reject = (err: unknown, count: number) => {
    if (!(err instanceof RecordError)) throw err;
    out.rejected += count;
    out.error ||= err.message;
  };
  for (const group of list(groups, groupsName)) {
    const scopes = list(group?.[scopesName], scopesName);
    let resource: Attributes;
    try {
      resource = attributes(group?.resource?.attributes);
    } catch (err) {
      // A resource the store cannot hold fails every record under it, and only those.
      reject(err, scopes.reduce((n, scoped) => n + list(scoped?.[itemsName], itemsName).length, 0));
      continue;
    }
    for (const scoped of scopes) {
      const items = list(scoped?.[itemsName], itemsName);
      let scope: Scope;
      try {
        scope = scopeOf(scoped?.scope);
      } catch (err) {
        reject(err, items.length);
        continue;
      }
      for (const item of items) {
        try {
          if (typeof item !== 'object' || item === null) throw new RecordError(`an entry of ${itemsName} is not an object`);
          out.records.push(convert(item, resource, scope));
        } catch (err) {
          reject(err, 1);
        }
      }
    }
  }
  return out;
}

export function flattenTraces(request: Obj): Flattened<SpanRecord> {
  return walk(request.resourceSpans, 'resourceSpans', 'scopeSpans', 'spans', span);
}

export function flattenLogs(request: Obj, nowMs = Date.now()): Flattened<LogRecord> {
  const nowNano = BigInt(nowMs) * 1_000_000n;
  return walk(request.resourceLogs, 'resourceLogs', 'scopeLogs', 'logRecords', (l, r, s) => logRecord(l, r, s, nowNano));
}
