// The gelf exporter's config: every key, its default and its check, in one place.
// docs/gelf.md documents the same keys; keep the two in step.
import type { z as Zod } from 'zod';
import type { SchemaHelpers } from '../../collector/core/api.js';

export type Scheme = 'tcp' | 'tls' | 'udp' | 'http' | 'https';
export type Compression = 'none' | 'gzip' | 'zlib';

/** A parsed `endpoint`. */
export interface Endpoint {
  scheme: Scheme;
  host: string;
  port: number;
  /** For http(s): the request path (default `/gelf`). */
  path: string;
}

const DEFAULT_PORTS: Record<Scheme, number> = { tcp: 12201, tls: 12201, udp: 12201, http: 12201, https: 12201 };

const ENDPOINT_FORMS = 'tcp://host:port, tls://host:port, udp://host:port or http(s)://host:port/path';

/** Parses `tcp://host:port`, `tls://...`, `udp://...`, `http(s)://host:port/gelf`; throws with the reason. */
export function parseEndpoint(text: string): Endpoint {
  let url: URL | undefined;
  try {
    // A bare host:port parses as a URL whose scheme is the host; only a known scheme with "//" counts.
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url) throw new Error(`"${text}" is not an endpoint: it must be ${ENDPOINT_FORMS}`);
  const scheme = url.protocol.slice(0, -1) as Scheme;
  if (!(scheme in DEFAULT_PORTS)) {
    throw new Error(`scheme "${scheme}" is not supported: the endpoint must be ${ENDPOINT_FORMS}`);
  }
  if (url.hostname === '') throw new Error(`"${text}" has no host: the endpoint must be ${ENDPOINT_FORMS}`);
  const isHttp = scheme === 'http' || scheme === 'https';
  if (!isHttp && url.pathname !== '' && url.pathname !== '/') {
    throw new Error(`endpoint "${text}": a ${scheme} endpoint takes no path`);
  }
  return {
    scheme,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? DEFAULT_PORTS[scheme] : Number(url.port),
    path: isHttp ? (url.pathname === '/' ? '/gelf' : url.pathname + url.search) : '',
  };
}

