// The overview's rollup series and how a request is filed under an endpoint: shared by what
// writes the rollups (rollup.ts, overview.ts) and what reads them (overview-queries.ts).
import type { SpanRecord } from '../../collector/core/api.js';
import { HTTP } from './attributes.js';

export const SERIES = {
  /** Per endpoint: n, err, np1 (requests), ms, db (ms), q (statements), h* (duration histogram). */
  endpoint: 'correlate.endpoint',
  /** Per normalized statement: calls, reqs, np1 (requests), ms, h* (per-call histogram). */
  statement: 'correlate.statement',
  /** Per normalized statement, from the pg-agent's pg_stat_statements totals: calls, ms. */
  pgStatements: 'correlate.pg_statements',
} as const;

/** Responses with a status at or above this count as errors (as do spans with error status). */
export const HTTP_STATUS_ERROR_FROM = 500;

// A path segment that names one thing rather than a kind of thing: a number, a UUID, a long
// hex or base64-ish token with digits in it.
const ID_SEGMENT = /^(?:\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?=[^/]*\d)[0-9a-f]{8,}|(?=[^/]*\d)[A-Za-z0-9_-]{16,})$/i;

/** `/users/42/orders/9f8e...` -> `/users/:id/orders/:id`. */
export function collapseIds(path: string): string {
  return path
    .split('/')
    .map((segment) => (ID_SEGMENT.test(segment) ? ':id' : segment))
    .join('/');
}

/** `METHOD route`: the span's `http.route`, else its URL path with ids collapsed. */
export function endpointOf(request: SpanRecord): string {
  const a = request.attributes;
  const method = typeof a[HTTP.method] === 'string' ? (a[HTTP.method] as string) : '';
  let route = typeof a[HTTP.route] === 'string' && a[HTTP.route] !== '' ? (a[HTTP.route] as string) : undefined;
  if (route === undefined) {
    let path = typeof a[HTTP.urlPath] === 'string' ? (a[HTTP.urlPath] as string) : undefined;
    if (path === undefined && typeof a[HTTP.urlFull] === 'string') {
      try {
        path = new URL(a[HTTP.urlFull] as string).pathname;
      } catch {
        path = undefined;
      }
    }
    route = path !== undefined ? collapseIds(path.split('?')[0]!) : request.name;
  }
  return method !== '' && !route.startsWith(`${method} `) ? `${method} ${route}` : route;
}
