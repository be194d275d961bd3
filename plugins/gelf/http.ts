// GELF over HTTP(S): `POST <path>` with one message per request (Graylog keeps only the
// first document of a request unless bulk receiving is enabled), on keep-alive connections.
// 2xx is success, anything else a failure. Graylog answers 202 before it parses the body,
// so the exporter validates every message before it gets here.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { withTimeout, type Encoded, type Transport } from './transport.js';

const gzipAsync = promisify(gzip);

export interface HttpOptions {
  host: string;
  port: number;
  path: string;
  /** TLS client options for https; undefined for http. */
  tls?: ConnectionOptions;
  gzip: boolean;
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

export class HttpTransport implements Transport {
  private readonly agent: HttpAgent;

  constructor(private readonly options: HttpOptions) {
    const agentOptions = {
      keepAlive: true,
      keepAliveMsecs: options.keepaliveMs || 1000,
      maxSockets: options.maxInFlight,
      timeout: options.requestTimeoutMs,
    };
    this.agent = options.tls ? new HttpsAgent({ ...agentOptions, ...options.tls }) : new HttpAgent(agentOptions);
  }

  async encode(json: string): Promise<Buffer> {
    const body = Buffer.from(json);
    return this.options.gzip ? gzipAsync(body) : body;
  }

  /** Up to maxInFlight requests at once; the first failure stops new ones and is thrown. */
  async send(messages: Encoded[]): Promise<void> {
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && next < messages.length) {
        const body = messages[next++] as Buffer;
        try {
          await this.post(body);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.maxInFlight, messages.length) }, worker));
    if (failure !== undefined) throw failure;
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