export function gelfConfigSchema(z: typeof Zod, helpers: SchemaHelpers) {
  const endpoint = z.string().superRefine((value, ctx) => {
    try {
      parseEndpoint(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });
  const tls = z.strictObject({
    /** PEM file with the CA(s) that signed the server certificate (default: the system's). */
    ca_file: z.string().optional(),
    /** Client certificate and key (PEM) for mutual TLS. */
    cert_file: z.string().optional(),
    key_file: z.string().optional(),
    /** Skip verifying the server certificate (tests only). */
    insecure_skip_verify: z.boolean().default(false),
    /** Name to verify the certificate against, when it differs from the endpoint host. */
    server_name_override: z.string().optional(),
  });
  return z
    .strictObject({
      endpoint: endpoint.default('tcp://127.0.0.1:12201'),
      /** Message compression: UDP defaults to gzip; HTTP may use gzip; TCP must be none (Graylog). */
      compression: z.enum(['none', 'gzip', 'zlib']).optional(),
      tls: tls.default({ insecure_skip_verify: false }),
      /** Time allowed to open a connection (TCP/TLS, HTTP). */
      connect_timeout: helpers.duration().default(5000),
      /** Time allowed to hand one batch to the socket (TCP/TLS) or to get an answer (HTTP). */
      write_timeout: helpers.duration().default(10_000),
      /** TCP keepalive probe delay on the persistent connection (0 turns keepalive off). */
      keepalive: helpers.duration().default(30_000),
      /**
       * TCP/TLS: how long the connection must stay open after a batch was flushed for the batch
       * to count as sent (a peer that drops the connection within it gets the batch again).
       */
      confirm_window: helpers.duration().default(200),
      /** TCP/TLS: batches in flight at once while their confirmation windows run. */
      max_batches_in_flight: z.number().int().min(1).max(256).default(64),
      udp: z
        .strictObject({
          /** Largest datagram, 12-byte chunk header included: 1420 fits WAN paths, 8154 is usual on a LAN. */
          chunk_size: z.number().int().min(512).max(65_467).default(1420),
        })
        .default({ chunk_size: 1420 }),
      http: z
        .strictObject({
          /** Requests in flight at once. */
          max_in_flight: z.number().int().min(1).max(64).default(4),
          /** Several newline-separated messages per request (Graylog 6+, input with bulk receiving enabled). */
          bulk: z.boolean().default(false),
          /** Largest request body before compression: Graylog's max_chunk_size (default 64 KiB). Also the largest message. */
          max_body_size: helpers.size().default(64 * 1024),
          /** Extra request headers (for example an Authorization header of a proxy). */
          headers: z.record(z.string(), z.string()).default({}),
        })
        .default({ max_in_flight: 4, bulk: false, max_body_size: 64 * 1024, headers: {} }),
      /** Records offered per export call. */
      batch_size: z.number().int().min(1).max(10_000).default(500),
      /** Longest value of any field but full_message, in UTF-8 bytes (OpenSearch refuses longer keyword terms). */
      max_field_bytes: helpers.size().default(32_000),
      /** Longest full_message, in UTF-8 bytes. */
      max_full_message_bytes: helpers.size().default(256 * 1024),
      /** Delay before the next try after a failed send while the breaker is still closed. */
      retry_delay: helpers.duration().default(1000),
      /**
       * At start, open (and close) one TCP connection to the endpoint and log whether it answers,
       * so a Graylog that is down shows in the log before any data arrives. Skipped while the
       * breaker is open, and for UDP (nothing answers).
       */
      startup_check: z.boolean().default(true),
      circuit_breaker: z
        .strictObject({
          /** Consecutive failed sends that open the breaker. */
          failure_threshold: z.number().int().min(1).default(5),
          /** Time the breaker stays open before one probe (half-open). */
          reset_timeout: helpers.duration().default(60_000),
        })
        .default({ failure_threshold: 5, reset_timeout: 60_000 }),
    })
    .superRefine((config, ctx) => {
      // A bad endpoint is already reported by its own check; the checks below need its scheme.
      const scheme = schemeOf(config.endpoint);
      if (scheme === undefined) return;
      if ((scheme === 'tcp' || scheme === 'tls') && config.compression && config.compression !== 'none') {
        ctx.addIssue({
          code: 'custom',
          path: ['compression'],
          message: `Graylog's GELF TCP input does not take compressed messages; use none or a udp/http endpoint`,
        });
      }
      if (scheme === 'http' || scheme === 'https') {
        if (config.compression === 'zlib') {
          ctx.addIssue({ code: 'custom', path: ['compression'], message: 'GELF HTTP takes gzip or none' });
        }
      }
      if (config.max_field_bytes < 64) {
        ctx.addIssue({ code: 'custom', path: ['max_field_bytes'], message: 'must be at least 64 bytes' });
      }
      if (config.http.max_body_size < 1024) {
        ctx.addIssue({ code: 'custom', path: ['http', 'max_body_size'], message: 'must be at least 1 KiB' });
      }
      if (config.max_full_message_bytes < 64) {
        ctx.addIssue({ code: 'custom', path: ['max_full_message_bytes'], message: 'must be at least 64 bytes' });
      }
    });
}

function schemeOf(endpoint: string): Scheme | undefined {
  try {
    return parseEndpoint(endpoint).scheme;
  } catch {
    return undefined;
  }
}

export type GelfConfig = Zod.output<ReturnType<typeof gelfConfigSchema>>;

/** Compression actually used: the configured one, else gzip for UDP and none otherwise. */
export function compressionOf(config: GelfConfig): Compression {
  return config.compression ?? (parseEndpoint(config.endpoint).scheme === 'udp' ? 'gzip' : 'none');
}
