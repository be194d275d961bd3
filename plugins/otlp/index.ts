// The `otlp` receiver: OTLP/HTTP (POST /v1/traces, /v1/logs, /v1/metrics), protobuf or JSON,
// gzip or deflate, with a body limit, optional bearer token and TLS, read timeouts, and bounds on
// the requests being processed (admission.ts) and on the bytes of bodies being received.
// Accepts the OpenTelemetry Collector's config shape (protocols.http.endpoint); protocols.grpc
// adds OTLP/gRPC (grpc.ts).
import express, { type Request, type Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { ConsumerError, defineReceiver, parseHostPort } from '../../collector/core/api.js';
import type { FlatRecord, ReceiverContext, Signal } from '../../collector/core/api.js';
import { signalCounters } from './counters.js';
import { google } from '../../proto/generated/otlp.js';
import { Admission } from './admission.js';
import { BodyError, ByteBudget, readBody } from './body.js';
import type { Flattened } from './decode.js';
import { DecodePool } from './decode-pool.js';
import { defaultProtocols, grpcConfigSchema, nullAsEmpty, OtlpGrpcReceiver, ReceiverGroup } from './grpc.js';
import { exportResponse, encodeExportResponse } from './grpc-responses.js';

export const factory = defineReceiver({
  kind: 'receiver',
  type: 'otlp',
  configSchema: (z, h) =>
    z.strictObject({
      protocols: z
        .preprocess(defaultProtocols, z.strictObject({
          http: z.preprocess(nullAsEmpty, z
            .strictObject({
              /** Address to listen on. */
              endpoint: h.hostPort().default('0.0.0.0:4318'),
              /** Largest body accepted, compressed and decompressed alike. */
              max_request_body_size: h.size().default(4 * 1024 * 1024),
              /** Requests decoded and committed at once (a body being received takes no slot). */
              max_concurrent_requests: z.number().int().positive().default(16),
              /** Requests with a complete body that wait for a slot; past it, 503 with Retry-After. Default: max_concurrent_requests. */
              max_queued_requests: z.number().int().min(0).optional(),
              /** Bytes of bodies being received at once, over all connections; past it, 503 with Retry-After. */
              max_receiving_bytes: h.size().default(64 * 1024 * 1024),
              /** Time allowed for a request's headers to arrive; past it, 408 and the connection is closed. */
              read_header_timeout: h.duration().default(10_000),
              /** Time allowed for a whole request (headers and body) to arrive; past it, 408 and the connection is closed. */
              read_timeout: h.duration().default(30_000),
              /** An idle keep-alive connection is closed after this long. */
              idle_timeout: h.duration().default(30_000),
              /** Retry-After sent with 503 answers. */
              retry_after: h.duration().default(1000),
              /** When set, requests must carry `Authorization: Bearer <token>`. */
              auth: z.strictObject({ bearer_token: z.string().min(1) }).optional(),
              /**
               * Threads that decode request bodies. 0 decodes on the main thread, which costs the
               * least CPU per span; 1 or 2 raise peak ingest on a machine with cores to spare.
               */
              decode_workers: z.number().int().min(0).max(16).default(0),
              /** Serve HTTPS with these PEM files. */
              tls: z.strictObject({ cert_file: z.string(), key_file: z.string() }).optional(),
            })
            .refine((http) => http.read_header_timeout <= http.read_timeout, {
              message: 'read_header_timeout must not be longer than read_timeout (the whole request includes its headers)',
              path: ['read_header_timeout'],
            })
            .optional()),
          grpc: grpcConfigSchema(z, h),
        }))
        .prefault({}),
    }),
  create: (config, ctx) => {
    const { http, grpc } = config.protocols;
    const parts = [];
    if (http) parts.push(new OtlpHttpReceiver(http, ctx));
    if (grpc) parts.push(new OtlpGrpcReceiver(grpc, http, ctx));
    return parts.length === 1 ? parts[0]! : new ReceiverGroup(parts);
  },
});

export default factory;

type HttpConfig = {
  endpoint: string;
  max_request_body_size: number;
  max_concurrent_requests: number;
  max_queued_requests?: number | undefined;
  max_receiving_bytes: number;
  read_header_timeout: number;
  read_timeout: number;
  idle_timeout: number;
  retry_after: number;
  decode_workers: number;
  auth?: { bearer_token: string } | undefined;
  tls?: { cert_file: string; key_file: string } | undefined;
};

// gRPC status codes, as google.rpc.Status carries them.
const GRPC = { INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/**
 * Where every failure gets its HTTP status, in one place. A 503 means only "the same request
 * will work later"; anything the same bytes would fail again gets a 4xx.
 */
function statusFor(err: unknown): { http: number; grpc: number; message: string; retry: boolean } {
  if (err instanceof BodyError) {
    if (err.status === 503) return { http: 503, grpc: GRPC.UNAVAILABLE, message: err.message, retry: true };
    const grpc = err.status === 413 ? GRPC.RESOURCE_EXHAUSTED : GRPC.INVALID_ARGUMENT;
    return { http: err.status, grpc, message: err.message, retry: false };
  }
  if (err instanceof ConsumerError) {
    if (err.code === 'BV_NO_PIPELINE') return { http: 404, grpc: GRPC.NOT_FOUND, message: err.message, retry: false };
    if (err.retryable) return { http: 503, grpc: GRPC.UNAVAILABLE, message: err.message, retry: true };
    return { http: 400, grpc: GRPC.INVALID_ARGUMENT, message: err.message, retry: false };
  }
  return { http: 500, grpc: GRPC.INTERNAL, message: 'internal error', retry: false };
}

class OtlpHttpReceiver {
  readonly #config: HttpConfig;
  readonly #ctx: ReceiverContext;
  readonly #server: Server;
  readonly #tokenDigest: Buffer | undefined;
  #pool: DecodePool | undefined;
  readonly #admission: Admission;
  #inFlight = 0;
  readonly #receiving: ByteBudget;
  #accepted: Record<Signal, { inc(n?: number): void }>;
  readonly #decoderFailures: { inc(): void };
  #refused: Record<Signal, { inc(n?: number): void }>;

  constructor(config: HttpConfig, ctx: ReceiverContext) {
    this.#config = config;
    this.#ctx = ctx;
    this.#tokenDigest = config.auth ? digest(config.auth.bearer_token) : undefined;
    this.#admission = new Admission(config.max_concurrent_requests, config.max_queued_requests ?? config.max_concurrent_requests);
    this.#receiving = new ByteBudget(config.max_receiving_bytes);
    const m = ctx.metrics;
    ({ accepted: this.#accepted, refused: this.#refused } = signalCounters(m));
    const requests = m.counter('bitville_receiver_requests_rejected', 'Requests answered with an error status.');
    m.gauge('bitville_receiver_in_flight_requests', 'Requests in progress: being received, waiting for a slot, or processed.', () => this.#inFlight);
    m.gauge('bitville_receiver_processing_requests', 'Requests being decoded and committed (bounded by max_concurrent_requests).', () => this.#admission.active);
    m.gauge('bitville_receiver_queued_requests', 'Requests with a complete body waiting for a slot.', () => this.#admission.queued);
    m.gauge('bitville_receiver_receiving_bytes', 'Bytes of request bodies being received.', () => this.#receiving.used);
    const timeouts = m.counter('bitville_receiver_request_timeouts', 'Connections closed because headers or body arrived too slowly (408).');
    this.#decoderFailures = m.counter('bitville_receiver_decoder_failures', 'Requests the decoder failed on unexpectedly (answered 400, logged).');

    const app = express();
    app.disable('x-powered-by');
    app.post('/v1/traces', (req, res) => this.#handle('traces', req, res, requests));
    app.post('/v1/logs', (req, res) => this.#handle('logs', req, res, requests));
    app.post('/v1/metrics', (req, res) => this.#handle('metrics', req, res, requests));
    app.use((req, res) => {
      res.status(404).json({ code: GRPC.NOT_FOUND, message: `no OTLP endpoint at ${req.method} ${req.path} (use POST /v1/traces, /v1/logs or /v1/metrics)` });
    });
    // Node checks these timeouts on a timer (every 30 s by default): check often enough that
    // a slow sender is cut off close to the configured time.
    const timing = {
      headersTimeout: config.read_header_timeout,
      requestTimeout: config.read_timeout,
      keepAliveTimeout: config.idle_timeout,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(config.read_header_timeout / 4))),
    };
    this.#server = config.tls
      ? createHttpsServer({ ...timing, cert: readFileSync(config.tls.cert_file), key: readFileSync(config.tls.key_file) }, app)
      : createHttpServer(timing, app);
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Node's own answers to unreadable requests, kept, plus a reason and a count for timeouts
      // (the 408 is BV_REQUEST_TIMEOUT in docs/errors.md).
      const response = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        timeouts.inc();
        this.#ctx.logger.warn({ remote: socket.remoteAddress }, 'OTLP request closed: headers or body arrived too slowly');
        const body = JSON.stringify({ code: GRPC.DEADLINE_EXCEEDED, message: `the request did not arrive within ${config.read_timeout} ms (headers within ${config.read_header_timeout} ms)` });
        if (socket.writable && !response?.headersSent) {
          socket.end(`HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        }
      } else if (err.code !== 'ECONNRESET' && socket.writable && !response?.headersSent) {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      }
      socket.destroySoon();
    });
  }

  async start(): Promise<void> {
    this.#pool = new DecodePool(this.#config.decode_workers);
    const { host, port } = parseHostPort(this.#config.endpoint);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    const scheme = this.#config.tls ? 'https' : 'http';
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#ctx.logger.info({ url: `${scheme}://${shown}:${address.port}`, port: address.port }, 'OTLP/HTTP receiver listening');
  }

  async shutdown(): Promise<void> {
    // Stop accepting; requests already in progress finish (and commit) before close resolves.
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    });
    await this.#pool?.close();
  }

  async #handle(signal: Signal, req: Request, res: Response, rejectedRequests: { inc(): void }): Promise<void> {
    this.#inFlight++;
    try {
      await this.#serve(signal, req, res, rejectedRequests);
    } finally {
      this.#inFlight--;
    }
  }

  async #serve(signal: Signal, req: Request, res: Response, rejectedRequests: { inc(): void }): Promise<void> {
    const protobuf = isProtobuf(req.headers['content-type']);
    const fail = (err: unknown) => {
      const s = statusFor(err);
      rejectedRequests.inc();
      if (s.http === 500) this.#ctx.logger.error({ err }, 'OTLP request failed');
      if (s.retry) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(this.#config.retry_after / 1000))));
      // A body left unread (too large, over the receiving budget) cannot be skipped: close.
      if (!req.complete) res.setHeader('Connection', 'close');
      sendStatus(res, s.http, protobuf, s.grpc, s.message);
    };

    if (this.#tokenDigest && !this.#authorized(req.headers.authorization)) {
      rejectedRequests.inc();
      res.setHeader('WWW-Authenticate', 'Bearer');
      return sendStatus(res, 401, protobuf, GRPC.UNAUTHENTICATED, 'missing or wrong bearer token');
    }
    if (!protobuf && !isJson(req.headers['content-type'])) {
      return fail(new BodyError(415, `Content-Type "${req.headers['content-type'] ?? ''}" is not supported (use application/x-protobuf or application/json)`));
    }
    if (!this.#ctx.signals.includes(signal)) {
      return fail(new ConsumerError('BV_NO_PIPELINE', `this collector has no ${signal} pipeline using this receiver`));
    }
    let body: Buffer;
    try {
      body = await readBody(req, this.#config.max_request_body_size, this.#receiving);
    } catch (err) {
      return fail(err);
    }
    const admitted = this.#admission.acquire();
    if (!admitted) {
      return fail(
        new ConsumerError('BV_OVERLOADED', `${this.#config.max_concurrent_requests} requests are being processed and ${this.#admission.queued} wait; retry later`),
      );
    }
    await admitted;
    try {
      const flat = await this.#pool!.decode(signal, body, protobuf);
      await this.#commit(signal, flat);
      this.#accepted[signal].inc(flat.records.length);
      if (flat.rejected) this.#refused[signal].inc(flat.rejected);
      sendSuccess(res, signal, protobuf, flat);
    } catch (err) {
      if (err instanceof ConsumerError && err.code === 'BV_DECODER_FAILED') {
        this.#decoderFailures.inc();
        this.#ctx.logger.error({ err, cause: err.cause, signal, protobuf, bytes: body.length }, 'OTLP decoder failed on a request (answered 400)');
      }
      fail(err);
    } finally {
      this.#admission.release();
    }
  }

  /**
   * Commits the records. The decoder refuses every value it knows the stores cannot hold; if
   * one still gets through (the store refuses it as data, not for want of space or a lock),
   * the records are committed one by one so that only the ones refused are rejected
   * (partial_success) and their neighbours are kept, instead of a 503 the sender would retry
   * forever. `flat` is updated to what was committed. Should the store fail for another reason
   * midway, the request is answered 503 and its retry may duplicate the records already
   * committed (at least once, as everywhere).
   */
  async #commit(signal: Signal, flat: Flattened<FlatRecord>): Promise<void> {
    try {
      await this.#ctx.consumer.consume(signal, flat.records);
      return;
    } catch (err) {
      if (!refusedAsData(err)) throw err;
      this.#ctx.logger.warn({ err: (err as ConsumerError).cause, signal }, 'the store refused a value in a request; committing its records one by one');
    }
    const kept: FlatRecord[] = [];
    for (const record of flat.records) {
      try {
        await this.#ctx.consumer.consume(signal, [record]);
        kept.push(record);
      } catch (err) {
        if (!refusedAsData(err)) throw err;
        flat.rejected++;
        flat.error ||= `the store cannot hold this record: ${((err as ConsumerError).cause as Error).message}`;
      }
    }
    flat.records = kept;
  }

  #authorized(header: string | undefined): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
    // Compare fixed-length digests so the time taken says nothing about the token.
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), this.#tokenDigest!);
  }
}

/**
 * A store failure caused by the data itself: the database driver refusing a value (a
 * RangeError or TypeError while binding), not the store being full, locked or away.
 */
function refusedAsData(err: unknown): boolean {
  return err instanceof ConsumerError && err.code === 'BV_STORE_FAILED' && (err.cause instanceof RangeError || err.cause instanceof TypeError);
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}
function isProtobuf(header: string | undefined): boolean {
  return mediaType(header) === 'application/x-protobuf';
}
function isJson(header: string | undefined): boolean {
  return mediaType(header) === 'application/json';
}

function sendSuccess(res: Response, signal: Signal, protobuf: boolean, flat: Flattened<unknown>): void {
  if (protobuf) res.status(200).type('application/x-protobuf').end(encodeExportResponse(signal, flat));
  else res.status(200).json(exportResponse(signal, flat));
}

function sendStatus(res: Response, http: number, protobuf: boolean, code: number, message: string): void {
  if (protobuf) {
    const bytes = google.rpc.Status.encode({ code, message }).finish();
    res.status(http).type('application/x-protobuf').end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  } else {
    res.status(http).json({ code, message });
  }
}
