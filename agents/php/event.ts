// The datagram agent.php sends (one JSON object per slow request) and its translation into an
// OTLP SERVER span with the OpenTelemetry HTTP semantic conventions.
import { z } from 'zod';
import type { AgentAttributeValue, AgentSpan } from '../runtime/index.js';

const hex = (length: number) => z.string().regex(new RegExp(`^[0-9a-f]{${length}}$`));
const text = (max: number) => z.string().max(max);

/** Version 1 of the datagram. Unknown keys are ignored so a newer agent.php still reports to an older daemon. */
export const phpEventSchema = z.object({
  v: z.literal(1),
  trace_id: hex(32),
  span_id: hex(16),
  parent_span_id: z.union([hex(16), z.literal('')]),
  method: text(32),
  url: text(8192),
  script: text(4096),
  status: z.int().min(0).max(999),
  start_us: z.int().positive(),
  duration_us: z.int().min(0),
  peak_memory: z.int().min(0),
  host: text(255),
  project: text(255),
  php_version: text(64),
  sapi: text(64),
  error: z
    .object({ type: z.int(), message: text(8192), file: text(4096), line: z.int() })
    .nullable(),
  /** Slow requests agent.php could not deliver since its previous successful send. */
  lost: z.int().min(0).default(0),
});

export type PhpEvent = z.output<typeof phpEventSchema>;

/** Parses one datagram; returns the event or the reason it is malformed. */
export function parseDatagram(data: Buffer): { event: PhpEvent } | { reason: string; detail: string } {
  let json: unknown;
  try {
    json = JSON.parse(data.toString('utf8'));
  } catch (err) {
    return { reason: 'not_json', detail: (err as Error).message };
  }
  const parsed = phpEventSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { reason: 'invalid_event', detail: `${issue.path.join('.') || '(top level)'}: ${issue.message}` };
  }
  return { event: parsed.data };
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
