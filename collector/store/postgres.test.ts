// What only the PostgreSQL store does, against the real server, each test in a schema of its
// own: claims shared by two instances without overlap, takeover of an abandoned claim, wake-ups
// and state changes across instances, daily partitions, rollups merged from two instances. The common contract is contract.test.ts.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { PG_DSN, skipWithoutPostgres } from '../../test/env.js';
import { freshSchema, sql } from '../../test/pg.js';
import type { FlatRecord } from '../core/model.js';
import { span, summary } from './records.fixture.js';
import { attachRollup } from '../core/rollup.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres.js';

const spans = (from: number, count: number) => Array.from({ length: count }, (_, i) => span(from + i)) as FlatRecord[];

function open(t: TestContext, schema: string, over: Partial<PostgresStoreOptions> = {}): PostgresStore {
  const store = new PostgresStore({
    dsn: PG_DSN,
    schema,
    poolSize: 4,
    claimTimeoutMs: 30_000,
    retentionMs: 7 * 86_400_000,
    maxSizeBytes: 10 * 1024 ** 3,
    partitionsAhead: 2,
    ...over,
  });
  t.after(() => store.close());
  return store;
}

test('two instances share one backlog: every record is claimed once, each batch oldest first', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const a = open(t, schema);
  const b = open(t, schema);
  const routes = [{ id: 'gelf', signals: ['traces', 'logs'] as const }];
  await a.configureExporters(routes);
  await b.configureExporters(routes);
  for (let i = 0; i < 10; i++) await (i % 2 ? a : b).append(spans(i * 50 + 1, 50));

  const seen: number[] = [];
  const drain = async (store: PostgresStore) => {
    const batches: number[][] = [];
    for (;;) {
      const batch = (await store.pending('gelf', 37)).map((r) => r.id);
      if (batch.length === 0) return batches;
      batches.push(batch);
      seen.push(...batch);
      await store.markDelivered('gelf', batch);
    }
  };
  const [fromA, fromB] = await Promise.all([drain(a), drain(b)]);
  assert.equal(seen.length, 500, 'nothing claimed twice');
  assert.deepEqual([...seen].sort((x, y) => x - y), Array.from({ length: 500 }, (_, i) => i + 1), 'nothing missed');
  for (const batches of [fromA, fromB]) {
    const flat = batches.flat();
    assert.deepEqual(flat, [...flat].sort((x, y) => x - y), 'each instance delivers in store order');
  }
  assert.equal(await a.backlog('gelf'), 0);
});

test('a commit in one instance wakes the exporters of the other (LISTEN/NOTIFY)', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const a = open(t, schema);
  const b = open(t, schema);
  await a.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  await b.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  const wake = new Promise<void>((resolve) => {
    const off = b.onCommit(() => {
      off();
      resolve();
    });
  });
  await a.append([span(1)]);
  await wake;
  assert.deepEqual((await b.pending('gelf', 10)).map((r) => r.id), [1]);
});

test('a claim its instance abandons is taken over once the claim timeout passes, and the taker is woken for it', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const dead = open(t, schema, { claimTimeoutMs: 1000 });
  const alive = open(t, schema, { claimTimeoutMs: 1000 });
  await dead.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  await alive.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  await dead.append(spans(1, 10));
  const claimedAt = Date.now();
  assert.deepEqual((await dead.pending('gelf', 4)).map((r) => r.id), [1, 2, 3, 4]);
  // The other instance gets the rest at once, and nothing the first one holds.
  assert.deepEqual((await alive.pending('gelf', 100)).map((r) => r.id), [5, 6, 7, 8, 9, 10]);
  await alive.markDelivered('gelf', [5, 6, 7, 8, 9, 10]);
  const expired = new Promise<void>((resolve) => {
    const off = alive.onCommit(() => {
      off();
      resolve();
    });
  });
  await alive.pending('gelf', 100); // finds nothing, and arms the wake-up for the claim's expiry
  await expired;
  assert.ok(Date.now() - claimedAt >= 1000, 'not before the claim timeout');
  assert.deepEqual((await alive.pending('gelf', 100)).map((r) => r.id), [1, 2, 3, 4], 'the abandoned batch, oldest first');
});

test('closing hands unfinished claims back at once and tells the other instances', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const leaving = open(t, schema);
  const staying = open(t, schema);
  await leaving.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  await staying.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  await leaving.append(spans(1, 3));
  assert.equal((await leaving.pending('gelf', 10)).length, 3);
  assert.deepEqual(await staying.pending('gelf', 10), []);
  const told = new Promise<void>((resolve) => staying.onCommit(() => resolve()));
  await leaving.close();
  await told;
  assert.deepEqual((await staying.pending('gelf', 10)).map((r) => r.id), [1, 2, 3]);
});

