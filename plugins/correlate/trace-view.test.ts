// The trace view on records read back from a real SQLite store: when a summary is "pending"
// (only while a join can still happen), and how the span tree nests, orders and survives odd
// input (a parent never stored, a re-delivered span, a parent cycle).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildSummary, DEFAULT_JOIN_OPTIONS, joinRecords } from './join.js';
import { formatWaterfall, traceOf } from './lookup.js';
import { flat, newCorrelationId, querySpans, requestSpans, sampleRequest, storeWith } from './traces.fixture.js';

const WINDOW = 10_000;


/** OTLP JSON for plain spans of one trace: [spanId, parentSpanId, name, kind, startMs, endMs]. */
function spans(traceId: string, list: [string, string, string, number, number, number][]) {
  const base = Date.parse('2026-11-25T10:00:00Z');
  const ns = (ms: number) => String(BigInt(base + ms) * 1_000_000n);
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'worker' } }] },
        scopeSpans: [{ scope: { name: 'job' }, spans: list.map(([spanId, parentSpanId, name, kind, from, to]) => ({ traceId, spanId, parentSpanId, name, kind, startTimeUnixNano: ns(from), endTimeUnixNano: ns(to) })) }],
      },
    ],
  };
}

test('pending only while a join can still happen: DB spans or a request span within the window', async (t) => {
  const store = await storeWith(t);
  const view = async (id: string, now: number) => (await traceOf(store, id, DEFAULT_JOIN_OPTIONS, { windowMs: WINDOW, now }))!;

  // DB spans only: pending within the window (the request span may still come), then not.
  const dbOnly = sampleRequest();
  await store.append(flat(querySpans(dbOnly)));
  const arrived = Date.now();
  assert.equal((await view(dbOnly.correlationId, arrived)).summaryState, 'pending');
  assert.match(formatWaterfall(await view(dbOnly.correlationId, arrived)), /no request span stored yet: only DB spans[\s\S]*not summarized yet: join window open/);
  const later = await view(dbOnly.correlationId, arrived + WINDOW + 1_000);
  assert.equal(later.summaryState, 'none');
  assert.doesNotMatch(formatWaterfall(later), /yet|window open|pending/);

  // A request: pending within the window, "not made" if no join came after it, "made" once summarized.
  const r = sampleRequest();
  await store.append(flat(requestSpans(r)));
  await store.append(flat(querySpans(r)));
  const now = Date.now();
  assert.equal((await view(r.correlationId, now)).summaryState, 'pending');
  assert.equal((await view(r.correlationId, now + WINDOW + 1_000)).summaryState, 'not_made');
  const summary = buildSummary(joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), DEFAULT_JOIN_OPTIONS), DEFAULT_JOIN_OPTIONS)!;
  await store.append([summary]);
  assert.equal((await view(r.correlationId, now)).summaryState, 'made');

  // A trace of INTERNAL spans is complete the moment it is stored.
  const id = newCorrelationId();
  await store.append(flat(spans(id, [['a000000000000001', '', 'job', 1, 0, 50]])));
  const job = await view(id, Date.now());
  assert.equal(job.summaryState, 'none');
  assert.match(formatWaterfall(job), new RegExp(`^trace ${id} \\(worker\\)\n`));
  assert.doesNotMatch(formatWaterfall(job), /yet|window open|pending/);
});

test('span tree: nesting by parent, children by start, orphans and cycles kept, re-deliveries once', async (t) => {
  const store = await storeWith(t);
  const id = newCorrelationId();
  const batch = spans(id, [
    ['0000000000000001', '', 'root', 1, 0, 100],
    ['0000000000000003', '0000000000000001', 'second child', 1, 60, 90],
    ['0000000000000002', '0000000000000001', 'first child', 3, 10, 50],
    ['0000000000000004', '0000000000000002', 'grandchild', 1, 20, 30],
    // Its parent was never stored (sampled away upstream): shown as a root, not lost.
    ['0000000000000005', '00000000000000ff', 'orphan', 4, 5, 15],
    // A parent cycle from a broken sender: both shown, no endless loop.
    ['0000000000000006', '0000000000000007', 'cycle a', 1, 70, 80],
    ['0000000000000007', '0000000000000006', 'cycle b', 1, 71, 79],
  ]);
  await store.append(flat(batch));
  await store.append(flat(batch)); // re-delivered: the same spans, once
  const tree = (await traceOf(store, id, DEFAULT_JOIN_OPTIONS, { windowMs: WINDOW }))!.trace;
  assert.deepEqual(
    tree.spans.map((s) => `${'  '.repeat(s.depth)}${s.name} ${s.kind}`),
    ['root internal', '  first child client', '    grandchild internal', '  second child internal', 'orphan producer', 'cycle a internal', '  cycle b internal'],
  );
  assert.deepEqual(tree.spans.map((s) => s.offsetMs), [0, 10, 20, 60, 5, 70, 71]);
  assert.equal(tree.extentMs, 100);
  assert.deepEqual(tree.services, ['worker']);
});

test("span tree of a PHP request: the join's statements nest under the request span, an unattributed one stays apart", async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest({}, 2);
  r.queries.push({ sql: 'SELECT 1 /* a later request on the same persistent connection */', atMs: 60_000, ms: 1 });
  await store.append(flat(requestSpans(r)));
  await store.append(flat(querySpans(r)));
  const v = (await traceOf(store, r.correlationId, DEFAULT_JOIN_OPTIONS, { windowMs: WINDOW }))!;
  assert.deepEqual(
    v.trace.spans.map((s) => [s.depth, s.kind, s.statement ?? s.name, s.joinedByCorrelation]),
    [
      [0, 'server', 'GET /orders.php', false],
      [1, 'client', 'SELECT id, name FROM orders WHERE customer_id = 42', true],
      [1, 'client', 'SELECT * FROM order_items WHERE order_id = 100', true],
      [1, 'client', 'SELECT * FROM order_items WHERE order_id = 101', true],
      [1, 'client', "SELECT sum(total) FROM invoices WHERE created_at > '2026-01-01'", true],
      [0, 'client', 'SELECT 1 /* a later request on the same persistent connection */', false],
    ],
  );
  const text = formatWaterfall(v, 40);
  assert.match(text, /\n\|[^|]+\|\s+600\.0 ms {2}GET \/orders\.php \(server, shop\)\n\|[^|]+\|\s+12\.0 ms {4}SELECT \(client, shop\) {2}SELECT id, name FROM orders WHERE customer_id = 42\n/);
});
