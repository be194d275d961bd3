// Serializes GELF batches on a thread of their own, so the collector's main thread (decode,
// store, correlate) and the serializer use both cores. Used for TCP/TLS, whose wire form is
// the JSON text itself: the thread hands back each batch as its wire bytes, every message
// null-terminated, in one buffer that is moved (not copied) to the main thread and written with
// one write. The records cross as their stored JSON text (a string copies cheaply; a structured
// clone of the records would cost what serializing does) and are parsed here, so a batch read
// from the store is never parsed on the main thread.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { StoredText } from '../../collector/core/api.js';
import { encodeFrame } from './batch-encoder.js';
import type { SerializerOptions } from './serializer.js';

const YOUNG_GENERATION_MB = 32;

export interface ThreadEncoded {
  /** The messages as UTF-8, each followed by TCP's frame delimiter (a null byte); empty when none. */
  frame: Uint8Array;
  count: number;
  bytes: number;
  rejected: { id: number; reason: string }[];
}

interface Request {
  seq: number;
  ids: number[];
  receivedAtMs: number[];
  kinds: StoredText['kind'][];
  /** Each record's stored text (no id, no receivedAtMs). */
  texts: string[];
}
type Reply = ({ seq: number } & ThreadEncoded) | { seq: number; error: string };

interface Setup {
  gelfEncoder: { options: SerializerOptions; maxMessageBytes: number };
}

export class EncoderThread {
  #worker: Worker | undefined;
  #seq = 0;
  readonly #waiting = new Map<number, { resolve: (r: ThreadEncoded) => void; reject: (err: Error) => void }>();

  constructor(private readonly setup: Setup['gelfEncoder']) {}

  /** Encodes a batch on the thread; batches come back in the order they were asked for. */
  encode(batch: readonly StoredText[]): Promise<ThreadEncoded> {
    const worker = this.#started();
    const seq = ++this.#seq;
    // Arrays of plain values: a structured clone of one object per record costs several times more.
    const request: Request = {
      seq,
      ids: batch.map((t) => t.id),
      receivedAtMs: batch.map((t) => t.receivedAtMs),
      kinds: batch.map((t) => t.kind),
      texts: batch.map((t) => t.json),
    };
    return new Promise<ThreadEncoded>((resolve, reject) => {
      this.#waiting.set(seq, { resolve, reject });
      if (this.#waiting.size === 1) worker.ref(); // a batch being encoded keeps the process up
      worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }

  /** The running thread, or a new one (at first use, or after the last one failed). */
  #started(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { gelfEncoder: this.setup } satisfies Setup,
      // Everything the thread allocates dies with its batch, so it all stays in the young
      // generation; 32 MiB makes its collections rare (measured against 8 MiB at steady 10k
      // spans/s: about 4 points of a core less, about 10 MiB more RSS). The old generation stays
      // unbounded: a batch may be large.
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    worker.on('message', (reply: Reply) => {
      const waiting = this.#waiting.get(reply.seq);
      this.#waiting.delete(reply.seq);
      if (this.#waiting.size === 0) worker.unref();
      if ('error' in reply) waiting?.reject(new Error(reply.error));
      else waiting?.resolve(reply);
    });
    const failed = (err: Error) => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const { reject } of this.#waiting.values()) reject(err);
      this.#waiting.clear();
    };
    worker.on('error', (err) => failed(new Error(`GELF encoder thread failed: ${err.message}`)));
    worker.on('exit', (code) => failed(new Error(`GELF encoder thread exited (code ${code})`)));
    worker.unref();
    this.#worker = worker;
    return worker;
  }
}

function serve(setup: Setup['gelfEncoder'], port: NonNullable<typeof parentPort>): void {
  port.on('message', ({ seq, ids, receivedAtMs, kinds, texts }: Request) => {
    try {
      const batch = texts.map((json, i): StoredText => ({ id: ids[i]!, receivedAtMs: receivedAtMs[i]!, kind: kinds[i]!, json }));
      const { frame, count, bytes, rejected } = encodeFrame(batch, setup.options, setup.maxMessageBytes);
      const reply: Reply = { seq, frame, count, bytes, rejected };
      // The frame's ArrayBuffer is its own (not Buffer's shared pool), so it moves, uncopied.
      port.postMessage(reply, [frame.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ seq, error: (err as Error).message } satisfies Reply);
    }
  });
}

if (!isMainThread && parentPort && (workerData as Partial<Setup> | undefined)?.gelfEncoder) {
  serve((workerData as Setup).gelfEncoder, parentPort);
}
