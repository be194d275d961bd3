// Flat records for the store tests (SQLite and PostgreSQL alike).
import type { DerivedRecord, LogRecord, SpanRecord } from '../core/model.js';

export function span(n: number, extra: Partial<SpanRecord> = {}): SpanRecord {
  return {
    kind: 'span',
    resource: { 'service.name': 'shop' },
    scope: { name: 's', version: '', attributes: {} },
    attributes: { n },
    traceId: 'a'.repeat(32),
    spanId: n.toString(16).padStart(16, '0'),
    correlationId: `c${n % 3}`,
    parentSpanId: '',
    traceState: '',
    name: `span ${n}`,
    spanKind: 2,
    startTimeUnixNano: '1764064800000000000',
    endTimeUnixNano: '1764064800500000000',
    durationMs: 500,
    status: { code: 0, message: '' },
    events: [],
    links: [],
    flags: 0,
    ...extra,
  };
}

export function log(n: number): LogRecord {
  return {
    kind: 'log',
    resource: {},
    scope: { name: '', version: '', attributes: {} },
    attributes: {},
    traceId: '',
    spanId: '',
    correlationId: '',
    timeUnixNano: '1764064800000000000',
    observedTimeUnixNano: '0',
    severityNumber: 9,
    severityText: 'INFO',
    body: `log ${n}`,
    eventName: '',
    flags: 0,
  };
}

export function summary(correlationId: string, durationMs: number, url: string, project = 'shop', startSecond = 0): DerivedRecord {
  return {
    kind: 'summary',
    resource: { 'service.name': project },
    scope: { name: 'bitville.correlate', version: '', attributes: {} },
    attributes: { 'url.full': url },
    traceId: '',
    spanId: '',
    correlationId,
    name: 'GET /',
    timeUnixNano: `${1764064800 + startSecond}000000000`,
    durationMs,
  };
}
