// Attribution by PHP worker through a real collector: statements tagged with an earlier request's
// id (a persistent connection) that ran while a later request of the same host and worker pid
// was running are counted for that later request, in either order of arrival, after a restart,
// and never twice; without exactly one such request they stay unattributed. The process is known
// from the tag's request span or, with the PHP agent's worker tag, from the DB span itself (then
// the tag's request need never have been sent).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { postTraces, querySpans, requestSpans, sampleRequest, type FixtureQuery, type FixtureRequest } from '../plugins/correlate/traces.fixture.js';
import { hostKeyOf } from '../plugins/correlate/workers.js';
import { eventually, readStore, startCollector, type RunningCollector } from './collector.js';

const withCorrelate = (window: string) => ({
  processors: { correlate: { window } },
  service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
});

type Attrs = Record<string, unknown>;
const summariesOf = (c: RunningCollector, id: string): Attrs[] =>
  readStore(c.dbPath)
    .filter((r) => r.kind === 'summary' && r.correlation_id === id)
    .map((r) => r.record.attributes as Attrs);
const newest = (c: RunningCollector, id: string) => summariesOf(c, id).at(-1);
const summarized = (c: RunningCollector, id: string, check: (a: Attrs) => boolean, what: string) =>
  eventually(() => {
    const s = newest(c, id);
    return s && check(s) ? s : undefined;
  }, 10_000, what);

