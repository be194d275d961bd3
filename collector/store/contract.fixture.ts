// The store contract (core/store.ts and RecordReader in core/api.ts) as one test suite, run
// against every implementation by contract.test.ts. Implementation-specific behaviour (SQLite's
// file and migrations, PostgreSQL's claims, partitions and LISTEN) is tested beside each store.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { DerivedRecord, FlatRecord, SpanRecord } from '../core/model.js';
import type { Store } from '../core/store.js';
import { log, span, summary } from './records.fixture.js';
import { attachRollup } from '../core/rollup.js';

export interface OpenOptions {
  now?: () => number;
  retentionMs?: number;
  maxSizeBytes?: number;
}

export interface StoreUnderTest {
  name: string;
  /** Why the implementation cannot be tested here (its server does not answer), or undefined. */
  missing(): Promise<string | undefined>;
  /** A fresh place for one store (a file, a schema), removed after the test. */
  place(t: TestContext): string;
  /** Opens the store at the place; it is closed after the test (closing twice is harmless). */
  open(t: TestContext, place: string, options?: OpenOptions): Store;
}

const DAY = 86_400_000;
const spans = (from: number, count: number) => Array.from({ length: count }, (_, i) => span(from + i)) as FlatRecord[];

export function storeContract(impl: StoreUnderTest): void {
  const it = (name: string, body: (t: TestContext) => Promise<void>) =>
    test(`${impl.name}: ${name}`, async (t) => {
      const missing = await impl.missing();
      if (missing) return void t.skip(missing);
      await body(t);
    });

  it('each exporter reads its own backlog oldest first, marking is exact, routes follow signals, progress survives reopening', async (t) => {
    const place = impl.place(t);
    const store = impl.open(t, place);
    await store.configureExporters([
      { id: 'gelf', signals: ['traces', 'logs'] },
      { id: 'debug', signals: ['logs'] },
      { id: 'otlp', signals: ['traces'] },
    ]);
    await store.append([span(1), log(2), span(3)]);
    await store.append([span(4), log(5)]);
    const first = await store.pending('gelf', 2);
    assert.deepEqual(first.map((r) => r.id), [1, 2]);
    assert.equal((first[0] as SpanRecord).name, 'span 1');
    assert.equal(typeof first[0]!.receivedAtMs, 'number');
    // Marking is exact: a record in the middle, not a prefix.
    await store.markDelivered('gelf', [1, 3]);
    assert.deepEqual((await store.pending('gelf', 10)).map((r) => r.id), [2, 4, 5]);
    assert.equal(await store.backlog('gelf'), 3);
    assert.deepEqual((await store.pending('debug', 10)).map((r) => r.id), [2, 5], 'the logs-only exporter never sees spans');
    assert.deepEqual((await store.pending('otlp', 10)).map((r) => r.id), [1, 3, 4], 'the traces-only exporter never sees logs');
    await store.markDelivered('debug', [2, 5]);
    assert.equal(await store.backlog('debug'), 0);
    await assert.rejects(store.pending('nobody', 1), /not configured/);
    await store.close();

    // Reopened: progress kept; a newly configured exporter starts with what arrives from now on.
    const again = impl.open(t, place);
    await again.configureExporters([
      { id: 'gelf', signals: ['traces', 'logs'] },
      { id: 'gelf/audit', signals: ['traces'] },
    ]);
    assert.deepEqual((await again.pending('gelf', 10)).map((r) => r.id), [2, 4, 5]);
    assert.deepEqual(await again.pending('gelf/audit', 10), []);
    assert.equal(await again.backlog('gelf/audit'), 0);
    await again.append([span(6)]);
    assert.deepEqual((await again.pending('gelf/audit', 10)).map((r) => r.id), [6]);
    assert.deepEqual((await again.pending('gelf', 10)).map((r) => r.id), [2, 4, 5, 6]);
  });

  it('the commit listener fires after each append that adds records', async (t) => {
    const store = impl.open(t, impl.place(t));
    await store.configureExporters([]);
    let commits = 0;
    const off = store.onCommit(() => commits++);
    await store.append([span(1)]);
    await store.append([]);
    off();
    await store.append([span(2)]);
    assert.equal(commits, 1);
    assert.equal(store.writable(), true);
  });

  it('retention drops records that arrived before the window, with their queue rows', async (t) => {
    let now = Date.parse('2026-03-01T12:00:00Z');
    const store = impl.open(t, impl.place(t), { now: () => now, retentionMs: 3 * DAY });
    await store.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
    await store.append(spans(1, 5));
    now += 2 * DAY;
    await store.append(spans(6, 3));
    now += 2 * DAY; // the first records arrived 4 days ago, the others 2
    assert.equal(await store.enforceLimits(), 5);
    assert.deepEqual(store.stats().dropped, { retention: 5, size: 0 });
    assert.equal(store.stats().rows, 3);
    assert.equal(await store.backlog('gelf'), 3);
    assert.deepEqual((await store.pending('gelf', 10)).map((r) => r.attributes.n), [6, 7, 8]);
    assert.equal(await store.enforceLimits(), 0);
  });

  it('over the size cap the oldest records go first, counted', async (t) => {
    let now = Date.parse('2026-03-01T12:00:00Z');
    const store = impl.open(t, impl.place(t), { now: () => now, maxSizeBytes: 1 });
    await store.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
    for (let day = 0; day < 3; day++) {
      await store.append(spans(day * 2 + 1, 2));
      now += DAY;
    }
    const removed = await store.enforceLimits();
    assert.ok(removed >= 4, `at least the past days go (removed ${removed})`);
    assert.equal(store.stats().dropped.size, removed);
    const left = (await store.pending('gelf', 10)).map((r) => r.attributes.n);
    assert.deepEqual(left, [5, 6].slice(removed - 4), 'what is left is the newest');
    assert.equal(await store.backlog('gelf'), left.length);
  });

  it('component state: absent, set, overwritten; an instance is not told of its own change', async (t) => {
    const store = impl.open(t, impl.place(t));
    await store.configureExporters([]);
    assert.equal(await store.getState('gelf', 'breaker'), undefined);
    let told = 0;
    store.onStateChange(() => told++);
    await store.setState('gelf', 'breaker', '{"state":"open"}');
    assert.equal(await store.getState('gelf', 'breaker'), '{"state":"open"}');
    await store.setState('gelf', 'breaker', '{"state":"closed"}');
    assert.equal(await store.getState('gelf', 'breaker'), '{"state":"closed"}');
    assert.equal(await store.getState('gelf/other', 'breaker'), undefined, 'values are per component');
    assert.equal(told, 0);
  });

  it('reader: a correlation id’s records oldest first', async (t) => {
    const store = impl.open(t, impl.place(t));
    await store.configureExporters([]);
    await store.append([span(1), log(2), span(3)]);
    await store.append([span(4)]);
    assert.deepEqual((await store.byCorrelationId('c1')).map((r) => r.id), [1, 4]);
    assert.deepEqual(await store.byCorrelationId('nope'), []);
  });

  it('reader: a correlation id’s records without their bodies', async (t) => {
    const store = impl.open(t, impl.place(t));
    await store.configureExporters([]);
    await store.append([span(1), log(2), span(4), summary('c1', 10, 'http://x/')]);
    const refs = await store.correlationIndex('c1');
    assert.deepEqual(refs.map((r) => [r.id, r.kind, r.spanId]), [[1, 'span', span(1).spanId], [3, 'span', span(4).spanId], [4, 'summary', '']]);
    assert.ok(refs.every((r) => typeof r.receivedAtMs === 'number' && r.receivedAtMs > 0));
    assert.deepEqual(await store.correlationIndex('nope'), []);
  });

  it('reader: spans of one kind by start time, whatever their correlation id', async (t) => {
    const store = impl.open(t, impl.place(t));
    await store.configureExporters([]);
    const at = (n: number, spanKind: number, startNs: string) => span(n, { spanKind, startTimeUnixNano: startNs, correlationId: `id${n}` });
    await store.append([at(1, 3, '1764064800100000000'), at(2, 2, '1764064800200000000'), at(3, 3, '1764064800300000000'), at(4, 3, '1764064800050000000')]);
    const ids = async (from: string, to: string, kind: number, limit = 10) => (await store.spansStartingBetween(from, to, kind, limit)).map((r) => r.correlationId);
    assert.deepEqual(await ids('1764064800000000000', '1764064800300000000', 3), ['id4', 'id1', 'id3'], 'by start, bounds included');
    assert.deepEqual(await ids('1764064800100000001', '1764064800400000000', 3), ['id3']);
    assert.deepEqual(await ids('1764064800000000000', '1764064800400000000', 2), ['id2']);
    assert.deepEqual(await ids('1764064800000000000', '1764064800400000000', 3, 1), ['id4']);
  });

  it('reader: correlation ids with records newer than their newest summary, since a time', async (t) => {
    let now = 1_000_000;
    const store = impl.open(t, impl.place(t), { now: () => now, retentionMs: 1e12 });
    await store.configureExporters([]);
    await store.append([span(1, { correlationId: 'old' })]);
    now = 2_000_000;
    await store.append([span(2, { correlationId: 'a' }), span(3, { correlationId: 'b' }), span(4, { correlationId: 'c' }), span(5, { correlationId: '' })]);
    await store.append([summary('b', 10, 'http://x/')]);
    now = 2_000_500;
    await store.append([span(6, { correlationId: 'a' })]);
    await store.append([summary('c', 10, 'http://x/')]);
    now = 2_001_000;
    await store.append([span(7, { correlationId: 'c' })]); // a late span after c's summary
    const found = await store.correlationsAfterKind('summary', 1_500_000, 100);
    assert.deepEqual(
      found.map(({ correlationId, lastReceivedAtMs }) => ({ correlationId, lastReceivedAtMs })),
      [
        { correlationId: 'a', lastReceivedAtMs: 2_000_500 },
        { correlationId: 'c', lastReceivedAtMs: 2_001_000 },
      ],
    );
    const [a, c] = found;
    assert.ok(a!.lastId < c!.lastId, "each id's newest record by store id: a's second span was stored before c's late span");
    const ids = async (since: number, limit: number, afterId?: number) => (await store.correlationsAfterKind('summary', since, limit, afterId)).map((x) => x.correlationId);
    assert.deepEqual(await ids(0, 100), ['old', 'a', 'c']);
    assert.deepEqual(await ids(0, 1), ['old']);
    assert.deepEqual(await ids(3_000_000, 100), []);
    assert.deepEqual(await ids(0, 100, a!.lastId), ['c'], 'only records stored after the given id count');
    assert.deepEqual(await ids(0, 100, c!.lastId), []);
  });

  it('reader: the newest record of a kind per correlation id, filtered and ordered', async (t) => {
    let now = 1000;
    const store = impl.open(t, impl.place(t), { now: () => now, retentionMs: 1e12 });
    await store.configureExporters([]);
    await store.append([summary('a', 900, 'http://shop/cart?id=1', 'shop', 3)]);
    now = 2000;
    await store.append([summary('b', 300, 'http://shop/Checkout', 'shop', 2), span(1, { correlationId: 'b' })]);
    now = 3000;
    // a re-summarized (late span); c's request started first but its summary arrived last.
    await store.append([summary('a', 950, 'http://shop/cart?id=1', 'shop', 3), summary('c', 2000, 'http://blog/post', 'blog', 1)]);
    const q = async (over: Partial<Parameters<Store['latestPerCorrelation']>[0]>) =>
      (await store.latestPerCorrelation({ kind: 'summary', sinceMs: 0, order: 'start', limit: 10, ...over })).map(
        (r) => `${r.correlationId}:${(r as DerivedRecord).durationMs}`,
      );
    assert.deepEqual(await q({}), ['a:950', 'b:300', 'c:2000']);
    assert.deepEqual(await q({ order: 'duration', limit: 2 }), ['c:2000', 'a:950']);
    assert.deepEqual(await q({ project: 'shop' }), ['a:950', 'b:300']);
    assert.deepEqual(await q({ attributeContains: { key: 'url.full', text: 'checkout' } }), ['b:300']);
    assert.deepEqual(await q({ minDurationMs: 500 }), ['a:950', 'c:2000']);
    assert.deepEqual(await q({ sinceMs: 2500 }), ['a:950', 'c:2000']);
  });

  it('rollups: contributions are added with their record, per minute and hour, once per key; ranges read; retention drops old rows', async (t) => {
    let now = 10 * DAY;
    const place = impl.place(t);
    let store = impl.open(t, place, { now: () => now, retentionMs: DAY });
    await store.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
    const minute = 10 * DAY + 5 * 60_000;
    const contributed = (id: string, at: number, add: Record<string, number>) =>
      attachRollup(summary(id, 100, 'http://x/'), { once: id, deltas: [{ series: 'test.endpoint', atMs: at, key: 'GET /x', add }] });
    await store.append([contributed('a', minute + 1000, { n: 1, ms: 100.5, h3: 1 }), span(1)]);
    await store.append([contributed('b', minute + 2000, { n: 1, ms: 50, h3: 1, err: 1 })]);
    await store.append([contributed('b', minute + 2000, { n: 1, ms: 50, h3: 1, err: 1 })]); // a duplicate: not counted again
    // A revision takes its predecessor's figures back and adds its own.
    await store.append([contributed('b2', minute + 2000, { ms: 10 - 50, h3: -1, h4: 1 })]);
    await store.append([contributed('c', minute + 60_000, { n: 1, ms: 7 })]);
    const read = async (resolutionMs: 60_000 | 3_600_000, fromMs = 0, untilMs = 20 * DAY) =>
      (await store.rollups({ series: 'test.endpoint', resolutionMs, fromMs, untilMs })).sort((x, y) => x.bucketMs - y.bucketMs);
    assert.deepEqual(await read(60_000), [
      { bucketMs: minute, key: 'GET /x', fields: { n: 2, ms: 110.5, h3: 1, h4: 1, err: 1 } },
      { bucketMs: minute + 60_000, key: 'GET /x', fields: { n: 1, ms: 7 } },
    ]);
    const hour = Math.floor(minute / 3_600_000) * 3_600_000;
    assert.deepEqual(await read(3_600_000), [{ bucketMs: hour, key: 'GET /x', fields: { n: 3, ms: 117.5, h3: 1, h4: 1, err: 1 } }]);
    assert.deepEqual(await read(60_000, minute + 60_000), [{ bucketMs: minute + 60_000, key: 'GET /x', fields: { n: 1, ms: 7 } }]);
    assert.deepEqual(await store.rollups({ series: 'test.endpoint', resolutionMs: 60_000, fromMs: 0, untilMs: 20 * DAY, key: 'GET /y' }), []);
    // The stored record is the record as it was: the contribution is not part of it.
    const stored = await store.byCorrelationId('a');
    assert.equal(stored.length, 1);
    assert.equal(JSON.stringify(stored[0]).includes('rollup'), false);
    assert.equal((await store.pending('gelf', 10)).length, 6);
    await store.close();
    // Rows survive reopening; retention drops those whose interval has passed the window.
    store = impl.open(t, place, { now: () => now, retentionMs: DAY });
    await store.configureExporters([]);
    assert.equal((await read(60_000)).length, 2);
    now = minute + DAY + 60_000;
    await store.enforceLimits();
    assert.deepEqual((await read(60_000)).map((r) => r.bucketMs), [minute + 60_000]);
    assert.equal((await read(3_600_000)).length, 1, 'the hour row stays while a minute of it is within retention');
  });
}
