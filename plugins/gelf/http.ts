// GELF over HTTP(S): `POST <path>` on keep-alive connections. By default one message per
// request (Graylog keeps only the first document of a request unless bulk receiving is
// enabled on the input); with `bulk`, as many newline-separated messages per request as fit in
// the body limit (Graylog 6+ with bulk receiving on). 2xx acknowledges every message of the
// request, anything else fails the batch. Graylog answers 202 before it parses the body, so
// the exporter validates every message before it gets here.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { UnconfirmedError, withTimeout, type Encoded, type Transport } from './transport.js';

const gzipAsync = promisify(gzip);

export interface HttpOptions {
  host: string;
  port: number;
  path: string;
  /** TLS client options for https; undefined for http. */
  tls?: ConnectionOptions;
  gzip: boolean;
  /** Several newline-separated messages per request. */
  bulk: boolean;
  /** Largest request body before compression (Graylog's max_chunk_size); also the largest message. */
  maxBodyBytes: number;
  headers: Record<string, string>;
  maxInFlight: number;
  connectTimeoutMs: number;
  /** Time allowed for one request, answer included. */
  requestTimeoutMs: number;
  keepaliveMs: number;
}

export class HttpStatusError extends Error {
  constructor(readonly status: number) {
    super(`GELF HTTP endpoint answered ${status}`);
  }
}

const NEWLINE = Buffer.from('\n');

export class HttpTransport implements Transport {
  readonly maxMessageBytes: number;
  private readonly agent: HttpAgent;

  constructor(private readonly options: HttpOptions) {
    this.maxMessageBytes = options.maxBodyBytes;
    const agentOptions = {
      keepAlive: true,
      keepAliveMsecs: options.keepaliveMs || 1000,
      maxSockets: options.maxInFlight,
      timeout: options.requestTimeoutMs,
    };
    this.agent = options.tls ? new HttpsAgent({ ...agentOptions, ...options.tls }) : new HttpAgent(agentOptions);
  }

  encode(json: string): Encoded {
    return Buffer.from(json);
  }

  /** Up to maxInFlight requests at once; the first failure stops new ones and is thrown. */
  async send(messages: Encoded[], signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const bodies = this.options.bulk ? this.pack(messages as Buffer[]) : (messages as Buffer[]);
    let next = 0;
    let acknowledged = 0;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && next < bodies.length) {
        const body = bodies[next++]!;
        try {
          await this.post(this.options.gzip ? await gzipAsync(body) : body);
          acknowledged++;
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.maxInFlight, bodies.length) }, worker));
    if (failure !== undefined && acknowledged > 0) {
      throw new UnconfirmedError(`${(failure as Error).message} (${acknowledged} of ${bodies.length} requests of the batch were acknowledged)`);
    }
    if (failure !== undefined) throw failure;
  }

  /** Bulk bodies: messages in order, newline-separated, each body within maxBodyBytes. */
  private pack(messages: Buffer[]): Buffer[] {
    const bodies: Buffer[] = [];
    let parts: Buffer[] = [];
    let size = 0;
    for (const m of messages) {
      if (parts.length > 0 && size + 1 + m.length > this.options.maxBodyBytes) {
        bodies.push(Buffer.concat(parts));
        parts = [];
        size = 0;
      }
      if (parts.length > 0) {
        parts.push(NEWLINE);
        size++;
      }
      parts.push(m);
      size += m.length;
    }
    if (parts.length > 0) bodies.push(Buffer.concat(parts));
    return bodies;
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  private post(body: Buffer): Promise<void> {
    const { host, port, path, tls, headers, connectTimeoutMs, requestTimeoutMs } = this.options;
    const request = (tls ? httpsRequest : httpRequest)({
      host,
      port,
      path,
      method: 'POST',
      agent: this.agent,
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': body.length,
        ...(this.options.gzip ? { 'content-encoding': 'gzip' } : {}),
      },
    });
    const answered = new Promise<void>((resolve, reject) => {
      request.once('error', reject);
      request.once('response', (response: IncomingMessage) => {
        response.resume(); // Graylog's body is empty; drain it so the connection is reused.
        response.once('end', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new HttpStatusError(status));
        });
        response.once('error', reject);
      });
      request.once('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => request.destroy(new Error(`GELF HTTP connect to ${host}:${port} timed out after ${connectTimeoutMs} ms`)),
          connectTimeoutMs,
        );
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
    });
    request.end(body);
    return withTimeout(answered, requestTimeoutMs, `GELF HTTP request got no answer within ${requestTimeoutMs} ms`, () => request.destroy());
  }
}
