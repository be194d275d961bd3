// OTLP/gRPC: the TraceService, LogsService and MetricsService Export calls on one grpc-js
// server (the OpenTelemetry Collector's `protocols.grpc`, default 0.0.0.0:4317). Requests are
// taken as raw bytes (grpc-js handles framing, gzip and the size limit, decompressed included)
// and decoded by the same code as OTLP/HTTP protobuf bodies, so both transports store exactly
// the same records. The reply follows the durable commit, as over HTTP.
//
// Status codes as the OTLP specification maps them: malformed data INVALID_ARGUMENT; overload
// RESOURCE_EXHAUSTED and a store that cannot commit UNAVAILABLE, both with a google.rpc.RetryInfo
// in the status details (what tells an OTLP client that a retry is worth it); a missing or wrong
// bearer token UNAUTHENTICATED; a signal without a pipeline UNIMPLEMENTED.
import * as grpc from '@grpc/grpc-js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConsumerError, parseHostPort } from '../../collector/core/api.js';
import type { ReceiverContext, Receiver, SchemaHelpers, Signal, z as Z } from '../../collector/core/api.js';
import { signalCounters } from './counters.js';
import { DecodePool } from './decode-pool.js';
import { encodeExportResponse, encodeStatus } from './grpc-responses.js';

/** The `protocols.grpc` section: absent means off, `grpc:` alone means on with the defaults. */
export function grpcConfigSchema(z: typeof Z, h: SchemaHelpers) {
  return z.preprocess(
    (v) => (v === null ? {} : v),
    z
      .strictObject({
        /** Address to listen on. */
        endpoint: h.hostPort().default('0.0.0.0:4317'),
        /** Largest message accepted, compressed and decompressed alike (MiB); defaults to the HTTP body limit. */
        max_recv_msg_size_mib: z.number().positive().optional(),
        /** Calls in progress at once; past it, RESOURCE_EXHAUSTED with RetryInfo, before the message is read. */
        max_concurrent_requests: z.number().int().positive().default(16),
        /** Concurrent calls one connection may open (HTTP/2 streams). */
        max_concurrent_streams: z.number().int().positive().default(100),
        /** Delay suggested in RetryInfo. */
        retry_after: h.duration().default(1000),
        /** When set, calls must carry the metadata `authorization: Bearer <token>`; defaults to the HTTP token. */
        auth: z.strictObject({ bearer_token: z.string().min(1) }).optional(),
        /** Serve TLS with these PEM files. */
        tls: z.strictObject({ cert_file: z.string(), key_file: z.string() }).optional(),
      })
      .optional(),
  );
}

export type GrpcConfig = NonNullable<Z.infer<ReturnType<typeof grpcConfigSchema>>>;

/** What the gRPC side takes over from the HTTP side when it does not set its own. */
export interface HttpShared {
  max_request_body_size: number;
  /** Decoding threads, shared setting: gRPC messages decode as HTTP bodies do. */
  decode_workers: number;
  auth?: { bearer_token: string } | undefined;
}

const SERVICES: readonly [Signal, string][] = [
  ['traces', '/opentelemetry.proto.collector.trace.v1.TraceService/Export'],
  ['logs', '/opentelemetry.proto.collector.logs.v1.LogsService/Export'],
  ['metrics', '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export'],
];

type Outcome = { code: grpc.status; message: string; retry: boolean };

/** Where every failure gets its gRPC status, in one place. */
export function grpcStatusFor(err: unknown): Outcome {
  if (err instanceof ConsumerError) {
    if (err.code === 'BV_NO_PIPELINE') return { code: grpc.status.UNIMPLEMENTED, message: err.message, retry: false };
    if (err.code === 'BV_OVERLOADED') return { code: grpc.status.RESOURCE_EXHAUSTED, message: err.message, retry: true };
    if (err.retryable) return { code: grpc.status.UNAVAILABLE, message: err.message, retry: true };
    return { code: grpc.status.INVALID_ARGUMENT, message: err.message, retry: false };
  }
  return { code: grpc.status.INTERNAL, message: 'internal error', retry: false };
}

export class OtlpGrpcReceiver implements Receiver {
  readonly #config: GrpcConfig;
  readonly #ctx: ReceiverContext;
  readonly #server: grpc.Server;
  readonly #tokenDigest: Buffer | undefined;
  readonly #decodeWorkers: number;
  #pool: DecodePool | undefined;
  #inFlight = 0;
  readonly #accepted: Record<Signal, { inc(n?: number): void }>;
  readonly #refused: Record<Signal, { inc(n?: number): void }>;
  readonly #rejectedCalls: { inc(): void };

