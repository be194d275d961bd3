// Decoding off the main thread. The main thread of the collector commits to storage and runs
// the HTTP server; protobuf/JSON decoding and flattening (about half the CPU per span) runs on
// worker threads, so on a machine with two or more cores ingest goes past one core's worth.
// The body is transferred (not copied) to the worker; the records come back by structured clone.
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { ConsumerError } from '../../collector/core/api.js';
import type { FlatRecord, Signal } from '../../collector/core/api.js';
import { opentelemetry } from '../../proto/generated/otlp.js';
import { flattenLogs, flattenTraces, MAX_ATTRIBUTE_DEPTH, type Flattened } from './decode.js';
import { flattenMetrics } from './metrics-decode.js';

type ErrorCode = ConsumerError['code'];

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;
const { ExportLogsServiceRequest } = opentelemetry.proto.collector.logs.v1;
const { ExportMetricsServiceRequest } = opentelemetry.proto.collector.metrics.v1;
const REQUESTS = { traces: ExportTraceServiceRequest, logs: ExportLogsServiceRequest, metrics: ExportMetricsServiceRequest };

/**
 * Decodes one request body into flat records. Never throws anything but a ConsumerError:
 * BV_BAD_DATA when the body is malformed, BV_DECODER_FAILED when the decoder itself failed
 * on it (a bug; the sender still gets a 400, since the same bytes would fail the same way).
 */
export function decodeBody(signal: Signal, body: Uint8Array, protobuf: boolean): Flattened<FlatRecord> {
  let message: object;
  try {
    if (protobuf) {
      message = REQUESTS[signal].decode(body);
    } else {
      message = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'));
      if (typeof message !== 'object' || message === null || Array.isArray(message)) throw new Error('the body is not a JSON object');
    }
  } catch (err) {
    // protobufjs decodes nested messages recursively and stops past 100 levels.
    const reason = isStackOverflow(err) ? `nested too deep (attribute values may nest at most ${MAX_ATTRIBUTE_DEPTH} levels)` : (err as Error).message;
    throw new ConsumerError('BV_BAD_DATA', `malformed ${protobuf ? 'protobuf' : 'JSON'} ${signal} request: ${reason}`);
  }
  try {
    return signal === 'traces' ? flattenTraces(message) : signal === 'logs' ? flattenLogs(message) : flattenMetrics(message);
  } catch (err) {
    if (err instanceof ConsumerError) throw err;
    const reason = isStackOverflow(err) ? `nested too deep (attribute values may nest at most ${MAX_ATTRIBUTE_DEPTH} levels)` : String((err as Error)?.message ?? err);
    throw new ConsumerError('BV_DECODER_FAILED', `the ${signal} request could not be decoded: ${reason}`, { cause: err });
  }
}

/** Out of stack, or protobufjs's own guard against that (100 nested messages, as protoc). */
function isStackOverflow(err: unknown): boolean {
  return (err instanceof RangeError && /call stack/i.test(err.message)) || (err instanceof Error && err.message === 'max depth exceeded');
}

interface Job {
  id: number;
  signal: Signal;
  body: Uint8Array;
  protobuf: boolean;
}
type Reply = { id: number; result: Flattened<FlatRecord> } | { id: number; error: { message: string; code: ErrorCode; stack?: string | undefined } };

export class DecodePool {
  readonly #workers: { worker: Worker; busy: number; held: Set<number> }[] = [];
  readonly #waiting = new Map<number, { resolve: (r: Flattened<FlatRecord>) => void; reject: (e: Error) => void }>();
  #next = 0;

  /** size 0 decodes on the calling thread. */
  #closed = false;

  /** size 0 decodes on the calling thread. */
  constructor(size: number) {
    for (let i = 0; i < size; i++) this.#spawn();
  }

  #spawn(): void {
    const worker = new Worker(new URL(import.meta.url));
    const entry = { worker, busy: 0, held: new Set<number>() };
    worker.on('message', (reply: Reply) => {
      entry.busy--;
      entry.held.delete(reply.id);
      const waiter = this.#waiting.get(reply.id)!;
      this.#waiting.delete(reply.id);
      if ('result' in reply) waiter.resolve(reply.result);
      else {
        const err = new ConsumerError(reply.error.code, reply.error.message);
        if (reply.error.stack) err.stack = reply.error.stack;
        waiter.reject(err);
      }
    });
    worker.on('error', (err) => {
      // A crashed worker fails the requests it held (as decoder failures: 400, logged) and is
      // replaced, so the pool keeps its size.
      for (const id of entry.held) {
        this.#waiting.get(id)?.reject(new ConsumerError('BV_DECODER_FAILED', `the decoder thread failed: ${err.message}`, { cause: err }));
        this.#waiting.delete(id);
      }
      const at = this.#workers.indexOf(entry);
      if (at >= 0) this.#workers.splice(at, 1);
      if (!this.#closed) this.#spawn();
    });
    worker.unref();
    this.#workers.push(entry);
  }

  decode(signal: Signal, body: Buffer, protobuf: boolean): Promise<Flattened<FlatRecord>> {
    if (this.#workers.length === 0) return Promise.resolve().then(() => decodeBody(signal, body, protobuf));
    const entry = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    entry.busy++;
    const id = this.#next++;
    entry.held.add(id);
    // Transfer the bytes when the body owns its whole buffer; else copy them into one of their
    // own (never transfer a slice: it would detach memory others share, like Buffer's pool).
    const owned = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : new Uint8Array(body);
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      entry.worker.postMessage({ id, signal, body: owned, protobuf } satisfies Job, [owned.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
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
      // decodeBody throws ConsumerErrors only; anything else is still a decoder failure.
      const code: ErrorCode = err instanceof ConsumerError ? err.code : 'BV_DECODER_FAILED';
      const cause = err instanceof ConsumerError && err.code === 'BV_DECODER_FAILED' ? (err.cause as Error | undefined) : undefined;
      reply = { id: job.id, error: { message: String((err as Error)?.message ?? err), code, stack: (cause ?? (err as Error))?.stack } };
    }
    port.postMessage(reply);
  });
}
