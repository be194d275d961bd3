// The join on records read back from a real SQLite store: what a summary says about a request,
// DB spans before their request, late spans (a superseding summary), and the deterministic id.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SpanRecord } from '../../collector/core/api.js';
import { buildSummary, classifyStatement, joinRecords, normalizeSql, summaryIdOf, type StoredSpan } from './join.js';
import { flat, querySpans, requestSpans, sampleRequest, storeWith } from './traces.fixture.js';
import { hostKeyOf, openerOf, workerOf } from './workers.js';

const options = { slowestQueries: 3, nPlusOneThreshold: 5, toleranceMs: 2 };

test('worker identity: a request span (host.name, process.pid) and a DB span with the worker tag (bitville.opener.*) name the same process', () => {
  // The PHP agent's key: substr(hash('sha256', gethostname()), 0, 8).
  assert.equal(hostKeyOf('web-1'), 'c4719afa');
  const r = sampleRequest({ pid: 4242, queries: [{ sql: 'SELECT 1', atMs: 1, ms: 1 }] });
  const span = (body: unknown): SpanRecord => {
    const [record] = flat(body);
    assert.equal(record?.kind, 'span');
    return record as SpanRecord;
  };
  const request = span(requestSpans(r));
  const opened = (pid: number, hostKey: string) => span(querySpans(r, [{ sql: 'SELECT 1', atMs: 1, ms: 1, attributes: { 'bitville.opener.pid': pid, 'bitville.opener.host_key': hostKey } }]));
  assert.equal(openerOf(opened(4242, 'c4719afa')), workerOf(request));
  assert.notEqual(openerOf(opened(4243, 'c4719afa')), workerOf(request));
  assert.notEqual(openerOf(opened(4242, hostKeyOf('web-2'))), workerOf(request));
  // A plain `req:<id>` tag: the DB span names no process.
  assert.equal(openerOf(span(querySpans(r))), undefined);
});

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

test('normalizeSql in one pass: casts, dollar quotes, prefixed strings, spaced IN lists, trailing semicolons', () => {
  assert.equal(normalizeSql("SELECT x::int FROM t WHERE a = E'\\n' AND b = $$it's$$ AND c IN ( 1 , 2 )  ;"), 'select x::int from t where a = ? and b = ? and c in (?)');
  assert.equal(normalizeSql('SELECT f(1, a) FROM t WHERE id IN (?, ?, ?)'), 'select f(?, a) from t where id in (?)');
  assert.equal(normalizeSql('SELECT 1.5e3, .5, -- c\n "Mixed"  /* a /* nested */ b */ FROM t'), 'select ?, ?, "mixed" from t');
  assert.equal(normalizeSql(''), '');
});

test('classifyStatement: driver and pooler housekeeping, transaction control, the application\'s queries', () => {
  const of = (sql: string) => classifyStatement(normalizeSql(sql));
  for (const sql of ['DEALLOCATE pdo_stmt_00000001', 'RESET ALL', 'DISCARD ALL', "SET application_name = 'req:abc'", 'SET SESSION application_name TO DEFAULT', "SET application_name='req:abc'", 'set client_encoding to \'UTF8\'', 'SELECT pg_advisory_unlock_all()']) {
    assert.equal(of(sql), 'housekeeping', sql);
  }
  for (const sql of ['BEGIN', 'START TRANSACTION', 'COMMIT', 'ROLLBACK', 'SAVEPOINT a', 'RELEASE SAVEPOINT a', 'END']) assert.equal(of(sql), 'transaction', sql);
  for (const sql of ['SELECT 1', 'SET search_path TO app', 'PREPARE q AS SELECT 1', 'UPDATE t SET application_name = 1']) assert.equal(of(sql), 'query', sql);
});

