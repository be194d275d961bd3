// The datagram agent.php sends (one JSON object per slow request) and its translation into an
// OTLP SERVER span with the OpenTelemetry HTTP semantic conventions.
//
// What the daemon accepts is sanitised, never trusted: every string field becomes valid UTF-8
// (invalid bytes and lone surrogates such as a JSON `\ud800` become U+FFFD) and is cut to a
// bound of its own (FIELD_LIMITS, in UTF-16 code units, never inside a surrogate pair). One bad
// field so never costs the event, and never a batch at the collector.
import { z } from 'zod';
import { wellFormed } from '../runtime/encode.js';
import type { AgentAttributeValue, AgentSpan } from '../runtime/index.js';
import { sanitiseCollapsed } from './profile.js';

const hex = (length: number) => z.string().regex(new RegExp(`^[0-9a-f]{${length}}$`));

/** The bound of each string field (documented in docs/php-agent.md). */
export const FIELD_LIMITS = {
  method: 32,
  url: 8192,
  script: 4096,
  host: 255,
  project: 255,
  php_version: 64,
  sapi: 64,
  'error.message': 8192,
  'error.file': 4096,
} as const;

export type LimitedField = keyof typeof FIELD_LIMITS;

/** Collects the fields cut while parsing one datagram (and `profile` when it was cut, cleaned or dropped). */
let truncatedFields: (LimitedField | 'profile')[] = [];

/** The profile's span attributes (read by the correlate plugin's flame graph). */
export const PROFILE_ATTRIBUTES = {
  collapsed: 'bitville.profile.collapsed',
  periodMs: 'bitville.profile.period_ms',
  delayMs: 'bitville.profile.delay_ms',
  samples: 'bitville.profile.samples',
} as const;

/** A slow request's sampled stacks (excimer), sanitised and bounded; null when unusable. */
const profile = z
  .object({ period_ms: z.number().min(0.001).max(60_000), delay_ms: z.number().min(0).max(3_600_000).optional(), samples: z.int().min(0), collapsed: z.string() })
  .nullable()
  .catch(() => {
    truncatedFields.push('profile');
    return null;
  })
  .transform((p) => {
    if (!p) return null;
    const clean = sanitiseCollapsed(p.collapsed);
    if (!clean) return null;
    if (clean.changed) truncatedFields.push('profile');
    return { periodMs: p.period_ms, delayMs: p.delay_ms ?? 0, samples: clean.samples, collapsed: clean.collapsed };
  });

function clip(value: string, max: number): string {
  if (value.length <= max) return value;
  // Cutting between the halves of a surrogate pair would leave a lone one.
  const end = /[\uD800-\uDBFF]/.test(value[max - 1]!) ? max - 1 : max;
  return value.slice(0, end);
}

const text = (field: LimitedField) =>
  z.string().transform((raw) => {
    const value = wellFormed(raw);
    if (value.length <= FIELD_LIMITS[field]) return value;
    truncatedFields.push(field);
    return clip(value, FIELD_LIMITS[field]);
  });

/** Version 1 of the datagram. Unknown keys are ignored so a newer agent.php still reports to an older daemon. */
export const phpEventSchema = z.object({
  v: z.literal(1),
  trace_id: hex(32),
  span_id: hex(16),
  parent_span_id: z.union([hex(16), z.literal('')]),
  method: text('method'),
  url: text('url'),
  script: text('script'),
  status: z.int().min(0).max(999),
  start_us: z.int().positive(),
  duration_us: z.int().min(0),
  peak_memory: z.int().min(0),
  host: text('host'),
  project: text('project'),
  php_version: text('php_version'),
  sapi: text('sapi'),
  error: z
    .object({ type: z.int(), message: text('error.message'), file: text('error.file'), line: z.int() })
    .nullable(),
  /** Slow requests agent.php could not deliver since its previous successful send. */
  lost: z.int().min(0).default(0),
  /** The PHP worker's process id (getmypid()), so statements on a persistent connection can be placed by worker and time. */
  pid: z.int().positive().optional(),
  /** Present only with excimer: a bad profile is dropped, never the event. */
  profile: profile.optional(),
});