  constructor(config: GrpcConfig, http: HttpShared | undefined, ctx: ReceiverContext) {
    this.#config = config;
    this.#ctx = ctx;
    const token = config.auth?.bearer_token ?? http?.auth?.bearer_token;
    this.#tokenDigest = token === undefined ? undefined : digest(token);
    this.#decodeWorkers = http?.decode_workers ?? 0;
    const limit = config.max_recv_msg_size_mib !== undefined ? Math.floor(config.max_recv_msg_size_mib * 1024 * 1024) : (http?.max_request_body_size ?? 4 * 1024 * 1024);

    // The same series as the HTTP side (one receiver id): the counts cover both transports.
    const m = ctx.metrics;
    ({ accepted: this.#accepted, refused: this.#refused } = signalCounters(m));
    this.#rejectedCalls = m.counter('bitville_receiver_grpc_calls_rejected', 'OTLP/gRPC calls answered with an error status.');
    m.gauge('bitville_receiver_grpc_in_flight_calls', 'OTLP/gRPC calls being processed.', () => this.#inFlight);

    this.#server = new grpc.Server({
      'grpc.max_receive_message_length': limit,
      'grpc.max_concurrent_streams': config.max_concurrent_streams,
      // Admission (token, in-flight bound) is decided on the call's metadata, before its message
      // is read: a refused call costs no buffer, and at most max_concurrent_requests are held.
      interceptors: [(_method, call) => this.#admit(call)],
    });
    for (const [signal, path] of SERVICES) {
      this.#server.register<Buffer, Buffer>(
        path,
        (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => void this.#export(signal, call, callback),
        (response) => response,
        (bytes) => bytes,
        'unary',
      );
    }
  }

  async start(): Promise<void> {
    this.#pool = new DecodePool(this.#decodeWorkers);
    const { host, port } = parseHostPort(this.#config.endpoint);
    const credentials = this.#config.tls
      ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(this.#config.tls.cert_file), private_key: readFileSync(this.#config.tls.key_file) }], false)
      : grpc.ServerCredentials.createInsecure();
    const shownHost = host.includes(':') ? `[${host}]` : host;
    const bound = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(`${shownHost}:${port}`, credentials, (err, actual) => (err ? reject(err) : resolve(actual)));
    });
    this.#ctx.logger.info({ endpoint: `${shownHost}:${bound}`, port: bound, tls: Boolean(this.#config.tls) }, 'OTLP/gRPC receiver listening');
  }

  async shutdown(signal: AbortSignal): Promise<void> {
    // Stop taking calls; those in progress finish (and commit) first, unless the grace runs out.
    const force = () => this.#server.forceShutdown();
    signal.addEventListener('abort', force, { once: true });
    try {
      await new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    } finally {
      signal.removeEventListener('abort', force);
    }
    await this.#pool?.close();
  }

  async #export(signal: Signal, call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): Promise<void> {
    const fail = (err: unknown) => {
      const s = grpcStatusFor(err);
      this.#rejectedCalls.inc();
      if (s.code === grpc.status.INTERNAL) this.#ctx.logger.error({ err }, 'OTLP/gRPC call failed');
      const metadata = new grpc.Metadata();
      metadata.set('grpc-status-details-bin', encodeStatus(s.code, s.message, s.retry ? this.#config.retry_after : undefined));
      callback({ code: s.code, details: s.message, metadata });
    };

    if (!this.#ctx.signals.includes(signal)) {
      return fail(new ConsumerError('BV_NO_PIPELINE', `this collector has no ${signal} pipeline using this receiver`));
    }
    try {
      const flat = await this.#pool!.decode(signal, call.request, true);
      await this.#ctx.consumer.consume(signal, flat.records);
      this.#accepted[signal].inc(flat.records.length);
      if (flat.rejected) this.#refused[signal].inc(flat.rejected);
      callback(null, encodeExportResponse(signal, flat));
    } catch (err) {
      fail(err);
    }
  }

  /** Lets a call in (counted in flight until its status is sent or it is cancelled), or refuses it. */
  #admit(call: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall {
    let admitted = false;
    const release = () => {
      if (admitted) (admitted = false), this.#inFlight--;
    };
    const refuse = (code: grpc.status, details: string, retry: boolean) => {
      this.#rejectedCalls.inc();
      const metadata = new grpc.Metadata();
      metadata.set('grpc-status-details-bin', encodeStatus(code, details, retry ? this.#config.retry_after : undefined));
      call.sendStatus({ code, details, metadata });
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (this.#tokenDigest && !this.#authorized(metadata.get('authorization'))) {
          return refuse(grpc.status.UNAUTHENTICATED, 'missing or wrong bearer token (metadata authorization: Bearer <token>)', false);
        }
        if (this.#inFlight >= this.#config.max_concurrent_requests) {
          return refuse(grpc.status.RESOURCE_EXHAUSTED, `too many calls in flight (${this.#inFlight}); retry later`, true);
        }
        admitted = true;
        this.#inFlight++;
        next(metadata);
      })
      .withOnCancel(release)
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        release();
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  }

  #authorized(values: grpc.MetadataValue[]): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(typeof values[0] === 'string' ? values[0] : '');
    // Compare fixed-length digests so the time taken says nothing about the token.
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), this.#tokenDigest!);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Several receivers (the HTTP and gRPC sides) as one component: started in order, all shut down. */
export class ReceiverGroup implements Receiver {
  constructor(readonly parts: readonly Receiver[]) {}

  async start(signal: AbortSignal): Promise<void> {
    for (const part of this.parts) await part.start(signal);
  }

  async shutdown(signal: AbortSignal): Promise<void> {
    const results = await Promise.allSettled(this.parts.map((p) => p.shutdown(signal)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

/** `protocols` with no protocol named means HTTP alone (as before gRPC existed); naming some enables exactly those. */
export function defaultProtocols(value: unknown): unknown {
  const p = value ?? {};
  if (typeof p !== 'object' || Array.isArray(p)) return p;
  const named = p as Record<string, unknown>;
  return named.http === undefined && named.grpc === undefined ? { ...named, http: {} } : p;
}

/** `http:` written with nothing under it means HTTP with its defaults. */
export function nullAsEmpty(value: unknown): unknown {
  return value === null ? {} : value;
}