test('re-delivered spans (same span ids stored twice) change nothing: no new summary, same counts and DB time', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest();
  r.queries.forEach((q, i) => (q.spanId = `${'d'.repeat(14)}${String(i).padStart(2, '0')}`));
  const body = [...flat(requestSpans(r)), ...flat(querySpans(r))];
  await store.append(body);
  const first = buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options), options)!;
  await store.append([first]);
  // An agent retries the whole batch: every span stored a second time.
  await store.append([...flat(requestSpans(r)), ...flat(querySpans(r))]);
  const again = joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options);
  assert.equal(buildSummary(again, options), undefined, 'nothing new: no superseding summary');
  assert.equal(again.counted.length, 8);
  assert.equal(again.dbTimeMs, first.attributes['bitville.db_time_ms']);
  // Even joined from scratch (no summary yet), the copies count once.
  const fresh = buildSummary({ ...again, summaries: [] }, options)!;
  assert.equal(fresh.attributes['bitville.db_query_count'], 8);
  assert.equal(fresh.attributes['bitville.db_time_ms'], 12 + 6 * 10 + 380);
  assert.equal(fresh.spanId, first.spanId, 'the same records covered: the same summary id');
});

test('only statements inside the request window count; DB time is the union, never more than the request', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest({ durationMs: 300 }, 0);
  r.queries = [
    // Two overlapping statements (two connections of one request): 100 ms of DB time, not 150.
    { sql: 'SELECT * FROM a WHERE id = 1', atMs: 10, ms: 100 },
    { sql: 'SELECT * FROM b WHERE id = 1', atMs: 60, ms: 50 },
    // 1 ms before the request: clock skew within the tolerance; clipped to the request.
    { sql: 'SELECT 1', atMs: -1, ms: 3 },
    // Driver housekeeping: shown, not counted.
    { sql: 'DEALLOCATE pdo_stmt_00000001', atMs: 120, ms: 1 },
    // A sampled end 30 ms late, with the agent saying so: still inside.
    { sql: 'SELECT * FROM c', atMs: 250, ms: 70, attributes: { 'bitville.end_uncertainty_ms': 25 } },
    // A minute after the request, carrying its tag (a persistent connection): not this request's.
    { sql: 'SELECT * FROM a WHERE id = 2', atMs: 60_000, ms: 400 },
    // Starts inside but ends well after the request, beyond the agent's uncertainty.
    { sql: 'SELECT * FROM d', atMs: 290, ms: 200, attributes: { 'bitville.end_uncertainty_ms': 5 } },
  ];
  await store.append([...flat(requestSpans(r)), ...flat(querySpans(r))]);
  const j = joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options);
  const placement = Object.fromEntries(j.queries.map((q) => [q.text, q.placement]));
  assert.deepEqual(placement, {
    'SELECT 1': 'counted',
    'SELECT * FROM a WHERE id = 1': 'counted',
    'SELECT * FROM b WHERE id = 1': 'counted',
    'DEALLOCATE pdo_stmt_00000001': 'housekeeping',
    'SELECT * FROM c': 'counted',
    'SELECT * FROM d': 'outside_window',
    'SELECT * FROM a WHERE id = 2': 'outside_window',
  });
  const s = buildSummary(j, options)!;
  assert.equal(s.attributes['bitville.db_query_count'], 4);
  assert.equal(s.attributes['bitville.db_housekeeping_count'], 1);
  assert.equal(s.attributes['bitville.db_unattributed_count'], 2);
  // [0,2) clipped + [10,110) + [250,300) clipped to the request's end.
  assert.equal(s.attributes['bitville.db_time_ms'], 2 + 100 + 50);
  assert.ok((s.attributes['bitville.db_time_ms'] as number) <= s.durationMs);
});

test('N+1 ignores housekeeping and transaction control: pdo_pgsql\'s DEALLOCATE after each statement is not doubled', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest({}, 0);
  r.queries = [];
  for (let i = 0; i < 6; i++) {
    r.queries.push({ sql: 'BEGIN', atMs: 10 + i * 50, ms: 1 });
    r.queries.push({ sql: `SELECT * FROM items WHERE id = ${i}`, atMs: 12 + i * 50, ms: 5 });
    r.queries.push({ sql: `DEALLOCATE pdo_stmt_0000000${i}`, atMs: 18 + i * 50, ms: 1 });
    r.queries.push({ sql: 'COMMIT', atMs: 20 + i * 50, ms: 2 });
  }
  await store.append([...flat(requestSpans(r)), ...flat(querySpans(r))]);
  const s = buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options), options)!;
  assert.equal(s.attributes['bitville.db_query_count'], 18, '6 SELECTs, 6 BEGINs, 6 COMMITs');
  assert.equal(s.attributes['bitville.db_housekeeping_count'], 6);
  assert.equal(s.attributes['bitville.db_time_ms'], 6 * (1 + 5 + 2));
  assert.deepEqual(s.attributes['bitville.repeated_queries'], [{ query: 'select * from items where id = ?', count: 6, total_ms: 30 }]);
});

