// Realistic spans for benchmarks: a PHP request span with HTTP attributes and DB client spans
// with database attributes, each with one event, 100 to a batch.
import { randomBytes } from 'node:crypto';
import Long from 'long';
import { opentelemetry } from '../proto/generated/otlp.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;

const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
const int = (key: string, value: number) => ({ key, value: { intValue: value } });

export function spanBatch(size = 100, traceId = randomBytes(16), spanIds = Array.from({ length: size }, () => randomBytes(8)), start = BigInt(Date.now()) * 1_000_000n): Uint8Array {
  const root = spanIds[0]!;
  const spans = Array.from({ length: size }, (_, i) => {
    const isRoot = i === 0;
    const s = start + BigInt(i) * 1_000_000n;
    return {
      traceId,
      spanId: spanIds[i]!,
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

/**
 * Batches as real senders send them: each with a fresh trace id, fresh span ids and times later
 * than the previous batch's (a fixed set of batches sent over and over repeats timestamps, so
 * every SQLite index insert lands mid-index, and repeats ids). One batch is encoded once as a
 * template; next() copies it and rewrites its fixed-width fields (ids, fixed64 times) in place,
 * so a sender spends microseconds, not an encode, per request.
 */
export class BatchSource {
  readonly #template: Buffer;
  readonly #traceAt: number[] = [];
  readonly #traceHexAt: number[] = [];
  readonly #spanAt: number[] = [];
  readonly #timeAt: number[] = [];
  readonly #start: bigint;
  #lastStart = 0n;
  #count = 0;

  constructor(readonly size = 100) {
    const traceId = randomBytes(16);
    const spanIds = Array.from({ length: size }, () => randomBytes(8));
    this.#start = BigInt(Date.now()) * 1_000_000n;
    this.#template = Buffer.from(spanBatch(size, traceId, spanIds, this.#start));
    const all = (needle: Buffer, into: number[]) => {
      for (let i = this.#template.indexOf(needle); i !== -1; i = this.#template.indexOf(needle, i + 1)) into.push(i);
    };
    all(traceId, this.#traceAt);
    all(Buffer.from(traceId.toString('hex')), this.#traceHexAt);
    for (const id of spanIds) all(id, this.#spanAt);
    // Every time in the batch is the start plus a whole number of 0.5 ms steps below 1 s.
    const times = new Set<bigint>();
    for (let k = 0n; k < 2000n; k++) times.add(this.#start + k * 500_000n);
    for (let i = 0; i + 8 <= this.#template.length; i++) if (times.has(this.#template.readBigUInt64LE(i))) this.#timeAt.push(i);
    if (this.#traceAt.length === 0 || this.#traceHexAt.length === 0 || this.#spanAt.length < size || this.#timeAt.length < 3 * size) {
      throw new Error('BatchSource: fields not found in the encoded template');
    }
  }

  next(): Buffer {
    const batch = Buffer.from(this.#template);
    const traceId = randomBytes(16);
    for (const at of this.#traceAt) traceId.copy(batch, at);
    const hex = traceId.toString('hex');
    for (const at of this.#traceHexAt) batch.write(hex, at, 'latin1');
    // Span ids: the template's, with a per-batch counter in their first four bytes.
    const n = ++this.#count;
    for (const at of this.#spanAt) batch.writeUInt32BE(n, at);
    // Wall-clock start, strictly after the previous batch's.
    const now = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
    const start = now > this.#lastStart ? now : this.#lastStart + 1000n;
    this.#lastStart = start;
    const shift = start - this.#start;
    for (const at of this.#timeAt) batch.writeBigUInt64LE(batch.readBigUInt64LE(at) + shift, at);
    return batch;
  }
}
