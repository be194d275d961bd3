// Test support: a PHP request and its DB queries as the agents send them (a SERVER span with
// the HTTP attributes, CLIENT spans with db.system.name and db.query.text), as OTLP/JSON.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { FlatRecord } from '../../collector/core/api.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { tempDir } from '../../test/env.js';
import { flattenTraces } from '../otlp/decode.js';

/** A real SQLite store in a temporary directory, with no exporters; closed after the test. */
export async function storeWith(t: TestContext): Promise<SqliteStore> {
  const store = new SqliteStore({ path: join(tempDir(t), 's.db'), retentionMs: 1e12, maxSizeBytes: 1e12, synchronous: 'NORMAL' });
  await store.configureExporters([]);
  t.after(() => store.close());
  return store;
}

/** OTLP/JSON traces as the receiver flattens them. */
export const flat = (body: unknown): FlatRecord[] => flattenTraces(body as Record<string, unknown>).records;

export interface FixtureQuery {
  sql: string;
  /** Offset from the request start and duration, in ms. */
  atMs: number;
  ms: number;
  /** Fixed span id (a re-delivered span keeps its id); random when absent. */
  spanId?: string;
  /** Extra span attributes (the pg-agent's bitville.end_uncertainty_ms, postgresql.pid, ...). */
  attributes?: Record<string, string | number | boolean>;
}

export interface FixtureRequest {
  correlationId: string;
  startMs: number;
  durationMs: number;
  method: string;
  url: string;
  status: number;
  project: string;
  queries: FixtureQuery[];
  /** The PHP worker's process id (`process.pid` on the request span, as the PHP agent sends it). */
  pid?: number;
}

const attr = (key: string, v: string | number | boolean) => ({
  key,
  value: typeof v === 'string' ? { stringValue: v } : typeof v === 'boolean' ? { boolValue: v } : Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v },
});
const nanos = (ms: number) => (BigInt(Math.round(ms * 1000)) * 1000n).toString();

export function newCorrelationId(): string {
  return randomBytes(16).toString('hex');
}

/** A slow request with an N+1 pattern (`repeat` identical lookups) and one slow report query. */
export function sampleRequest(over: Partial<FixtureRequest> = {}, repeat = 6): FixtureRequest {
  const queries: FixtureQuery[] = [{ sql: 'SELECT id, name FROM orders WHERE customer_id = 42', atMs: 5, ms: 12 }];
  for (let i = 0; i < repeat; i++) queries.push({ sql: `SELECT * FROM order_items WHERE order_id = ${100 + i}`, atMs: 20 + i * 15, ms: 10 });
  queries.push({ sql: "SELECT sum(total) FROM invoices WHERE created_at > '2026-01-01'", atMs: 140, ms: 380 });
  return {
    correlationId: newCorrelationId(),
    startMs: Date.now() - 1000,
    durationMs: 600,
    method: 'GET',
    url: 'http://shop.example/orders.php?customer=42',
    status: 200,
    project: 'shop',
    queries,
    ...over,
  };
}

/** The request span alone (as the PHP agent sends it). */
export function requestSpans(r: FixtureRequest) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', r.project), attr('host.name', 'web-1'), attr('bitville.source', 'php_agent')] },
        scopeSpans: [
          {
            scope: { name: 'bitville.php' },
            spans: [
              {
                traceId: r.correlationId,
                spanId: r.correlationId.slice(0, 16),
                name: `${r.method} /orders.php`,
                kind: 2,
                startTimeUnixNano: nanos(r.startMs),
                endTimeUnixNano: nanos(r.startMs + r.durationMs),
                attributes: [
                  attr('bitville.correlation_id', r.correlationId),
                  attr('http.request.method', r.method),
                  attr('url.full', r.url),
                  attr('http.response.status_code', r.status),
                  ...(r.pid !== undefined ? [attr('process.pid', r.pid)] : []),
                ],
              },
            ],
          },
        ],
      },
    ],
  };
}

/** The DB spans (as the Postgres agent sends them), optionally only some of them. */
export function querySpans(r: FixtureRequest, queries = r.queries) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', r.project), attr('bitville.source', 'pg_agent')] },
        scopeSpans: [
          {
            scope: { name: 'bitville.pg' },
            spans: queries.map((q) => ({
              traceId: r.correlationId,
              spanId: q.spanId ?? randomBytes(8).toString('hex'),
              name: q.sql.split(' ')[0],
              kind: 3,
              startTimeUnixNano: nanos(r.startMs + q.atMs),
              endTimeUnixNano: nanos(r.startMs + q.atMs + q.ms),
              attributes: [
                attr('bitville.correlation_id', r.correlationId),
                attr('db.system.name', 'postgresql'),
                attr('db.query.text', q.sql),
                ...Object.entries(q.attributes ?? {}).map(([k, v]) => attr(k, v)),
              ],
            })),
          },
        ],
      },
    ],
  };
}

export async function postTraces(otlpUrl: string, body: unknown): Promise<void> {
  const res = await fetch(`${otlpUrl}/v1/traces`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  if (res.status !== 200) throw new Error(`OTLP export answered ${res.status}: ${await res.text()}`);
}