test('records go to daily partitions; retention drops whole partitions and their queue rows', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const day = 86_400_000;
  let now = Date.parse('2026-03-01T12:00:00Z');
  const store = open(t, schema, { now: () => now, retentionMs: 3 * day, partitionsAhead: 1 });
  await store.configureExporters([{ id: 'gelf', signals: ['traces'] }]);
  await store.append(spans(1, 5)); // 2026-03-01
  now += 2 * day;
  await store.append(spans(6, 3)); // 2026-03-03: beyond the partitions made ahead, made on demand
  now += 2 * day; // 2026-03-05 12:00: the 03-01 partition ended more than 3 days ago, 03-03 did not
  const partitions = async () =>
    (await sql(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`, [`"${schema}".records`])).map(
      (r) => r.relname,
    );
  assert.ok((await partitions()).includes('records_20260301'));
  assert.equal(await store.enforceLimits(), 5);
  const left = await partitions();
  assert.ok(!left.includes('records_20260301'), 'the old day is dropped as a whole table');
  assert.ok(left.includes('records_20260303') && left.includes('records_20260305') && left.includes('records_20260306'), 'young and ahead days stay');
  assert.deepEqual(store.stats().dropped, { retention: 5, size: 0 });
  assert.equal(store.stats().rows, 3);
  assert.equal(await store.backlog('gelf'), 3, 'queue rows of dropped records go too');
  assert.deepEqual((await store.pending('gelf', 10)).map((r) => r.attributes.n), [6, 7, 8]);
  assert.equal(await store.enforceLimits(), 0);
});

test('over max_size, whole past days go oldest first, never today', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const day = 86_400_000;
  let now = Date.parse('2026-03-01T12:00:00Z');
  const store = open(t, schema, { now: () => now, maxSizeBytes: 1 });
  await store.configureExporters([]);
  await store.append(spans(1, 2));
  now += day;
  await store.append(spans(3, 2));
  now += day;
  await store.append(spans(5, 2));
  assert.equal(await store.enforceLimits(), 4);
  assert.deepEqual(store.stats().dropped, { retention: 0, size: 4 });
  assert.deepEqual((await store.byCorrelationId('c2')).map((r) => r.id), [5], 'today is kept even over the cap');
});

test('component state is shared: a value set by one instance is read and announced in the other', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const a = open(t, schema);
  const b = open(t, schema);
  await a.configureExporters([]);
  await b.configureExporters([]);
  assert.equal(await b.getState('gelf', 'breaker'), undefined);
  const announced = new Promise<[string, string, string]>((resolve) => b.onStateChange((...args) => resolve(args)));
  let ownAnnounced = false;
  a.onStateChange(() => (ownAnnounced = true));
  await a.setState('gelf', 'breaker', '{"state":"open"}');
  assert.deepEqual(await announced, ['gelf', 'breaker', '{"state":"open"}']);
  assert.equal(await b.getState('gelf', 'breaker'), '{"state":"open"}');
  await a.setState('gelf', 'breaker', '{"state":"closed"}');
  assert.equal(await b.getState('gelf', 'breaker'), '{"state":"closed"}');
  assert.equal(ownAnnounced, false, 'an instance is not told about its own change');
});

test('a bad connection string fails the first call with the reason', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const store = open(t, freshSchema(t), { dsn: 'postgres://postgres@127.0.0.1:1/test' });
  await assert.rejects(store.configureExporters([]), /ECONNREFUSED/);
});

test('two instances add to the same rollup rows at once: the sums merge, a summary both emit counts once', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const a = open(t, schema);
  const b = open(t, schema);
  await a.configureExporters([]);
  await b.configureExporters([]);
  const at = Date.UTC(2026, 11, 1, 10, 30);
  const contributed = (id: string) =>
    attachRollup(summary(id, 10, 'http://x/'), { once: id, deltas: [{ series: 'test.endpoint', atMs: at, key: 'GET /x', add: { n: 1, ms: 10, h58: 1 } }] });
  // 200 summaries, each committed by both instances concurrently (as two instances that join the same id do).
  await Promise.all(
    Array.from({ length: 20 }, (_, batch) => {
      const ids = Array.from({ length: 10 }, (_, i) => `s${batch * 10 + i}`);
      return Promise.all([a.append(ids.map(contributed)), b.append(ids.map(contributed))]);
    }),
  );
  for (const resolutionMs of [60_000, 600_000, 3_600_000, 86_400_000] as const) {
    const rows = await b.rollups({ series: 'test.endpoint', resolutionMs, fromMs: 0, untilMs: at + 86_400_000 });
    assert.deepEqual(rows.map((r) => r.fields), [{ n: 200, ms: 2000, h58: 200 }], `at ${resolutionMs} ms`);
  }
});
