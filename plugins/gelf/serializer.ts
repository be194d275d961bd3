// Record -> GELF 1.1 message -> bytes. Pure functions: no I/O, no clock but the record's own.
//
// Mapping (docs/gelf.md has the full table):
// - standard fields: version, host (resource host.name, else the collector's hostname),
//   short_message "<source> - <project>", full_message (the whole record as JSON),
//   timestamp (seconds, millisecond decimals), level (syslog scale).
// - fixed custom fields: _correlation_id, _project, _source, _duration_ms, _timestamp, and
//   _url, _method, _status_code when the record carries HTTP attributes.
// - every other attribute (resource, scope, record; later ones win) as `_<name>` where the
//   name is made valid by fieldName().
import { durationOf, projectOf, sourceOf, storedRecordJson, timeOf, SpanKind, StatusCode } from '../../collector/core/api.js';
import type { AttributeValue, Attributes, StoredRecord } from '../../collector/core/api.js';

export type GelfValue = string | number;
export type GelfMessage = {
  version: '1.1';
  host: string;
  short_message: string;
  full_message?: string;
  timestamp: number;
  level: number;
} & { [field: `_${string}`]: GelfValue };

export interface SerializerOptions {
  /** Used as `host` when the record has no resource `host.name`. */
  defaultHost: string;
  /** Longest value of a field other than full_message, in UTF-8 bytes. */
  maxFieldBytes: number;
  /** Longest full_message, in UTF-8 bytes. */
  maxFullMessageBytes: number;
}

export const TRUNCATION_MARKER = '…[truncated]';

/** What Graylog accepts as a field name (after its leading `_`). */
const VALID_FIELD = /^_[A-Za-z0-9_.@-]+$/;

/**
 * The GELF name of an attribute key:
 * 1. a leading `bitville.` (this project's own attribute namespace) is dropped, so
 *    `bitville.db_time_ms` becomes `_db_time_ms`;
 * 2. every character other than A-Z, a-z, 0-9, `_` and `-` becomes `_` (dots too: Graylog
 *    stores fields in OpenSearch, where `a.b` is an object path that clashes with a field `a`);
 * 3. the name is prefixed with `_`; `_id` (reserved by GELF) becomes `_attr_id`, and an empty
 *    name becomes `_attr_`.
 */
export function fieldName(key: string): string {
  let name = fieldNames.get(key);
  if (name === undefined) {
    name = computeFieldName(key);
    // Attribute keys repeat from record to record; a bounded cache keeps this off the hot path.
    if (fieldNames.size >= 10_000) fieldNames.clear();
    fieldNames.set(key, name);
  }
  return name;
}
const fieldNames = new Map<string, string>();

function computeFieldName(key: string): string {
  const bare = key.startsWith('bitville.') ? key.slice('bitville.'.length) : key;
  const name = bare.replace(/[^A-Za-z0-9_-]/g, '_');
  if (name === '' || name === 'id') return `_attr_${name}`;
  return `_${name}`;
}

/**
 * A GELF field value. Graylog keeps strings and numbers and silently drops booleans, so:
 * booleans become "true"/"false", arrays and maps their JSON text, non-finite numbers their
 * text ("NaN", "Infinity"); null yields no field (full_message still shows it).
 */
export function fieldValue(value: AttributeValue): GelfValue | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      return value === null ? undefined : JSON.stringify(value);
  }
}

/** Cuts `text` to at most `maxBytes` UTF-8 bytes (marker included), on a character boundary. */
export function truncate(text: string, maxBytes: number): string {
  // Fast path: a UTF-16 unit is at most 3 UTF-8 bytes.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  const room = maxBytes - Buffer.byteLength(TRUNCATION_MARKER);
  const bytes = Buffer.from(text);
  let end = Math.max(0, room);
  // Step back over UTF-8 continuation bytes so no character is split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end) + TRUNCATION_MARKER;
}

/** OTLP severity number (1-24) -> syslog level (0-7). */
export function syslogLevelOfSeverity(severityNumber: number): number {
  if (severityNumber >= 21) return 2; // FATAL -> critical
  if (severityNumber >= 17) return 3; // ERROR -> error
  if (severityNumber >= 13) return 4; // WARN -> warning
  if (severityNumber >= 9) return 6; // INFO -> informational
  if (severityNumber >= 1) return 7; // TRACE, DEBUG -> debug
  return 6; // unspecified
}

function levelOf(record: StoredRecord): number {
  if (record.kind === 'log') return syslogLevelOfSeverity(record.severityNumber);
  if (record.kind === 'span') return record.status.code === StatusCode.ERROR ? 3 : 6;
  return 6;
}

