// Transport only moves bytes: gzip, POST to <endpoint>/v1/<signal>, and classify the answer
// once: success, permanent (the data itself was refused), unauthorized (the credentials were;
// the data is fine and must be kept), or retryable (with the server's Retry-After when given).
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { rejectedCount } from './encode.js';

const gzip = promisify(gzipCb);

export type Signal = 'traces' | 'logs';

export type SendOutcome =
  | { kind: 'success'; rejected: number; message: string }
  | { kind: 'permanent'; status: number; message: string }
  | { kind: 'unauthorized'; status: 401 | 403; message: string }
  | { kind: 'retryable'; status: number | undefined; message: string; retryAfterMs: number | undefined };

export interface TransportOptions {
  endpoint: string;
  token?: string | undefined;
  timeoutMs: number;
}

/** Retry-After as seconds or an HTTP date, in milliseconds from now. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class OtlpHttpTransport {
  private readonly base: string;
  constructor(private readonly options: TransportOptions) {
    this.base = options.endpoint.replace(/\/+$/, '');
  }

  async send(signal: Signal, payload: Uint8Array, abort?: AbortSignal): Promise<SendOutcome> {
    const headers: Record<string, string> = { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const signals = [AbortSignal.timeout(this.options.timeoutMs), ...(abort ? [abort] : [])];
    let response: Response;
    let body: Uint8Array;
    try {
      response = await fetch(`${this.base}/v1/${signal}`, { method: 'POST', headers, body: await gzip(payload), signal: AbortSignal.any(signals) });
      body = new Uint8Array(await response.arrayBuffer());
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return { kind: 'retryable', status: undefined, message: cause ?? (err as Error).message, retryAfterMs: undefined };
    }
    const status = response.status;
    if (status >= 200 && status < 300) return { kind: 'success', ...rejectedCount(signal, body) };
    const message = `HTTP ${status}: ${Buffer.from(body.subarray(0, 300)).toString('utf8').replace(/[^\x20-\x7e]+/g, ' ').trim()}`;
    // A wrong or missing token says nothing about the data: keep it until the token is fixed.
    if (status === 401 || status === 403) return { kind: 'unauthorized', status, message };
    if (status === 408 || status === 429 || status >= 500) {
      return { kind: 'retryable', status, message, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) };
    }
    return { kind: 'permanent', status, message };
  }
}
