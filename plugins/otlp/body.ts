// Reads a request body with one limit on the bytes received and the same limit on the bytes
// after decompression, streaming: an inflating body is cut off as soon as it passes the
// limit, so a gzip bomb never gets held in memory.
import type { IncomingMessage } from 'node:http';
import { createGunzip, createInflate, type Gunzip, type Inflate } from 'node:zlib';

export class BodyError extends Error {
  constructor(
    readonly status: 413 | 415 | 400,
    message: string,
  ) {
    super(message);
  }
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
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
      req.unpipe();
      inflater?.destroy();
      reject(err);
    };
    const keep = (chunk: Buffer) => {
      decoded += chunk.length;
      if (decoded > limit) return fail(new BodyError(413, `decompressed body exceeds the limit of ${limit} bytes`));
      chunks.push(chunk);
    };
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) fail(new BodyError(413, `body exceeds the limit of ${limit} bytes`));
    });
    req.on('error', () => fail(new BodyError(400, 'the request body was cut off')));
    const source = inflater ? req.pipe(inflater) : req;
    source.on('data', keep);
    source.on('error', (err: Error) => fail(new BodyError(400, `the body is not valid ${encoding}: ${err.message}`)));
    source.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, decoded));
    });
  });
}
