// Serialization, separate from transport: AgentSpan / AgentLog values to OTLP protobuf bytes.
// Pure functions; events with the same effective resource share one ResourceSpans/ResourceLogs.
import Long from 'long';
import { opentelemetry } from '../../proto/generated/otlp.js';
import type { AgentAttributeValue, AgentLog, AgentSpan } from './types.js';

type KeyValue = opentelemetry.proto.common.v1.KeyValue.$Properties;
type AnyValue = opentelemetry.proto.common.v1.AnyValue.$Properties;
type Attributes = Record<string, AgentAttributeValue>;

export interface Scope {
  name: string;
  version: string;
}

const SPAN_KIND = { internal: 1, server: 2, client: 3 } as const;
const STATUS_CODE = { unset: 0, ok: 1, error: 2 } as const;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/**
 * The string as valid UTF-16 (lone surrogates become U+FFFD), so the protobuf is valid UTF-8:
 * a collector refuses a whole request for one invalid string field. Capture code may pass
 * anything (a datagram's JSON can carry `\ud800`); the check is cheap when nothing is wrong.
 */
export function wellFormed(text: string): string {
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATES, '\uFFFD') : text;
}

function anyValue(value: AgentAttributeValue | string | number | boolean): AnyValue {
  if (Array.isArray(value)) return { arrayValue: { values: (value as (string | number)[]).map(anyValue) } };
  if (typeof value === 'string') return { stringValue: wellFormed(value) };
  if (typeof value === 'boolean') return { boolValue: value };
  return Number.isSafeInteger(value) ? { intValue: value } : { doubleValue: value };
}

export function keyValues(attributes: Attributes): KeyValue[] {
  return Object.entries(attributes).map(([key, value]) => ({ key: wellFormed(key), value: anyValue(value) }));
}

const nanos = (text: string) => Long.fromString(text, true);
const bytes = (hex: string) => Buffer.from(hex, 'hex');

/** Groups items by their merged resource (stable key: sorted JSON), keeping first-seen order. */
function byResource<T extends { resource?: Attributes }>(items: T[], base: Attributes): { resource: Attributes; items: T[] }[] {
  const groups = new Map<string, { resource: Attributes; items: T[] }>();
  for (const item of items) {
    const resource = item.resource ? { ...base, ...item.resource } : base;
    const key = item.resource ? JSON.stringify(Object.entries(resource).sort(([a], [b]) => (a < b ? -1 : 1))) : '';
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { resource, items: [] }));
    group.items.push(item);
  }
  return [...groups.values()];
}

export function encodeSpans(spans: AgentSpan[], resource: Attributes, scope: Scope): Uint8Array {
  const request: opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.$Properties = {
    resourceSpans: byResource(spans, resource).map((group) => ({
      resource: { attributes: keyValues(group.resource) },
      scopeSpans: [
        {
          scope,
          spans: group.items.map((s) => ({
            traceId: bytes(s.traceId),
            spanId: bytes(s.spanId),
            parentSpanId: s.parentSpanId ? bytes(s.parentSpanId) : undefined,
            name: wellFormed(s.name),
            kind: SPAN_KIND[s.kind],
            startTimeUnixNano: nanos(s.startTimeUnixNano),
            endTimeUnixNano: nanos(s.endTimeUnixNano),
            attributes: keyValues(s.attributes),
            status: s.status ? { code: STATUS_CODE[s.status.code], message: wellFormed(s.status.message ?? '') } : undefined,
          })),
        },
      ],
    })),
  };
  return opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.encode(request).finish();
}

export function encodeLogs(logs: AgentLog[], resource: Attributes, scope: Scope): Uint8Array {
  const request: opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest.$Properties = {
    resourceLogs: byResource(logs, resource).map((group) => ({
      resource: { attributes: keyValues(group.resource) },
      scopeLogs: [
        {
          scope,
          logRecords: group.items.map((l) => ({
            timeUnixNano: nanos(l.timeUnixNano),
            observedTimeUnixNano: nanos(l.timeUnixNano),
            severityNumber: l.severityNumber,
            severityText: wellFormed(l.severityText),
            body: { stringValue: wellFormed(l.body) },
            attributes: keyValues(l.attributes),
            traceId: l.traceId ? bytes(l.traceId) : undefined,
            spanId: l.spanId ? bytes(l.spanId) : undefined,
            eventName: l.eventName ? wellFormed(l.eventName) : undefined,
          })),
        },
      ],
    })),
  };
  return opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest.encode(request).finish();
}

/** Rejected counts from an OTLP response body (partial success); 0 when absent or undecodable. */
export function rejectedCount(signal: 'traces' | 'logs', body: Uint8Array): { rejected: number; message: string } {
  try {
    if (signal === 'traces') {
      const r = opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse.decode(body);
      return { rejected: Number(r.partialSuccess?.rejectedSpans ?? 0), message: r.partialSuccess?.errorMessage ?? '' };
    }
    const r = opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse.decode(body);
    return { rejected: Number(r.partialSuccess?.rejectedLogRecords ?? 0), message: r.partialSuccess?.errorMessage ?? '' };
  } catch {
    return { rejected: 0, message: '' };
  }
}