test('a persistent connection still tagged with an ended request: the next request\'s statements stay unattributed', async (t) => {
  const store = await storeWith(t);
  // Request A opened the connection (PGAPPNAME = req:A) and ran two statements; the worker's
  // next request reused it 8 ms after A ended, and its statements still carry A's tag.
  const a = sampleRequest({ durationMs: 200 }, 0);
  a.queries = [
    { sql: 'SELECT * FROM users WHERE id = 1', atMs: 20, ms: 30 },
    { sql: 'SELECT * FROM carts WHERE user_id = 1', atMs: 80, ms: 40 },
    { sql: 'RESET ALL', atMs: 208, ms: 0.1 },
    { sql: 'SELECT * FROM users WHERE id = 2', atMs: 210, ms: 300 },
    { sql: 'SELECT * FROM orders WHERE user_id = 2', atMs: 520, ms: 80 },
  ];
  await store.append([...flat(requestSpans(a)), ...flat(querySpans(a))]);
  const s = buildSummary(joinRecords(a.correlationId, await store.byCorrelationId(a.correlationId), options), options)!;
  assert.equal(s.attributes['bitville.db_query_count'], 2);
  assert.equal(s.attributes['bitville.db_time_ms'], 70);
  assert.equal(s.attributes['bitville.db_unattributed_count'], 3);
  assert.equal(s.attributes['bitville.n_plus_one'], false);
});

test('statements attributed by worker: counted and marked inside the window, once each, and they move the summary id', async (t) => {
  const store = await storeWith(t);
  const b = sampleRequest({ durationMs: 300, queries: [{ sql: 'SELECT 1 /* own */', atMs: 10, ms: 5 }] });
  // Spans tagged with another id, as workers.ts hands them over: two in B's window (one sent twice), one after it.
  const a = { ...b, correlationId: b.correlationId.replace(/^./, (c) => (c === 'f' ? '0' : 'f')) };
  const lentQueries = [
    { sql: 'SELECT * FROM carts WHERE id = 7', atMs: 50, ms: 20, spanId: 'b'.repeat(16) },
    { sql: 'RESET ALL', atMs: 80, ms: 0.1, spanId: 'c'.repeat(16) },
    { sql: 'SELECT * FROM late', atMs: 400, ms: 5, spanId: 'd'.repeat(16) },
  ];
  await store.append(flat(requestSpans(b)));
  await store.append(flat(querySpans(b)));
  const own = await store.byCorrelationId(b.correlationId);
  const first = buildSummary(joinRecords(b.correlationId, own, options), options)!;
  await store.append(flat(querySpans(a, lentQueries)));
  await store.append(flat(querySpans(a, lentQueries.slice(0, 1))));
  const lent = (await store.byCorrelationId(a.correlationId)).filter((r) => r.kind === 'span') as StoredSpan[];
  const j = joinRecords(b.correlationId, own, options, lent);
  assert.deepEqual(
    j.queries.map((q) => [q.text, q.placement, q.attributedBy]),
    [
      ['SELECT 1 /* own */', 'counted', 'tag'],
      ['SELECT * FROM carts WHERE id = 7', 'counted', 'worker'],
      ['RESET ALL', 'housekeeping', 'worker'],
    ],
    'the one after the window is left out; the re-sent copy counts once',
  );
  const s = buildSummary({ ...j, summaries: [] }, options)!;
  assert.equal(s.attributes['bitville.db_query_count'], 2);
  assert.equal(s.attributes['bitville.db_worker_attributed_count'], 1);
  assert.equal(s.attributes['bitville.db_time_ms'], 25);
  assert.notEqual(s.spanId, first.spanId, 'the lent statements are part of what the summary covers');
  assert.equal(j.lastRecordId, lent.find((x) => x.spanId === 'c'.repeat(16))!.id, 'covered up to the newest first copy in the window');
});
