// The overview's pure parts: the histogram's error bound, how a request is filed under an
// endpoint, and a request's rollup figures (and their take-back) from a real join.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketField, observe, quantiles, RELATIVE_ERROR } from './histogram.js';
import { collapseIds, endpointOf } from './rollup-names.js';
import { contributionOf } from './rollup.js';
import { joinRecords, type StoredSpan } from './join.js';
import { flat, querySpans, requestSpans, sampleRequest } from './traces.fixture.js';

test('percentiles from the log histogram are within the stated bound of the exact nearest-rank values', () => {
  const values = Array.from({ length: 5000 }, (_, i) => 0.05 * 1.0021 ** i * (1 + (i % 7) / 100));
  const fields: Record<string, number> = {};
  for (const v of values) observe(fields, v);
  const sorted = [...values].sort((a, b) => a - b);
  for (const q of [0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
    const exact = sorted[Math.ceil(q * sorted.length) - 1]!;
    const [estimate] = quantiles(fields, [q]);
    assert.ok(Math.abs(estimate! - exact) / exact <= RELATIVE_ERROR, `q${q}: ${estimate} vs ${exact}`);
  }
  assert.ok(RELATIVE_ERROR < 0.02);
  assert.deepEqual(quantiles({}, [0.5]), [undefined]);
  assert.equal(bucketField(0), 'h_low');
  // Taken back, a histogram is empty again.
  for (const v of values) observe(fields, v, -1);
  assert.ok(Object.values(fields).every((c) => c === 0));
});

test('endpoints: http.route when given, else the URL path with ids collapsed, with the method', () => {
  assert.equal(collapseIds('/users/42/orders/9f3e2a1b77c0'), '/users/:id/orders/:id');
  assert.equal(collapseIds('/a/123e4567-e89b-12d3-a456-426614174000/b'), '/a/:id/b');
  assert.equal(collapseIds('/blog/hello-world/feed'), '/blog/hello-world/feed');
  assert.equal(collapseIds('/t/AbCdEfGh12345678xyz'), '/t/:id');
  const span = (attributes: Record<string, string>) => ({ attributes, name: 'GET /x' }) as unknown as Parameters<typeof endpointOf>[0];
  assert.equal(endpointOf(span({ 'http.request.method': 'GET', 'http.route': '/users/{id}', 'url.full': 'http://h/users/7' })), 'GET /users/{id}');
  assert.equal(endpointOf(span({ 'http.request.method': 'POST', 'url.full': 'http://h/cart/17/items?x=1' })), 'POST /cart/:id/items');
  assert.equal(endpointOf(span({ 'http.request.method': 'GET', 'url.path': '/p/8' })), 'GET /p/:id');
  assert.equal(endpointOf(span({})), 'GET /x');
});

test("a request's figures: its endpoint and each statement once; taken back with the opposite sign", () => {
  const r = sampleRequest({ durationMs: 600, status: 503 });
  let id = 0;
  const records = [...flat(requestSpans(r)), ...flat(querySpans(r))].map((x) => ({ ...x, id: ++id, receivedAtMs: 0 }) as StoredSpan);
  const joined = joinRecords(r.correlationId, records);
  const [endpoint, ...statements] = contributionOf(joined, 1);
  assert.equal(endpoint!.key, 'GET /orders.php');
  assert.deepEqual({ ...endpoint!.add, [bucketField(600)]: undefined }, { n: 1, ms: 600, db: joined.dbTimeMs, q: 8, err: 1, np1: 1, [bucketField(600)]: undefined });
  assert.equal(endpoint!.add[bucketField(600)], 1);
  assert.equal(statements.length, 3);
  const items = statements.find((s) => s.key === 'select * from order_items where order_id = ?')!;
  assert.equal(items.add.calls, 6);
  assert.equal(items.add.reqs, 1);
  assert.equal(items.add.np1, 1);
  assert.equal(items.add.ms, 60);
  const back = contributionOf(joined, -1);
  assert.deepEqual(back.map((d) => d.add.n ?? d.add.calls), [-1, -1, -6, -1]);
});