/** Nanoseconds (decimal string) -> RFC 3339 with nanoseconds, e.g. 2024-05-01T12:00:00.123456789Z. */
export function isoNanos(nanos: string): string {
  const digits = nanos.padStart(10, '0');
  const seconds = digits.slice(0, -9);
  // Records come in time order: most share the previous record's second.
  if (seconds !== isoSecond[0]) isoSecond = [seconds, new Date(Number(seconds) * 1000).toISOString().slice(0, 19)];
  return `${isoSecond[1]}.${digits.slice(-9)}Z`;
}
let isoSecond: [string, string] = ['', ''];

/** Nanoseconds (decimal string) -> GELF timestamp: seconds with millisecond decimals. */
function gelfTimestamp(nanos: string): number {
  const digits = nanos.padStart(10, '0');
  return Number(digits.slice(0, -6)) / 1000;
}

function firstString(attributes: Attributes, keys: string[]): string | undefined {
  for (const key of keys) {
    const value = attributes[key];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

function firstNumber(attributes: Attributes, keys: string[]): number | undefined {
  for (const key of keys) {
    const value = attributes[key];
    if (typeof value === 'number' && Number.isFinite(value)) return value;
    if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  }
  return undefined;
}

// Attribute keys looked up per record, allocated once.
const URL_KEYS = ['url.full', 'http.url'];
const PATH_KEYS = ['url.path'];
const QUERY_KEYS = ['url.query'];
const TARGET_KEYS = ['http.target'];
const METHOD_KEYS = ['http.request.method', 'http.method'];
const STATUS_KEYS = ['http.response.status_code', 'http.status_code'];

/** `_url`: url.full, else path (+ query), else the older http.url / http.target. */
function urlOf(a: Attributes): string | undefined {
  const full = firstString(a, URL_KEYS);
  if (full) return full;
  const path = firstString(a, PATH_KEYS);
  if (path) {
    const query = firstString(a, QUERY_KEYS);
    return query ? `${path}?${query}` : path;
  }
  return firstString(a, TARGET_KEYS);
}

const LOG_KINDS = new Set(['alert', 'heartbeat']);
const SPAN_KIND_NAMES = Object.fromEntries(Object.entries(SpanKind).map(([name, n]) => [n, name]));
const STATUS_NAMES = Object.fromEntries(Object.entries(StatusCode).map(([name, n]) => [n, name]));

/** The header of a GELF message and its custom fields in output order (later writes win, in place). */
interface Parts {
  host: string;
  short_message: string;
  full_message: string;
  timestamp: number;
  level: number;
  fields: Map<string, GelfValue>;
}

/** Maps one record to the parts of its GELF message. Throws when the record is malformed. */
function partsOf(record: StoredRecord, options: SerializerOptions): Parts {
  const time = timeOf(record);
  const timeNs = time && /^[1-9]\d*$/.test(time) ? time : `${record.receivedAtMs}000000`;
  const project = projectOf(record);
  const source = sourceOf(record);
  const hostName = record.resource['host.name'];
  const maxField = options.maxFieldBytes;
  const fields = new Map<string, GelfValue>();
  const put = (name: string, value: AttributeValue | undefined) => {
    if (value === undefined) return;
    const v = fieldValue(value);
    if (v !== undefined) fields.set(name, typeof v === 'string' ? truncate(v, maxField) : v);
  };

  // Attributes first, least specific first, so record attributes win over scope and
  // resource ones, and the fixed fields below win over all of them.
  for (const key in record.resource) put(fieldName(key), record.resource[key]);
  for (const key in record.scope.attributes) put(fieldName(key), record.scope.attributes[key]);
  for (const key in record.attributes) put(fieldName(key), record.attributes[key]);

  // A log record may name a finer kind of this project's own (`alert`, `heartbeat`), so `kind:alert` finds alerts.
  put('_kind', record.kind === 'log' && LOG_KINDS.has(record.attributes['bitville.kind'] as string) ? (record.attributes['bitville.kind'] as string) : record.kind);
  put('_record_id', record.id);
  if (record.traceId) put('_trace_id', record.traceId);
  if (record.spanId) put('_span_id', record.spanId);
  if (record.scope.name) put('_scope_name', record.scope.name);
  if (record.scope.version) put('_scope_version', record.scope.version);
  if (record.kind === 'span') {
    put('_name', record.name);
    if (record.parentSpanId) put('_parent_span_id', record.parentSpanId);
    put('_span_kind', SPAN_KIND_NAMES[record.spanKind] ?? String(record.spanKind));
    put('_span_status', STATUS_NAMES[record.status.code] ?? String(record.status.code));
    if (record.status.message) put('_span_status_message', record.status.message);
  } else if (record.kind === 'log') {
    put('_body', record.body);
    if (record.severityText) put('_severity_text', record.severityText);
    put('_severity_number', record.severityNumber);
    if (record.eventName) put('_event_name', record.eventName);
  } else {
    put('_name', record.name);
  }

  const a = record.attributes;
  put('_url', urlOf(a));
  put('_method', firstString(a, METHOD_KEYS));
  put('_status_code', firstNumber(a, STATUS_KEYS));
  if (record.correlationId) put('_correlation_id', record.correlationId);
  put('_project', project);
  put('_source', source);
  put('_duration_ms', durationOf(record));
  put('_timestamp', isoNanos(timeNs));
  return {
    host: truncate(typeof hostName === 'string' && hostName !== '' ? hostName : options.defaultHost, maxField),
    short_message: truncate(`${source} - ${project || 'unknown'}`, maxField),
    // The stored JSON text, not a second JSON.stringify of a record just parsed from it.
    full_message: truncate(storedRecordJson(record), options.maxFullMessageBytes),
    timestamp: gelfTimestamp(timeNs),
    level: levelOf(record),
    fields,
  };
}

/** Builds the GELF message of one record. Throws when the record is malformed. */
export function toGelf(record: StoredRecord, options: SerializerOptions): GelfMessage {
  const { fields, ...header } = partsOf(record, options);
  const message = { version: '1.1', ...header } as GelfMessage;
  const out = message as unknown as Record<string, GelfValue>;
  for (const [name, value] of fields) out[name] = value;
  return message;
}

/**
 * Checks a message the way Graylog parses it, so nothing is sent that Graylog would drop
 * silently (its HTTP input answers 202 before parsing). Returns the problem, or undefined.
 */
export function validate(message: GelfMessage): string | undefined {
  if (message.version !== '1.1') return 'version is not 1.1';
  if (typeof message.host !== 'string' || message.host.trim() === '') return 'host is empty';
  if (typeof message.short_message !== 'string' || message.short_message.trim() === '') return 'short_message is empty';
  if (typeof message.timestamp !== 'number' || !Number.isFinite(message.timestamp) || message.timestamp <= 0) {
    return 'timestamp is not a positive number';
  }
  if (!Number.isInteger(message.level) || message.level < 0 || message.level > 7) return 'level is not 0-7';
  for (const key in message) {
    if (key === 'version' || key === 'host' || key === 'short_message' || key === 'full_message' || key === 'timestamp' || key === 'level') {
      continue;
    }
    if (!validNames.has(key)) {
      if (!VALID_FIELD.test(key) || key === '_id') return `field name "${key}" is not valid for Graylog`;
      if (validNames.size >= 10_000) validNames.clear();
      validNames.add(key);
    }
    const value = (message as Record<string, unknown>)[key];
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) {
      return `field "${key}" is neither a string nor a finite number`;
    }
  }
  return undefined;
}

const validNames = new Set<string>();

/** JSON text of a message (no framing, no compression). */
export function encode(message: GelfMessage): string {
  return JSON.stringify(message);
}

/**
 * The JSON of `message` within `maxBytes` UTF-8 bytes, full_message cut as far as needed (to
 * 64 bytes at least); undefined when even that is too large.
 */
export function fitTo(message: GelfMessage, maxBytes: number): string | undefined {
  let json = encode(message);
  let size = Buffer.byteLength(json);
  let full = message.full_message ?? '';
  while (size > maxBytes) {
    const fullBytes = Buffer.byteLength(full);
    if (fullBytes <= 64) return undefined;
    // Escaping makes the JSON of full_message longer than its text: cut by the excess, then check again.
    full = truncate(full, Math.max(64, fullBytes - (size - maxBytes) - 16));
    json = encode({ ...message, full_message: full });
    size = Buffer.byteLength(json);
  }
  return json;
}

export type Serialized = { id: number; json: string; bytes: number } | { id: number; error: string };

/**
 * Maps, checks and encodes one record; never throws. The JSON text is built directly from the
 * mapped parts, each value escaped once (full_message is the one long value); `bytes` is its
 * UTF-8 length, measured once. Only what the mapping can get wrong is checked: the host (a
 * blank resource host.name) and the timestamp (a record with no usable time). Field names are
 * valid by construction (fieldName() and the fixed names use only A-Z, a-z, 0-9, `_`, `-`,
 * never `_id`), and fieldValue() yields only strings and finite numbers; validate() checks
 * whole messages from elsewhere.
 */
export function serialize(record: StoredRecord, options: SerializerOptions): Serialized {
  try {
    const parts = partsOf(record, options);
    if (parts.host.trim() === '') return { id: record.id, error: 'host is empty' };
    if (!(parts.timestamp > 0 && Number.isFinite(parts.timestamp))) return { id: record.id, error: 'timestamp is not a positive number' };
    let json = `{"version":"1.1","host":${JSON.stringify(parts.host)},"short_message":${JSON.stringify(parts.short_message)},"full_message":${JSON.stringify(parts.full_message)},"timestamp":${parts.timestamp},"level":${parts.level}`;
    for (const [name, value] of parts.fields) json += `,"${name}":${typeof value === 'string' ? JSON.stringify(value) : value}`;
    json += '}';
    return { id: record.id, json, bytes: Buffer.byteLength(json) };
  } catch (err) {
    return { id: record.id, error: `cannot map the record to GELF: ${(err as Error).message}` };
  }
}
