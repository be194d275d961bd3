// Realistic spans for benchmarks: a PHP request span with HTTP attributes and DB client spans
// with database attributes, each with one event, 100 to a batch.
import { randomBytes } from 'node:crypto';
import Long from 'long';
import { opentelemetry } from '../proto/generated/otlp.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;

const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
const int = (key: string, value: number) => ({ key, value: { intValue: value } });

export function spanBatch(size = 100): Uint8Array {
  const traceId = randomBytes(16);
  const root = randomBytes(8);
  const start = BigInt(Date.now()) * 1_000_000n;
  const spans = Array.from({ length: size }, (_, i) => {
    const isRoot = i === 0;
    const s = start + BigInt(i) * 1_000_000n;
    return {
      traceId,
      spanId: isRoot ? root : randomBytes(8),
      parentSpanId: isRoot ? undefined : root,
      name: isRoot ? 'GET /checkout' : 'SELECT orders',
      kind: isRoot ? 2 : 3,
      startTimeUnixNano: Long.fromString(s.toString(), true),
      endTimeUnixNano: Long.fromString((s + 4_500_000n).toString(), true),
      attributes: isRoot
        ? [str('http.request.method', 'GET'), str('url.full', 'https://shop.example/checkout?step=2'), int('http.response.status_code', 200), str('bitville.correlation_id', traceId.toString('hex'))]
        : [
            str('db.system.name', 'postgresql'),
            str('db.namespace', 'shop'),
            str('db.query.text', 'SELECT id, total FROM orders WHERE customer_id = $1 AND status = $2'),
            str('db.operation.name', 'SELECT'),
            str('server.address', '10.0.0.5'),
            int('server.port', 5432),
            str('bitville.correlation_id', traceId.toString('hex')),
          ],
      events: [{ timeUnixNano: Long.fromString((s + 1_000_000n).toString(), true), name: isRoot ? 'request.start' : 'query.sent', attributes: [int('attempt', 1)] }],
      status: { code: 0 },
    };
  });
  return ExportTraceServiceRequest.encode({
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'shop'), str('host.name', 'web-1'), str('bitville.source', 'php_agent')] },
        scopeSpans: [{ scope: { name: 'bitville', version: '0.1.0' }, spans }],
      },
    ],
  }).finish();
}
