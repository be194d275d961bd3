// OTLP/gRPC against a real collector process: the OpenTelemetry JS SDK's gRPC exporters (gzip,
// bearer token in metadata) deliver spans and log records that land in the store; raw grpc-js
// calls get the OTLP status codes for malformed data, a wrong token, a missing pipeline and a
// store that cannot commit (UNAVAILABLE with RetryInfo), and partial_success for bad records.
import * as grpc from '@grpc/grpc-js';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { SpanKind } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { google, opentelemetry } from '../proto/generated/otlp.js';
import { readStore, startCollector, type CollectorOptions } from './collector.js';
import { grpcCall, grpcError, retryDelayMs } from './grpc.fixture.js';

const { ExportTraceServiceRequest, ExportTraceServiceResponse } = opentelemetry.proto.collector.trace.v1;
const TRACES = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const METRICS = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';
const TOKEN = 's3cret-token';

async function startWithGrpc(t: TestContext, options: CollectorOptions = {}) {
  const c = await startCollector(t, {
    ...options,
    config: { receivers: { otlp: { protocols: { grpc: { endpoint: '127.0.0.1:0' } } } }, ...options.config },
  });
  const line = await c.waitForLog((l) => l.msg === 'OTLP/gRPC receiver listening');
  return { ...c, grpcAddress: `127.0.0.1:${line.port}` };
}

const spanRequest = (...traceIds: string[]) =>
  Buffer.from(
    ExportTraceServiceRequest.encode({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'shop' } }] },
          scopeSpans: [
            {
              spans: traceIds.map((id, i) => ({
                traceId: Buffer.from(id, 'hex'),
                spanId: Buffer.from(`00000000000000a${i}`, 'hex'),
                name: `raw ${i}`,
                startTimeUnixNano: 1764064800000000000,
                endTimeUnixNano: 1764064800250000000,
              })),
            },
          ],
        },
      ],
    }).finish(),
  );

test('the JS SDK gRPC exporters deliver spans and log records (gzip, bearer token) and they are stored', async (t) => {
  const c = await startWithGrpc(t, {
    config: { receivers: { otlp: { protocols: { http: { auth: { bearer_token: TOKEN } }, grpc: { endpoint: '127.0.0.1:0' } } } } },
  });
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  const url = `http://${c.grpcAddress}`;
  const resource = resourceFromAttributes({ 'service.name': 'shop', 'host.name': 'web-1' });

  const tracer = new BasicTracerProvider({
    resource,
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url, metadata, compression: CompressionAlgorithm.GZIP }))],
  });
  const span = tracer.getTracer('checkout', '1.2.3').startSpan('GET /cart', {
    kind: SpanKind.SERVER,
    startTime: new Date('2026-11-25T10:00:00.000Z'),
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200 },
  });
  span.end(new Date('2026-11-25T10:00:00.750Z'));
  await tracer.forceFlush();
  await tracer.shutdown();

  const logs = new LoggerProvider({
    resource,
    processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url, metadata, compression: CompressionAlgorithm.GZIP }) })],
  });
  logs.getLogger('app').emit({ severityNumber: SeverityNumber.WARN, severityText: 'WARN', body: 'cart is slow', attributes: { cart: 7 } });
  await logs.forceFlush();
  await logs.shutdown();

  const rows = readStore(c.dbPath);
  const s = rows.find((r) => r.kind === 'span')!;
  assert.ok(s, 'the span is stored');
  assert.equal(s.signal, 'traces');
  assert.equal(s.record.traceId, span.spanContext().traceId);
  assert.equal(s.record.name, 'GET /cart');
  assert.equal(s.record.spanKind, 2);
  assert.equal(s.record.durationMs, 750);
  assert.equal(s.record.attributes['http.response.status_code'], 200);
  assert.equal(s.record.resource['service.name'], 'shop');
  assert.deepEqual({ name: s.record.scope.name, version: s.record.scope.version }, { name: 'checkout', version: '1.2.3' });
  const l = rows.find((r) => r.kind === 'log')!;
  assert.ok(l, 'the log record is stored');
  assert.equal(l.signal, 'logs');
  assert.equal(l.record.body, 'cart is slow');
  assert.equal(l.record.severityNumber, SeverityNumber.WARN);
  assert.equal(l.record.attributes.cart, 7);
  assert.equal(rows.length, 2);

  const metrics = await (await fetch(`${c.adminUrl}/metrics`)).text();
  assert.match(metrics, /otelcol_receiver_accepted_spans\{receiver="otlp"\} 1\b/);
  assert.match(metrics, /otelcol_receiver_accepted_log_records\{receiver="otlp"\} 1\b/);
});

