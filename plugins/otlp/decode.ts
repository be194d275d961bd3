// OTLP request -> flat records. One walker serves both encodings: protobufjs's decoded
// messages and parsed OTLP/JSON share field names (lowerCamelCase) and differ only in leaf
// representations, which the helpers below accept in either form: ids as bytes or hex (any
// case), 64-bit integers as Long, decimal string or number, enums as integers (or names).
//
// A problem with one record (a missing or malformed id, a value of the wrong type) rejects
// that record and is reported through partial_success; a problem with the request's shape
// rejects the request (400).
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

function list(value: unknown, what: string): Obj[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw badRequest(`${what} must be an array`);
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

function int64(value: unknown, what: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'string') {
    if (!/^-?\d+$/.test(value)) throw new RecordError(`${what} "${value}" is not an integer`);
    return BigInt(value);
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RecordError(`${what} ${value} is not an integer`);
    return BigInt(value);
  }
  if (isLong(value)) {
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return value.unsigned ? bits : BigInt.asIntN(64, bits);
  }
  throw new RecordError(`${what} has an unexpected type`);
}

function intAttribute(value: unknown): number | string {
  const n = int64(value, 'intValue');
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
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
      throw new RecordError(`${what} "${value}" is not ${bytes * 2} hex digits`);
    }
    hex = value.toLowerCase();
  } else {
    throw new RecordError(`${what} must be hex text or bytes`);
  }
  return /^0+$/.test(hex) ? '' : hex;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function uint(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function enumValue(value: unknown, names: readonly string[]): number {
  if (typeof value === 'number') return value;
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

export function anyValue(value: unknown): AttributeValue {
  if (value === undefined || value === null || typeof value !== 'object') return null;
  const v = value as Obj;
  if (has(v, 'stringValue')) return text(v.stringValue);
  if (has(v, 'boolValue')) return v.boolValue === true;
  if (has(v, 'intValue')) return intAttribute(v.intValue);
  if (has(v, 'doubleValue')) return Number(v.doubleValue);
  if (has(v, 'arrayValue')) return list(v.arrayValue?.values, 'arrayValue.values').map(anyValue);
  if (has(v, 'kvlistValue')) return attributes(v.kvlistValue?.values);
  if (has(v, 'bytesValue')) {
    const bytes = v.bytesValue;
    return bytes instanceof Uint8Array ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64') : text(bytes);
  }
  return null;
}

export function attributes(kvs: unknown): Attributes {
  const out: Attributes = {};
  for (const kv of list(kvs, 'attributes')) {
    if (typeof kv?.key === 'string') out[kv.key] = anyValue(kv.value);
  }
  return out;
}

function scopeOf(scope: Obj | undefined | null): Scope {
  return { name: text(scope?.name), version: text(scope?.version), attributes: attributes(scope?.attributes) };
}

function correlationOf(attrs: Attributes, resource: Attributes, traceId: string): string {
  const given = attrs[CORRELATION_ATTRIBUTE] ?? resource[CORRELATION_ATTRIBUTE];
  return typeof given === 'string' && given !== '' ? given : traceId;
}

function span(s: Obj, resource: Attributes, scope: Scope): SpanRecord {
  const traceId = hexId(s.traceId, 16, 'traceId');
  const spanId = hexId(s.spanId, 8, 'spanId');
  if (!traceId) throw new RecordError('a span has no valid traceId');
  if (!spanId) throw new RecordError(`span in trace ${traceId} has no valid spanId`);
  const start = int64(s.startTimeUnixNano, 'startTimeUnixNano');
  const end = int64(s.endTimeUnixNano, 'endTimeUnixNano');
  const attrs = attributes(s.attributes);
  const events: SpanEvent[] = list(s.events, 'events').map((e) => ({
    timeUnixNano: int64(e.timeUnixNano, 'event timeUnixNano').toString(),
    name: text(e.name),
    attributes: attributes(e.attributes),
  }));
  const links: SpanLink[] = list(s.links, 'links').map((l) => ({
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
  const observed = int64(l.observedTimeUnixNano, 'observedTimeUnixNano');
  const time = int64(l.timeUnixNano, 'timeUnixNano') || observed || nowNano;
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
  for (const group of list(groups, groupsName)) {
    const resource = attributes(group?.resource?.attributes);
    for (const scoped of list(group?.[scopesName], scopesName)) {
      const scope = scopeOf(scoped?.scope);
      for (const item of list(scoped?.[itemsName], itemsName)) {
        try {
          if (typeof item !== 'object' || item === null) throw new RecordError(`an entry of ${itemsName} is not an object`);
          out.records.push(convert(item, resource, scope));
        } catch (err) {
          if (!(err instanceof RecordError)) throw err;
          out.rejected++;
          out.error ||= err.message;
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
