// Where an export queue takes its records from, on a real SQLite store: from memory while it is
// caught up (no read of what was just written), from the store at start, after falling behind
// and after a failure; FIFO and exactly once through every switch. Store reads are counted by
// wrapping the real store's pendingTexts().
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SqliteStore } from '../store/sqlite.js';
import { span } from '../store/records.fixture.js';
import type { ExportResult, Exporter, StoredRecord, StoredText } from './api.js';
import { ExportQueue } from './export-queue.js';
import type { FlatRecord } from './model.js';
import { Telemetry } from './telemetry.js';

const ID = 'collect';

/** An exporter that keeps what it was given; `answer` decides each batch's result. */
function collector(batchSize: number, answer: (batch: StoredRecord[]) => Promise<ExportResult> = async () => ({ kind: 'success' })) {
  const batches: number[][] = [];
  let settled = 0;
  const waiters: (() => void)[] = [];
  const exporter: Exporter = {
    batchSize,
    async start() {},
    async shutdown() {},
    async export(batch) {
      const result = await answer(batch);
      if (result.kind === 'success') batches.push(batch.map((r) => r.id));
      settled++;
      for (const w of waiters.splice(0)) w();
      return result;
    },
  };
  const delivered = () => batches.flat();
  /** Resolves once `count` records were delivered (checked after each batch). */
  const until = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => (delivered().length >= count ? resolve() : waiters.push(check));
      check();
    });
  return { exporter, batches, delivered, until, settled: () => settled };
}

async function setup(t: TestContext, exporter: Exporter, backlog = 0) {
  // One cleanup, in order: the queue, the store (and its checkpoint thread), then the directory.
  const dir = mkdtempSync(join(tmpdir(), 'bitville-queue-'));
  const store = new SqliteStore({ path: join(dir, 'store.db'), retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, synchronous: 'NORMAL' });
  await store.configureExporters([{ id: ID, signals: ['traces'] }]);
  let reads = 0;
  const pending = store.pendingTexts.bind(store);
  store.pendingTexts = (...args) => {
    reads++;
    return pending(...args);
  };
  // Marks follow the export's result by a moment: let a test wait for them.
  let marked = 0;
  const markWaiters: (() => void)[] = [];
  const markDelivered = store.markDelivered.bind(store);
  store.markDelivered = async (...args) => {
    await markDelivered(...args);
    marked += args[1].length;
    for (const w of markWaiters.splice(0)) w();
  };
  const markedUntil = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => (marked >= count ? resolve() : markWaiters.push(check));
      check();
    });
  let next = 1;
  const append = async (count: number) => {
    await store.append(Array.from({ length: count }, () => span(next++)) as FlatRecord[]);
  };
  if (backlog > 0) await append(backlog);
  const telemetry = new Telemetry(pino({ level: 'silent' }));
  const queue = new ExportQueue(ID, exporter, store, pino({ level: 'silent' }), telemetry.forComponent('exporter', ID));
  t.after(async () => {
    await queue.shutdown();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, queue, append, reads: () => reads, markedUntil, path: join(dir, 'store.db'), metricsText: () => telemetry.metricsText() };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

test('a restart with a backlog reads it from the store, oldest first, then takes new commits from memory', async (t) => {
  const c = collector(500);
  const s = await setup(t, c.exporter, 1200);
  s.queue.start();
  await c.until(1200);
  assert.deepEqual(c.delivered(), upTo(1200));
  assert.deepEqual(c.batches.map((b) => b.length), [500, 500, 200]);
  const readsWhenCaughtUp = s.reads();
  assert.ok(readsWhenCaughtUp >= 3);
  await s.append(50);
  await c.until(1250);
  assert.deepEqual(c.delivered(), upTo(1250));
  assert.equal(s.reads(), readsWhenCaughtUp, 'the new commit came from memory, not from a read');
  await s.markedUntil(1250);
  assert.equal(await s.store.backlog(ID), 0, 'and it was marked in the store');
});

test('a caught-up queue gathers commits into a few hundred per drain instead of one per commit', async (t) => {
  const c = collector(500);
  const s = await setup(t, c.exporter);
  s.queue.start();
  await new Promise((r) => setImmediate(r)); // the first (empty) read at start
  const reads = s.reads();
  for (let i = 0; i < 10; i++) await s.append(50);
  await c.until(500);
  assert.deepEqual(c.delivered(), upTo(500));
  assert.ok(c.batches.length <= 3, `10 commits went out in ${c.batches.length} batches`);
  assert.equal(s.reads(), reads);
  await s.markedUntil(500);
  assert.equal(await s.store.backlog(ID), 0);
});

test('a queue that falls behind (more committed than it holds) reads the store, then catches up again', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let first = true;
  const c = collector(10, async () => {
    if (first) {
      first = false;
      await gate; // a slow receiver: the first batch takes a while
    }
    return { kind: 'success' };
  });
  const s = await setup(t, c.exporter);
  s.queue.start();
  await s.append(10);
  // While the first batch is out, far more than the queue holds in memory is committed.
  for (let i = 0; i < 20; i++) await s.append(10);
  const readsBefore = s.reads();
  release();
  await c.until(210);
  assert.deepEqual(c.delivered(), upTo(210), 'every record once, in store order');
  assert.ok(s.reads() > readsBefore, 'what it could not hold came from the store');
  // The last batch marked, the queue reads once more, finds nothing, and is caught up.
  await s.markedUntil(210);
  await new Promise((r) => setImmediate(r));
  const readsCaughtUp = s.reads();
  await s.append(5);
  await c.until(215);
  assert.deepEqual(c.delivered(), upTo(215));
  assert.equal(s.reads(), readsCaughtUp, 'caught up again: the next commit came from memory');
  await s.markedUntil(215);
  assert.equal(await s.store.backlog(ID), 0);
});

