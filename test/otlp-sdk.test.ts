// The real OpenTelemetry JS SDK sends traces and logs (JSON and protobuf) to a real collector
// process; the test then reads the SQLite file and checks what was stored.
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as LogsJson } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as LogsProto } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as TracesJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as TracesProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readStore, startCollector } from './collector.js';

const nanos = (iso: string) => String(BigInt(Date.parse(iso)) * 1_000_000n);
const resource = resourceFromAttributes({ 'service.name': 'shop', 'host.name': 'web-1', 'deployment.environment': 'test' });

for (const [encoding, Exporter] of [
  ['json', TracesJson],
  ['protobuf', TracesProto],
] as const) {
  test(`SDK spans over OTLP/HTTP ${encoding} are stored with ids, times, kind, status and attributes`, async (t) => {
    const collector = await startCollector(t);
    const provider = new BasicTracerProvider({
      resource,
      spanProcessors: [new SimpleSpanProcessor(new Exporter({ url: `${collector.otlpUrl}/v1/traces` }))],
    });
    const tracer = provider.getTracer('checkout', '1.2.3');
    const start = new Date('2026-11-25T10:00:00.000Z');
    const end = new Date('2026-11-25T10:00:00.750Z');
    const parent = tracer.startSpan('GET /cart', {
      kind: SpanKind.SERVER,
      startTime: start,
      attributes: { 'http.request.method': 'GET', 'http.response.status_code': 500, 'bitville.correlation_id': 'legacy-42', ok: false, ratio: 0.5, tags: ['a', 'b'] },
    });
    parent.addEvent('cache miss', { key: 'cart:7' }, new Date('2026-11-25T10:00:00.100Z'));
    parent.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    const child = tracer.startSpan(
      'SELECT cart',
      { kind: SpanKind.CLIENT, startTime: new Date('2026-11-25T10:00:00.200Z'), attributes: { 'db.system.name': 'postgresql' } },
      trace.setSpan(context.active(), parent),
    );
    child.end(new Date('2026-11-25T10:00:00.300Z'));
    parent.end(end);
    await provider.forceFlush();
    await provider.shutdown();

    const rows = readStore(collector.dbPath);
    assert.equal(rows.length, 2);
    const p = rows.find((r) => r.record.name === 'GET /cart')!.record;
    const c = rows.find((r) => r.record.name === 'SELECT cart')!.record;
    const pc = parent.spanContext();
    assert.equal(p.traceId, pc.traceId);
    assert.equal(p.spanId, pc.spanId);
    assert.equal(p.parentSpanId, '');
    assert.equal(c.traceId, pc.traceId);
    assert.equal(c.parentSpanId, pc.spanId);
    assert.equal(p.spanKind, 2);
    assert.equal(c.spanKind, 3);
    assert.equal(p.startTimeUnixNano, nanos('2026-11-25T10:00:00.000Z'));
    assert.equal(p.endTimeUnixNano, nanos('2026-11-25T10:00:00.750Z'));
    assert.equal(p.durationMs, 750);
    assert.deepEqual(p.status, { code: 2, message: 'boom' });
    assert.equal(p.correlationId, 'legacy-42');
    assert.equal(c.correlationId, pc.traceId, 'without the attribute the trace id is the correlation id');
    assert.deepEqual(
      { method: p.attributes['http.request.method'], status: p.attributes['http.response.status_code'], ok: p.attributes.ok, ratio: p.attributes.ratio, tags: p.attributes.tags },
      { method: 'GET', status: 500, ok: false, ratio: 0.5, tags: ['a', 'b'] },
    );
    assert.equal(p.resource['service.name'], 'shop');
    assert.equal(p.resource['host.name'], 'web-1');
    assert.deepEqual({ name: p.scope.name, version: p.scope.version }, { name: 'checkout', version: '1.2.3' });
    assert.deepEqual(p.events, [{ timeUnixNano: nanos('2026-11-25T10:00:00.100Z'), name: 'cache miss', attributes: { key: 'cart:7' } }]);
    const indexed = rows.find((r) => r.record.name === 'GET /cart')!;
    assert.equal(indexed.correlation_id, 'legacy-42');
    assert.equal(indexed.signal, 'traces');
  });
}

for (const [encoding, Exporter] of [
  ['json', LogsJson],
  ['protobuf', LogsProto],
] as const) {
  test(`SDK log records over OTLP/HTTP ${encoding} are stored with severity, body, trace context and attributes`, async (t) => {
    const collector = await startCollector(t);
    const provider = new LoggerProvider({
      resource,
      processors: [new SimpleLogRecordProcessor({ exporter: new Exporter({ url: `${collector.otlpUrl}/v1/logs` }) })],
    });
    provider.getLogger('app', '2.0.0').emit({
      timestamp: new Date('2026-11-25T10:00:01.000Z'),
      severityNumber: SeverityNumber.WARN,
      severityText: 'WARN',
      body: 'disk almost full',
      attributes: { 'disk.free_mb': 120 },
    });
    await provider.forceFlush();
    await provider.shutdown();

    const rows = readStore(collector.dbPath);
    assert.equal(rows.length, 1);
    const l = rows[0]!.record;
    assert.equal(rows[0]!.signal, 'logs');
    assert.equal(l.kind, 'log');
    assert.equal(l.timeUnixNano, nanos('2026-11-25T10:00:01.000Z'));
    assert.equal(l.severityNumber, 13);
    assert.equal(l.severityText, 'WARN');
    assert.equal(l.body, 'disk almost full');
    assert.equal(l.attributes['disk.free_mb'], 120);
    assert.equal(l.resource['service.name'], 'shop');
    assert.equal(l.scope.name, 'app');
  });
}
