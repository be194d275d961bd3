// The join on records read back from a real SQLite store: what a summary says about a request,
// DB spans before their request, late spans (a superseding summary), and the deterministic id.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { FlatRecord } from '../../collector/core/api.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { tempDir } from '../../test/env.js';
import { flattenTraces } from '../otlp/decode.js';
import { buildSummary, joinRecords, normalizeSql, summaryIdOf } from './join.js';
import { querySpans, requestSpans, sampleRequest } from './traces.fixture.js';

const options = { slowestQueries: 3, nPlusOneThreshold: 5 };

async function storeWith(t: TestContext) {
  const store = new SqliteStore({ path: join(tempDir(t), 's.db'), retentionMs: 1e12, maxSizeBytes: 1e12, synchronous: 'NORMAL' });
  await store.configureExporters([]);
  t.after(() => store.close());
  return store;
}
const flat = (body: unknown): FlatRecord[] => flattenTraces(body as Record<string, unknown>).records;

test('normalizeSql: literals, placeholders, comments, IN lists, case and whitespace', () => {
  assert.equal(normalizeSql('SELECT * FROM t WHERE id = 7'), normalizeSql('select *\n  from t where id = $1;'));
  assert.equal(normalizeSql("SELECT * FROM t WHERE name = 'O''Brien' /*traceparent='00-ab-cd-01'*/"), 'select * from t where name = ?');
  assert.equal(normalizeSql('SELECT 1 FROM t WHERE id IN (1, 2, 3) -- note'), 'select ? from t where id in (?)');
  assert.equal(normalizeSql('SELECT a FROM t2 WHERE x = :id'), 'select a from t2 where x = ?');
  assert.notEqual(normalizeSql('SELECT * FROM a WHERE id = 1'), normalizeSql('SELECT * FROM b WHERE id = 1'));
});

test('a summary gives method, URL, status, duration, DB time, query count, slowest queries and the N+1 pattern', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest({ method: 'POST', status: 201, durationMs: 640 });
  // DB spans arrive before their request span (separate agents, separate batches).
  await store.append(flat(querySpans(r)));
  await store.append(flat(requestSpans(r)));
  const joined = joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options);
  const s = buildSummary(joined, options)!;
  assert.equal(s.kind, 'summary');
  assert.equal(s.correlationId, r.correlationId);
  assert.equal(s.durationMs, 640);
  assert.equal(s.name, 'POST /orders.php');
  assert.equal(s.resource['service.name'], 'shop');
  const a = s.attributes;
  assert.equal(a['http.request.method'], 'POST');
  assert.equal(a['url.full'], r.url);
  assert.equal(a['http.response.status_code'], 201);
  assert.equal(a['bitville.db_query_count'], 8);
  assert.equal(a['bitville.db_time_ms'], 12 + 6 * 10 + 380);
  assert.equal(a['bitville.n_plus_one'], true);
  assert.equal(a['bitville.n_plus_one_query'], 'select * from order_items where order_id = ?');
  assert.equal(a['bitville.n_plus_one_count'], 6);
  assert.deepEqual(a['bitville.repeated_queries'], [{ query: 'select * from order_items where order_id = ?', count: 6, total_ms: 60 }]);
  const slowest = a['bitville.slowest_queries'] as { query: string; duration_ms: number }[];
  assert.deepEqual(slowest.map((q) => q.duration_ms), [380, 12, 10]);
  assert.match(slowest[0]!.query, /^SELECT sum\(total\) FROM invoices/);
  assert.equal(a['bitville.summary.revision'], 1);
  assert.equal(a['bitville.summary.id'], s.spanId);
  assert.equal(s.spanId, summaryIdOf(r.correlationId, joined.lastRecordId), 'the id depends only on what it covers');
  assert.equal('bitville.summary.supersedes' in a, false);
});

test('below the threshold there is no N+1 flag; without a request span there is no summary yet', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest({}, 4);
  await store.append(flat(querySpans(r)));
  const early = joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options);
  assert.equal(early.request, undefined);
  assert.equal(buildSummary(early, options), undefined);
  await store.append(flat(requestSpans(r)));
  const s = buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options), options)!;
  assert.equal(s.attributes['bitville.n_plus_one'], false);
  assert.deepEqual(s.attributes['bitville.repeated_queries'], []);
  assert.equal(s.attributes['bitville.db_query_count'], 6);
});

test('a late DB span yields a superseding summary; an up-to-date join yields none', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest();
  await store.append([...flat(requestSpans(r)), ...flat(querySpans(r))]);
  const first = buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options), options)!;
  await store.append([first]);
  assert.equal(buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options), options), undefined);

  await store.append(flat(querySpans(r, [{ sql: 'UPDATE carts SET seen = now()', atMs: 590, ms: 4 }])));
  const second = buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options), options)!;
  assert.equal(second.attributes['bitville.db_query_count'], 9);
  assert.equal(second.attributes['bitville.summary.revision'], 2);
  assert.equal(second.attributes['bitville.summary.supersedes'], first.spanId);
  assert.notEqual(second.spanId, first.spanId);
});
