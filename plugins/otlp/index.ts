// The `otlp` receiver: OTLP/HTTP (POST /v1/traces, /v1/logs, /v1/metrics), protobuf or JSON, gzip or
// deflate, with a body limit, optional bearer token and TLS, and a bound on in-flight requests.
// Accepts the OpenTelemetry Collector's config shape (protocols.http.endpoint); protocols.grpc
// adds OTLP/gRPC (grpc.ts).
import express, { type Request, type Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ConsumerError, defineReceiver, parseHostPort } from '../../collector/core/api.js';
import type { ReceiverContext, Signal } from '../../collector/core/api.js';
import { google } from '../../proto/generated/otlp.js';
import { BodyError, readBody } from './body.js';
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
              /** Requests processed at once; past it, 503 with Retry-After. */
              max_concurrent_requests: z.number().int().positive().default(16),
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
  retry_after: number;
  decode_workers: number;
  auth?: { bearer_token: string } | undefined;
  tls?: { cert_file: string; key_file: string } | undefined;
};

// gRPC status codes, as google.rpc.Status carries them.
const GRPC = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** Where every failure gets its HTTP status, in one place. */
function statusFor(err: unknown): { http: number; grpc: number; message: string; retry: boolean } {
  if (err instanceof BodyError) {
    const grpc = err.status === 413 ? GRPC.RESOURCE_EXHAUSTED : GRPC.INVALID_ARGUMENT;
    return { http: err.status, grpc, message: err.message, retry: false };
  }
  if (err instanceof ConsumerError) {
    if (err.code === 'BV_NO_PIPELINE') return { http: 404, grpc: GRPC.NOT_FOUND, message: err.message, retry: false };
    if (err.retryable) return { http: 503, grpc: GRPC.UNAVAILABLE, message: err.message, retry: true };
    return { http: 400, grpc: GRPC.INVALID_ARGUMENT, message: err.message, retry: false };
  }
  return { http: 500, grpc: 13, message: 'internal error', retry: false };
}

class OtlpHttpReceiver {
  readonly #config: HttpConfig;
  readonly #ctx: ReceiverContext;
  readonly #server: Server;
  readonly #tokenDigest: Buffer | undefined;
  #pool: DecodePool | undefined;
  #inFlight = 0;
  #accepted: Record<Signal, { inc(n?: number): void }>;
  #refused: Record<Signal, { inc(n?: number): void }>;

  constructor(config: HttpConfig, ctx: ReceiverContext) {
    this.#config = config;
    this.#ctx = ctx;
    this.#tokenDigest = config.auth ? digest(config.auth.bearer_token) : undefined;
    const m = ctx.metrics;
    this.#accepted = {
      traces: m.counter('otelcol_receiver_accepted_spans', 'Spans committed to storage.'),
      logs: m.counter('otelcol_receiver_accepted_log_records', 'Log records committed to storage.'),
      metrics: m.counter('otelcol_receiver_accepted_metric_points', 'Metric data points committed to storage.'),
    };
    this.#refused = {
      traces: m.counter('otelcol_receiver_refused_spans', 'Spans refused (bad data, or rejected in partial_success).'),
      logs: m.counter('otelcol_receiver_refused_log_records', 'Log records refused (bad data, or rejected in partial_success).'),
      metrics: m.counter('otelcol_receiver_refused_metric_points', 'Metric data points refused (bad data, or rejected in partial_success).'),
    };
    const requests = m.counter('bitville_receiver_requests_rejected', 'Requests answered with an error status.');
    m.gauge('bitville_receiver_in_flight_requests', 'Requests being processed.', () => this.#inFlight);

    const app = express();
    app.disable('x-powered-by');
    app.post('/v1/traces', (req, res) => this.#handle('traces', req, res, requests));
    app.post('/v1/logs', (req, res) => this.#handle('logs', req, res, requests));
    app.post('/v1/metrics', (req, res) => this.#handle('metrics', req, res, requests));
    app.use((req, res) => {
      res.status(404).json({ code: GRPC.NOT_FOUND, message: `no OTLP endpoint at ${req.method} ${req.path} (use POST /v1/traces, /v1/logs or /v1/metrics)` });
    });
    this.#server = config.tls
      ? createHttpsServer({ cert: readFileSync(config.tls.cert_file), key: readFileSync(config.tls.key_file) }, app)
      : createHttpServer(app);
    this.#server.keepAliveTimeout = 30_000;
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
    const protobuf = isProtobuf(req.headers['content-type']);
    const fail = (err: unknown) => {
      const s = statusFor(err);
      rejectedRequests.inc();
      if (s.http === 500) this.#ctx.logger.error({ err }, 'OTLP request failed');
      if (s.retry) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(this.#config.retry_after / 1000))));
      if (s.http === 413) res.setHeader('Connection', 'close');
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
    if (this.#inFlight >= this.#config.max_concurrent_requests) {
      return fail(new ConsumerError('BV_OVERLOADED', `too many requests in flight (${this.#inFlight}); retry later`));
    }
    this.#inFlight++;
    try {
      const body = await readBody(req, this.#config.max_request_body_size);
      const flat = await this.#pool!.decode(signal, body, protobuf);
      await this.#ctx.consumer.consume(signal, flat.records);
      this.#accepted[signal].inc(flat.records.length);
      if (flat.rejected) this.#refused[signal].inc(flat.rejected);
      sendSuccess(res, signal, protobuf, flat);
    } catch (err) {
      fail(err);
    } finally {
      this.#inFlight--;
    }
  }

  #authorized(header: string | undefined): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
    // Compare fixed-length digests so the time taken says nothing about the token.
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), this.#tokenDigest!);
  }
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
