// Decoding off the main thread. The main thread of the collector commits to storage and runs
// the HTTP server; protobuf/JSON decoding and flattening (about half the CPU per span) runs on
// worker threads, so on a machine with two or more cores ingest goes past one core's worth.
// The body is transferred (not copied) to the worker; the records come back by structured clone.
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { ConsumerError } from '../../collector/core/api.js';
import type { Signal } from '../../collector/core/api.js';
import { opentelemetry } from '../../proto/generated/otlp.js';
import { flattenLogs, flattenTraces, type Flattened } from './decode.js';
import { flattenMetrics } from './metrics-decode.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;
const { ExportLogsServiceRequest } = opentelemetry.proto.collector.logs.v1;
const { ExportMetricsServiceRequest } = opentelemetry.proto.collector.metrics.v1;
const REQUESTS = { traces: ExportTraceServiceRequest, logs: ExportLogsServiceRequest, metrics: ExportMetricsServiceRequest };

/** Decodes one request body into flat records; throws ConsumerError (BV_BAD_DATA) when malformed. */
export function decodeBody(signal: Signal, body: Uint8Array, protobuf: boolean): Flattened<any> {
  let message: object;
  try {
    if (protobuf) {
      message = REQUESTS[signal].decode(body);
    } else {
      message = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'));
      if (typeof message !== 'object' || message === null || Array.isArray(message)) throw new Error('the body is not a JSON object');
    }
  } catch (err) {
    throw new ConsumerError('BV_BAD_DATA', `malformed ${protobuf ? 'protobuf' : 'JSON'} ${signal} request: ${(err as Error).message}`);
  }
  return signal === 'traces' ? flattenTraces(message) : signal === 'logs' ? flattenLogs(message) : flattenMetrics(message);
}

interface Job {
  id: number;
  signal: Signal;
  body: Uint8Array;
  protobuf: boolean;
}
type Reply = { id: number; result: Flattened<any> } | { id: number; error: { message: string; badData: boolean } };

export class DecodePool {
  readonly #workers: { worker: Worker; busy: number }[] = [];
  readonly #waiting = new Map<number, { resolve: (r: Flattened<any>) => void; reject: (e: Error) => void }>();
  #next = 0;

  /** size 0 decodes on the calling thread. */
  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL(import.meta.url));
      const entry = { worker, busy: 0 };
      worker.on('message', (reply: Reply) => {
        entry.busy--;
        const waiter = this.#waiting.get(reply.id)!;
        this.#waiting.delete(reply.id);
        if ('result' in reply) waiter.resolve(reply.result);
        else waiter.reject(reply.error.badData ? new ConsumerError('BV_BAD_DATA', reply.error.message) : new Error(reply.error.message));
      });
      worker.on('error', (err) => {
        // A crashed worker fails what it held; the pool keeps going with the others.
        for (const [id, w] of this.#waiting) w.reject(err), this.#waiting.delete(id);
      });
      worker.unref();
      this.#workers.push(entry);
    }
  }

  decode(signal: Signal, body: Buffer, protobuf: boolean): Promise<Flattened<any>> {
    if (this.#workers.length === 0) return Promise.resolve().then(() => decodeBody(signal, body, protobuf));
    const entry = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    entry.busy++;
    const id = this.#next++;
    // Transfer the bytes when the body owns its whole buffer; else copy them into one of their
    // own (never transfer a slice: it would detach memory others share, like Buffer's pool).
    const owned = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : new Uint8Array(body);
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      entry.worker.postMessage({ id, signal, body: owned, protobuf } satisfies Job, [owned.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
    this.#workers.length = 0;
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (job: Job) => {
    let reply: Reply;
    try {
      reply = { id: job.id, result: decodeBody(job.signal, job.body, job.protobuf) };
    } catch (err) {
      reply = { id: job.id, error: { message: (err as Error).message, badData: err instanceof ConsumerError } };
    }
    port.postMessage(reply);
  });
}
