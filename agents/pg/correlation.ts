// From what a backend carries (application_name `req:<id>[/<pid>@<host key>]`, a sqlcommenter
// traceparent) to the ids a DB span needs. The correlation id of a request IS its W3C trace id
// when it has that shape (32 lowercase hex); an id of another shape (a legacy sender) is kept as
// given in `bitville.correlation_id`, and the trace id is derived from it: the first 16 bytes of
// its SHA-256, so every agent that sees the same id derives the same trace id.
import { createHash, randomBytes } from 'node:crypto';

export const APP_NAME_PREFIX = 'req:';

const TRACE_ID = /^[0-9a-f]{32}$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/**
 * The worker suffix the PHP agent appends (`/<pid>@<host key>`): the process that set the tag,
 * which for a persistent connection is the one process that will ever use it. Strict, so a
 * hand-written id that merely contains a slash stays whole.
 */
const WORKER_SUFFIX = /^(.+)\/([1-9][0-9]{0,9})@([0-9a-f]{8})$/;

/** What a `req:` application_name says: the request's id and, from the PHP agent, its worker. */
export interface AppNameTag {
  correlationId: string;
  /** The PHP process (FPM worker, Apache child) that set the tag, when the tag names it. */
  worker?: { pid: number; hostKey: string };
}

/** Parses `req:<id>` or `req:<id>/<pid>@<host key>`; undefined for any other application_name. */
export function parseAppName(applicationName: string | null | undefined): AppNameTag | undefined {
  if (!applicationName?.startsWith(APP_NAME_PREFIX)) return undefined;
  const rest = applicationName.slice(APP_NAME_PREFIX.length).trim();
  if (rest === '') return undefined;
  const m = WORKER_SUFFIX.exec(rest);
  if (!m) return { correlationId: rest };
  return { correlationId: m[1]!, worker: { pid: Number(m[2]), hostKey: m[3]! } };
}

/** The correlation id in an application_name (`req:<id>`, with or without the worker), or undefined. */
export function correlationIdFromAppName(applicationName: string | null | undefined): string | undefined {
  return parseAppName(applicationName)?.correlationId;
}

export function traceIdFor(correlationId: string): string {
  const lower = correlationId.toLowerCase();
  if (TRACE_ID.test(lower) && lower !== ZERO_TRACE) return lower;
  return createHash('sha256').update(correlationId).digest('hex').slice(0, 32);
}

export interface TraceParent {
  traceId: string;
  parentSpanId: string;
}

/** Parses a W3C traceparent (`00-<trace>-<span>-<flags>`); undefined when malformed or all-zero. */
export function parseTraceParent(value: string | undefined): TraceParent | undefined {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value?.trim().toLowerCase() ?? '');
  if (!m || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return undefined;
  return { traceId: m[2]!, parentSpanId: m[3]! };
}

export function newSpanId(): string {
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== ZERO_SPAN) return id;
  }
}