test('after a failed send the same records are read from the store and sent again, in order, once', async (t) => {
  let failures = 1;
  const c = collector(100, async () => (failures-- > 0 ? { kind: 'retryable', error: new Error('receiver down'), retryAfterMs: 10 } : { kind: 'success' }));
  const s = await setup(t, c.exporter);
  s.queue.start();
  await new Promise((r) => setImmediate(r));
  const reads = s.reads();
  await s.append(30);
  await s.append(30);
  await c.until(60);
  assert.deepEqual(c.delivered(), upTo(60));
  assert.ok(s.reads() > reads, 'the retry read the failed batch back from the store');
  assert.ok(c.settled() >= 2);
  await s.markedUntil(60);
  assert.equal(await s.store.backlog(ID), 0);
});

test('with batches in flight, a caught-up queue sends the next batch from memory as soon as it has gathered, not after the first one settles', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const offered: number[][] = [];
  let firstOffered!: () => void;
  const first = new Promise<void>((r) => (firstOffered = r));
  let secondOffered!: () => void;
  const second = new Promise<void>((r) => (secondOffered = r));
  const c = collector(500, async (batch) => {
    offered.push(batch.map((r) => r.id));
    if (offered.length === 1) {
      firstOffered();
      await gate; // a send whose confirmation takes a while
    }
    if (offered.length === 2) secondOffered();
    return { kind: 'success' };
  });
  const exporter = { ...c.exporter, maxBatchesInFlight: 4, export: c.exporter.export };
  const s = await setup(t, exporter);
  s.queue.start();
  await new Promise((r) => setImmediate(r));
  const reads = s.reads();
  await s.append(10); // goes out alone after the gather delay, then hangs
  await first;
  for (let i = 0; i < 4; i++) await s.append(100);
  await second; // offered while the first is still out
  const next = offered[1]!;
  assert.ok(next.length >= 300, `a few hundred gathered (${next.length})`);
  assert.deepEqual(next, Array.from({ length: next.length }, (_, i) => i + 11));
  release();
  await c.until(410);
  assert.deepEqual(offered.flat(), upTo(410), 'offered in store order, each record once');
  assert.equal(s.reads(), reads, 'all from memory');
  await s.markedUntil(410);
  assert.equal(await s.store.backlog(ID), 0);
});

test('an exporter that takes texts gets each record as stored, from the store and from memory alike, and never export()', async (t) => {
  const texts: StoredText[] = [];
  let arrived: () => void = () => {};
  const exporter: Exporter = {
    async start() {},
    async shutdown() {},
    async export() {
      throw new Error('export() called although the exporter takes texts');
    },
    async exportTexts(batch) {
      texts.push(...batch);
      arrived();
      return { kind: 'success' };
    },
  };
  const s = await setup(t, exporter, 3);
  const got = (n: number) => new Promise<void>((resolve) => (arrived = () => texts.length >= n && resolve()));
  const backlog = got(3);
  s.queue.start();
  await backlog;
  const reads = s.reads();
  const fresh = got(5);
  await s.append(2);
  await fresh;
  assert.equal(s.reads(), reads, 'the last two came from memory');
  assert.deepEqual(texts.map((x) => x.id), [1, 2, 3, 4, 5]);
  for (const text of texts) {
    assert.deepEqual(JSON.parse(text.json), span(text.id), `record ${text.id}: its stored text, without id and receivedAtMs`);
    assert.equal(text.kind, 'span');
    assert.ok(text.receivedAtMs > 0);
  }
  assert.equal(texts[0]!.record, undefined, 'what was read from the store was not parsed');
  await s.markedUntil(5);
  assert.equal(await s.store.backlog(ID), 0);
});

test('a damaged row (its text is not JSON) is dropped and counted; the records around it are delivered and the queue moves on', { timeout: 20_000 }, async (t) => {
  const c = collector(500);
  const s = await setup(t, c.exporter, 3);
  const db = new Database(s.path);
  db.prepare("UPDATE records SET body = '{\"kind\":\"span\",' WHERE id = 2").run();
  db.close();
  s.queue.start();
  await c.until(2);
  assert.deepEqual(c.delivered(), [1, 3]);
  await s.markedUntil(3);
  assert.equal(await s.store.backlog(ID), 0, 'the damaged record no longer blocks the queue');
  assert.match(await s.metricsText(), /bitville_exporter_dropped_records\{[^}]*\} 1$/m);
  await s.append(1);
  await c.until(3);
  assert.deepEqual(c.delivered(), [1, 3, 4]);
});
