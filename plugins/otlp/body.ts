// Reads a request body with one limit on the bytes received and the same limit on the bytes
// after decompression, streaming: an inflating body is cut off as soon as it passes the
// limit, so a gzip bomb never gets held in memory. The bytes held by all bodies being read at
// once are bounded too (a ByteBudget), so many uploads in progress cannot exhaust memory.
import type { IncomingMessage } from 'node:http';
import { createGunzip, createInflate, type Gunzip, type Inflate } from 'node:zlib';

export class BodyError extends Error {
  constructor(
    readonly status: 400 | 413 | 415 | 503,
    message: string,
  ) {
    super(message);
  }
}

/** Bytes held by bodies being received, across all requests. */
export class ByteBudget {
  #used = 0;
  constructor(readonly limit: number) {}
  get used(): number {
    return this.#used;
  }
  take(n: number): boolean {
    if (this.#used + n > this.limit) return false;
    this.#used += n;
    return true;
  }
  give(n: number): void {
    this.#used -= n;
  }
}

export function readBody(req: IncomingMessage, limit: number, budget?: ByteBudget): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  let inflater: Gunzip | Inflate | undefined;
  if (encoding === 'gzip' || encoding === 'x-gzip') inflater = createGunzip();
  else if (encoding === 'deflate') inflater = createInflate();
  else if (encoding !== 'identity' && encoding !== '') {
    return Promise.reject(new BodyError(415, `Content-Encoding "${encoding}" is not supported (use gzip, deflate or none)`));
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) {
    return Promise.reject(new BodyError(413, `body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  }

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let decoded = 0;
    let settled = false;
    const fail = (err: BodyError) => {
      if (settled) return;
      settled = true;
      budget?.give(decoded);
      req.unpipe();
      inflater?.destroy();
      reject(err);
    };
    const keep = (chunk: Buffer) => {
      if (settled) return;
      if (decoded + chunk.length > limit) return fail(new BodyError(413, `decompressed body exceeds the limit of ${limit} bytes`));
      if (budget && !budget.take(chunk.length)) {
        return fail(new BodyError(503, `request bodies being received hold ${budget.used} bytes, the most this receiver buffers at once; retry later`));
      }
      decoded += chunk.length;
      chunks.push(chunk);
    };
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) fail(new BodyError(413, `body exceeds the limit of ${limit} bytes`));
    });
    req.on('error', () => fail(new BodyError(400, 'the request body was cut off')));
    // A connection that closes mid-body (a read timeout, a client gone) must release its bytes.
    req.on('close', () => {
      if (!req.complete) fail(new BodyError(400, 'the request body was cut off'));
    });
    const source = inflater ? req.pipe(inflater) : req;
    source.on('data', keep);
    source.on('error', (err: Error) => fail(new BodyError(400, `the body is not valid ${encoding}: ${err.message}`)));
    source.on('end', () => {
      if (settled) return;
      settled = true;
      // The body is complete: from here the admission queue bounds it (see admission.ts).
      budget?.give(decoded);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, decoded));
    });
  });
}