export type PhpEvent = z.output<typeof phpEventSchema>;

/** Parses one datagram; returns the event (with the fields that were cut to their bound) or the reason it is malformed. */
export function parseDatagram(data: Buffer): { event: PhpEvent; truncated: (LimitedField | 'profile')[] } | { reason: string; detail: string } {
  let json: unknown;
  try {
    // Decoding replaces invalid UTF-8 byte sequences with U+FFFD.
    json = JSON.parse(data.toString('utf8'));
  } catch (err) {
    return { reason: 'not_json', detail: (err as Error).message };
  }
  truncatedFields = [];
  const parsed = phpEventSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { reason: 'invalid_event', detail: `${issue.path.join('.') || '(top level)'}: ${issue.message}` };
  }
  return { event: parsed.data, truncated: truncatedFields };
}

function splitUrl(url: string): { scheme?: string; host?: string; port?: number; path: string; query?: string } {
  try {
    const u = new URL(url);
    return {
      scheme: u.protocol.replace(/:$/, ''),
      host: u.hostname,
      port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80,
      path: u.pathname,
      ...(u.search ? { query: u.search.slice(1) } : {}),
    };
  } catch {
    return { path: url };
  }
}

/** A SERVER span named `{method} {script}` (the script is PHP's low-cardinality route). */
export function toSpan(e: PhpEvent): AgentSpan {
  const start = BigInt(e.start_us) * 1000n;
  const url = splitUrl(e.url);
  const attributes: Record<string, AgentAttributeValue> = {
    'bitville.correlation_id': e.trace_id,
    'http.request.method': e.method || '_OTHER',
    'url.full': e.url,
    'url.path': url.path,
    'code.file.path': e.script,
    'php.sapi': e.sapi,
    'php.memory.peak_bytes': e.peak_memory,
  };
  if (e.pid !== undefined) attributes['process.pid'] = e.pid;
  if (url.scheme) attributes['url.scheme'] = url.scheme;
  if (url.query !== undefined) attributes['url.query'] = url.query;
  if (url.host) attributes['server.address'] = url.host;
  if (url.port) attributes['server.port'] = url.port;
  if (e.status > 0) attributes['http.response.status_code'] = e.status;
  let status: AgentSpan['status'] = { code: 'unset' };
  if (e.error) {
    Object.assign(attributes, { 'error.type': 'php_fatal', 'php.error.type': e.error.type, 'php.error.message': e.error.message, 'php.error.file': e.error.file, 'php.error.line': e.error.line });
    status = { code: 'error', message: e.error.message };
  } else if (e.status >= 500) {
    attributes['error.type'] = String(e.status);
    status = { code: 'error' };
  }
  if (e.profile) {
    attributes[PROFILE_ATTRIBUTES.collapsed] = e.profile.collapsed;
    attributes[PROFILE_ATTRIBUTES.periodMs] = e.profile.periodMs;
    attributes[PROFILE_ATTRIBUTES.delayMs] = e.profile.delayMs;
    attributes[PROFILE_ATTRIBUTES.samples] = e.profile.samples;
  }
  const resource: Record<string, AgentAttributeValue> = { 'process.runtime.name': 'php', 'process.runtime.version': e.php_version };
  if (e.project) resource['service.name'] = e.project;
  if (e.host) resource['host.name'] = e.host;
  return {
    traceId: e.trace_id,
    spanId: e.span_id,
    parentSpanId: e.parent_span_id,
    name: e.script ? `${e.method} ${e.script}` : e.method,
    kind: 'server',
    startTimeUnixNano: String(start),
    endTimeUnixNano: String(start + BigInt(e.duration_us) * 1000n),
    attributes,
    status,
    resource,
  };
}