async function metric(c: RunningCollector, name: string): Promise<number> {
  const text = await (await fetch(`${c.adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name}\\{processor="correlate"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const PID = 4242;
let spanSeq = 0;
const sid = () => (++spanSeq).toString(16).padStart(16, 'a');

/** A (opens the persistent connection, one statement of its own) and B (the next request on its worker, 1 s later). */
function scenario(): { a: FixtureRequest; b: FixtureRequest; stale: FixtureQuery[] } {
  const startMs = Date.now() - 10_000;
  const a = sampleRequest({ startMs, durationMs: 300, pid: PID, queries: [{ sql: 'SELECT id FROM sessions WHERE token = $1', atMs: 10, ms: 5, spanId: sid() }] });
  const b = sampleRequest({ startMs: startMs + 1000, durationMs: 300, pid: PID, queries: [] });
  // Run by B on A's connection, so tagged with A's id: offsets are from A's start.
  const stale = [
    { sql: 'SELECT * FROM carts WHERE id = 7', atMs: 1020, ms: 30, spanId: sid() },
    { sql: 'SELECT * FROM cart_items WHERE cart_id = 7', atMs: 1080, ms: 40, spanId: sid() },
  ];
  return { a, b, stale };
}

test('statements on a stale-tagged connection arriving after the later request was summarized: a revision of that request counts them; re-posting changes nothing', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const { a, b, stale } = scenario();
  await postTraces(c.otlpUrl, requestSpans(a));
  await postTraces(c.otlpUrl, querySpans(a));
  await postTraces(c.otlpUrl, requestSpans(b));
  await summarized(c, b.correlationId, (s) => s['bitville.db_query_count'] === 0, "B's first summary");
  await summarized(c, a.correlationId, (s) => s['bitville.db_query_count'] === 1, "A's summary");

  await postTraces(c.otlpUrl, querySpans(a, stale));
  const rb = await summarized(c, b.correlationId, (s) => s['bitville.db_query_count'] === 2, "B's revision with its statements");
  assert.equal(rb['bitville.db_worker_attributed_count'], 2);
  assert.equal(rb['bitville.summary.revision'], 2);
  assert.ok((rb['bitville.db_time_ms'] as number) >= 70 - 1e-9);
  const ra = await summarized(c, a.correlationId, (s) => s['bitville.db_unattributed_count'] === 2, "A's summary after the stale statements");
  assert.equal(ra['bitville.db_query_count'], 1, 'A does not count what B ran');
  assert.equal(ra['bitville.db_worker_attributed_count'], 0);

  const view = (await (await fetch(`${c.adminUrl}/api/requests/${b.correlationId}`)).json()) as { queryCount: number; queries: { text: string; placement: string; attributedBy: string }[] };
  assert.equal(view.queryCount, 2);
  assert.deepEqual(view.queries.map((q) => [q.text, q.placement, q.attributedBy]), stale.map((q) => [q.sql, 'counted', 'worker']));

  // Re-posting every span (same span ids): joined again, no summary changes.
  const before = { a: summariesOf(c, a.correlationId).length, b: summariesOf(c, b.correlationId).length };
  const joins = await metric(c, 'bitville_correlate_joins_total');
  await postTraces(c.otlpUrl, requestSpans(a));
  await postTraces(c.otlpUrl, querySpans(a, [...a.queries, ...stale]));
  await postTraces(c.otlpUrl, requestSpans(b));
  await eventually(async () => ((await metric(c, 'bitville_correlate_joins_total')) >= joins + 2 && (await metric(c, 'bitville_correlate_pending')) === 0) || undefined, 10_000, 'the re-posted ids joined');
  assert.deepEqual({ a: summariesOf(c, a.correlationId).length, b: summariesOf(c, b.correlationId).length }, before);
  await c.stop();
});

test('statements on a stale-tagged connection arriving before the request that ran them: its first summary counts them', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const { a, b, stale } = scenario();
  await postTraces(c.otlpUrl, requestSpans(a));
  await postTraces(c.otlpUrl, querySpans(a, [...a.queries, ...stale]));
  await summarized(c, a.correlationId, (s) => s['bitville.db_unattributed_count'] === 2, "A's summary, B's statements unattributed");
  await postTraces(c.otlpUrl, requestSpans(b));
  const rb = await summarized(c, b.correlationId, () => true, "B's summary");
  assert.equal(rb['bitville.db_query_count'], 2);
  assert.equal(rb['bitville.db_worker_attributed_count'], 2);
  assert.equal(rb['bitville.summary.revision'], 1);
  assert.equal(newest(c, a.correlationId)!['bitville.db_query_count'], 1);
  await c.stop();
});

test('no request of the worker, two at once, or another worker: the statement stays unattributed', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const { a } = scenario();
  // Two requests of the same process overlapping (a threaded server), and one of another process.
  const b1 = sampleRequest({ startMs: a.startMs + 1000, durationMs: 300, pid: PID, queries: [] });
  const b2 = sampleRequest({ startMs: a.startMs + 1100, durationMs: 300, pid: PID, queries: [] });
  const other = sampleRequest({ startMs: a.startMs + 2000, durationMs: 300, pid: PID + 1, queries: [] });
  const stale = [
    { sql: 'SELECT 1 /* both b1 and b2 were running */', atMs: 1150, ms: 10, spanId: sid() },
    { sql: 'SELECT 2 /* only the other worker was running */', atMs: 2100, ms: 10, spanId: sid() },
    { sql: 'SELECT 3 /* no request was running */', atMs: 3000, ms: 10, spanId: sid() },
  ];
  for (const r of [a, b1, b2, other]) await postTraces(c.otlpUrl, requestSpans(r));
  await postTraces(c.otlpUrl, querySpans(a, [...a.queries, ...stale]));
  const ra = await summarized(c, a.correlationId, (s) => s['bitville.db_unattributed_count'] === 3, "A's summary");
  assert.equal(ra['bitville.db_query_count'], 1);
  for (const r of [b1, b2, other]) {
    const s = await summarized(c, r.correlationId, () => true, 'summary');
    assert.equal(s['bitville.db_query_count'], 0, `${r.startMs - a.startMs} ms request counts nothing`);
  }
  await c.stop();
});

test('across a restart: a pending join is completed from the store, and a statement after the restart reaches a request summarized before it', async (t) => {
  const first = await startCollector(t, { config: withCorrelate('1h') });
  const one = scenario();
  await postTraces(first.otlpUrl, requestSpans(one.a));
  await postTraces(first.otlpUrl, querySpans(one.a, [...one.a.queries, ...one.stale]));
  await postTraces(first.otlpUrl, requestSpans(one.b));
  await first.kill();

  const second = await startCollector(t, { dir: first.dir, config: withCorrelate('300ms') });
  const rb = await summarized(second, one.b.correlationId, () => true, "B's summary after the restart");
  assert.equal(rb['bitville.db_query_count'], 2);
  assert.equal(rb['bitville.db_worker_attributed_count'], 2);

  // B summarized, then a restart, then B's statements arrive: the new process never saw B pass.
  const two = scenario();
  await postTraces(second.otlpUrl, requestSpans(two.a));
  await postTraces(second.otlpUrl, querySpans(two.a));
  await postTraces(second.otlpUrl, requestSpans(two.b));
  await summarized(second, two.b.correlationId, (s) => s['bitville.db_query_count'] === 0, "B's first summary");
  await second.kill();
  const third = await startCollector(t, { dir: first.dir, config: withCorrelate('300ms') });
  await postTraces(third.otlpUrl, querySpans(two.a, two.stale));
  const revised = await summarized(third, two.b.correlationId, (s) => s['bitville.db_query_count'] === 2, "B's revision after the restart");
  assert.equal(revised['bitville.db_worker_attributed_count'], 2);
  await third.stop();
});

/** The pg-agent's attributes for a statement on a connection tagged `req:<id>/<pid>@<host key>`. */
const openedBy = (pid: number, host = 'web-1') => ({ 'bitville.opener.pid': pid, 'bitville.opener.host_key': hostKeyOf(host) });

test('worker tag, opener never sent (fast): statements are counted for the request that ran them, in either order of arrival; another process\'s stay unattributed', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const { a, b } = scenario();
  // A's request span never arrives: A was below the PHP agent's threshold.
  const stale = [
    { sql: 'SELECT * FROM carts WHERE id = 7', atMs: 1020, ms: 30, spanId: sid(), attributes: openedBy(PID) },
    // Same time, but the tag names another process (or another host): not B's.
    { sql: 'SELECT 2 /* another pid */', atMs: 1100, ms: 10, spanId: sid(), attributes: openedBy(PID + 1) },
    { sql: 'SELECT 3 /* another host */', atMs: 1150, ms: 10, spanId: sid(), attributes: openedBy(PID, 'web-2') },
  ];
  const late = [{ sql: 'SELECT * FROM cart_items WHERE cart_id = 7', atMs: 1080, ms: 40, spanId: sid(), attributes: openedBy(PID) }];
  // Before B's request span: B's first summary counts what its process ran.
  await postTraces(c.otlpUrl, querySpans(a, [...a.queries.map((q) => ({ ...q, attributes: openedBy(PID) })), ...stale]));
  await eventually(async () => ((await metric(c, 'bitville_correlate_incomplete_total')) >= 1) || undefined, 10_000, "A's join without its request span");
  await postTraces(c.otlpUrl, requestSpans(b));
  const first = await summarized(c, b.correlationId, () => true, "B's summary");
  assert.equal(first['bitville.db_query_count'], 1);
  assert.equal(first['bitville.db_worker_attributed_count'], 1);
  // After B's summary: A's id is joined (no request span still), and B is joined again.
  await postTraces(c.otlpUrl, querySpans(a, late));
  const revised = await summarized(c, b.correlationId, (s) => s['bitville.db_query_count'] === 2, "B's revision with the late statement");
  assert.equal(revised['bitville.db_worker_attributed_count'], 2);
  assert.ok((revised['bitville.db_time_ms'] as number) >= 70 - 1e-9);
  const view = (await (await fetch(`${c.adminUrl}/api/requests/${b.correlationId}`)).json()) as { queries: { text: string; attributedBy: string }[] };
  assert.deepEqual(view.queries.map((q) => [q.text, q.attributedBy]).sort(), [[stale[0]!.sql, 'worker'], [late[0]!.sql, 'worker']].sort());
  assert.equal(summariesOf(c, a.correlationId).length, 0, 'A, never sent, has no summary');
  await c.stop();
});

test('worker tag: the tag alone names the process when the opener\'s request span carries no pid; the opener keeps its own statement', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const { a, b } = scenario();
  // A's span is stored with no process.pid (a sender without it): only the tag says where A ran.
  const aNoPid = { ...a, pid: undefined };
  const own = a.queries.map((q) => ({ ...q, attributes: openedBy(PID) }));
  const stale = [{ sql: 'SELECT * FROM carts WHERE id = 9', atMs: 1020, ms: 30, spanId: sid(), attributes: openedBy(PID) }];
  await postTraces(c.otlpUrl, requestSpans(aNoPid));
  await postTraces(c.otlpUrl, requestSpans(b));
  await postTraces(c.otlpUrl, querySpans(a, [...own, ...stale]));
  const rb = await summarized(c, b.correlationId, (s) => s['bitville.db_query_count'] === 1, "B's summary");
  assert.equal(rb['bitville.db_worker_attributed_count'], 1);
  const ra = await summarized(c, a.correlationId, (s) => s['bitville.db_unattributed_count'] === 1, "A's summary");
  assert.equal(ra['bitville.db_query_count'], 1, 'A keeps its own statement');
  await c.stop();
});

test('worker tag, opener never sent: statements that are the opener id\'s first records and arrive after the request that ran them was summarized reach its revision', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const { a, b } = scenario();
  await postTraces(c.otlpUrl, requestSpans(b));
  await summarized(c, b.correlationId, (s) => s['bitville.db_query_count'] === 0, "B's first summary");
  // A's id is joined from what the processor kept of these records (not read back).
  const stale = [{ sql: 'SELECT * FROM carts WHERE id = 8', atMs: 1020, ms: 30, spanId: sid(), attributes: openedBy(PID) }];
  await postTraces(c.otlpUrl, querySpans(a, stale));
  const rb = await summarized(c, b.correlationId, (s) => s['bitville.db_query_count'] === 1, "B's revision");
  assert.equal(rb['bitville.db_worker_attributed_count'], 1);
  assert.equal(rb['bitville.summary.revision'], 2);
  await c.stop();
});