test('raw gRPC calls: malformed data INVALID_ARGUMENT, wrong or missing token UNAUTHENTICATED, partial_success, no pipeline UNIMPLEMENTED', async (t) => {
  const c = await startWithGrpc(t, {
    // Decoding on a worker thread, so errors and partial results are known to cross it.
    config: { receivers: { otlp: { protocols: { http: { decode_workers: 1 }, grpc: { endpoint: '127.0.0.1:0', auth: { bearer_token: TOKEN } } } } } },
  });
  const auth = { authorization: `Bearer ${TOKEN}` };

  const malformed = await grpcError(c.grpcAddress, TRACES, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), auth);
  assert.equal(malformed.code, grpc.status.INVALID_ARGUMENT);
  assert.match(malformed.details, /malformed protobuf traces request/);

  const wrongToken = await grpcError(c.grpcAddress, TRACES, spanRequest('5b8efff798038103d269b633813fc60c'), { authorization: 'Bearer nope' });
  assert.equal(wrongToken.code, grpc.status.UNAUTHENTICATED);
  const noToken = await grpcError(c.grpcAddress, TRACES, spanRequest('5b8efff798038103d269b633813fc60c'), {});
  assert.equal(noToken.code, grpc.status.UNAUTHENTICATED);

  const noPipeline = await grpcError(c.grpcAddress, METRICS, Buffer.alloc(0), auth);
  assert.equal(noPipeline.code, grpc.status.UNIMPLEMENTED);
  assert.match(noPipeline.details, /no metrics pipeline/);
  assert.equal(readStore(c.dbPath).length, 0, 'nothing refused was stored');

  // One good span and one whose trace id is all zeros: the good one is stored, the other reported.
  const reply = await grpcCall(c.grpcAddress, TRACES, spanRequest('5b8efff798038103d269b633813fc60c', '00000000000000000000000000000000'), auth);
  const partial = ExportTraceServiceResponse.decode(reply).partialSuccess!;
  assert.equal(Number(partial.rejectedSpans), 1);
  assert.match(partial.errorMessage ?? '', /traceId/);
  const rows = readStore(c.dbPath);
  assert.deepEqual(rows.map((r) => r.record.name), ['raw 0']);
});

test('a store that cannot commit answers UNAVAILABLE with RetryInfo; nothing is acknowledged, and the retry is stored', async (t) => {
  const c = await startWithGrpc(t, {
    config: { receivers: { otlp: { protocols: { grpc: { endpoint: '127.0.0.1:0', retry_after: '3s' } } } } },
  });
  // Another process holds the write lock past the store's busy timeout.
  const locker = new Database(c.dbPath);
  t.after(() => locker.close());
  locker.exec('BEGIN IMMEDIATE');
  const failed = await grpcError(c.grpcAddress, TRACES, spanRequest('5b8efff798038103d269b633813fc60c'), {});
  assert.equal(failed.code, grpc.status.UNAVAILABLE);
  assert.match(failed.details, /storage could not commit/);
  assert.equal(retryDelayMs(failed), 3000);
  const status = google.rpc.Status.decode(failed.metadata.get('grpc-status-details-bin')[0] as Buffer);
  assert.equal(status.code, grpc.status.UNAVAILABLE);
  locker.exec('ROLLBACK');

  await grpcCall(c.grpcAddress, TRACES, spanRequest('5b8efff798038103d269b633813fc60c'), {});
  assert.deepEqual(readStore(c.dbPath).map((r) => r.record.name), ['raw 0']);
});

test('gRPC messages past the size limit get RESOURCE_EXHAUSTED, compressed or not; gzip messages within it are stored', async (t) => {
  const c = await startWithGrpc(t, {
    config: { receivers: { otlp: { protocols: { http: { max_request_body_size: '64KiB' }, grpc: { endpoint: '127.0.0.1:0' } } } } },
  });
  const big = (name: string) =>
    Buffer.from(
      ExportTraceServiceRequest.encode({
        resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name, startTimeUnixNano: 1, endTimeUnixNano: 2 }] }] }],
      }).finish(),
    );
  const gzip = { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip };

  const plain = await grpcError(c.grpcAddress, TRACES, big('x'.repeat(70 * 1024)), {});
  assert.equal(plain.code, grpc.status.RESOURCE_EXHAUSTED, 'the HTTP body limit applies to gRPC messages');
  // 200 KiB of one letter gzips to a few hundred bytes: the limit holds after decompression.
  const bomb = await grpcError(c.grpcAddress, TRACES, big('x'.repeat(200 * 1024)), {}, gzip);
  assert.equal(bomb.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(bomb.details, /decompresses to a size larger than/);
  assert.equal(readStore(c.dbPath).length, 0);

  await grpcCall(c.grpcAddress, TRACES, big('y'.repeat(30 * 1024)), {}, undefined, gzip);
  assert.equal(readStore(c.dbPath)[0]!.record.name.length, 30 * 1024);
});
