// The store methods behind the correlation join and the request lookups, on a real SQLite
// file: which ids still need a summary (since a time), and the newest summary per request.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../test/env.js';
import type { SpanRecord } from '../core/model.js';
import { span as fixtureSpan, summary } from './records.fixture.js';
import { SqliteStore } from './sqlite.js';
import { recentRequests, unsummarizedCorrelations } from '../../plugins/correlate/queries.js';

// A DB span of the request with this correlation id.
const span = (correlationId: string, extra: Partial<SpanRecord> = {}): SpanRecord =>
  fixtureSpan(1, { correlationId, spanId: '1'.repeat(16), traceId: '', name: 'q', spanKind: 3, attributes: {}, ...extra });

test('unsummarizedCorrelations: ids with records newer than their newest summary, since a time', async (t) => {
  let now = 1_000_000;
  const store = new SqliteStore({ path: join(tempDir(t), 's.db'), retentionMs: 1e12, maxSizeBytes: 1e12, synchronous: 'NORMAL', now: () => now });
  await store.configureExporters([]);
  await store.append([span('old')]);
  now = 2_000_000;
  await store.append([span('a'), span('b'), span('c'), span('')]);
  await store.append([summary('b', 10, 'http://x/')]);
  now = 2_000_500;
  await store.append([span('a')]);
  await store.append([summary('c', 10, 'http://x/')]);
  now = 2_001_000;
  await store.append([span('c')]); // late span after c's summary

  const found = await unsummarizedCorrelations(store, 1_500_000, 100);
  assert.deepEqual(found, [
    { correlationId: 'a', lastReceivedAtMs: 2_000_500 },
    { correlationId: 'c', lastReceivedAtMs: 2_001_000 },
  ]);
  // `old` arrived before the time asked about; b is covered by its summary.
  assert.deepEqual((await unsummarizedCorrelations(store, 0, 100)).map((c) => c.correlationId), ['old', 'a', 'c']);
  assert.deepEqual((await unsummarizedCorrelations(store, 0, 1)).map((c) => c.correlationId), ['old']);
  assert.deepEqual(await unsummarizedCorrelations(store, 3_000_000, 100), []);
  await store.close();
});

test('unsummarizedCorrelations finds the time boundary after retention removed the oldest ids', async (t) => {
  let now = 0;
  const store = new SqliteStore({ path: join(tempDir(t), 's.db'), retentionMs: 500, maxSizeBytes: 1e12, synchronous: 'NORMAL', now: () => now });
  await store.configureExporters([]);
  for (let i = 0; i < 200; i++) {
    now = i * 10;
    await store.append([span(`id${i}`)]);
  }
  await store.enforceLimits(); // keeps arrivals at or after 1490
  const ids = (await unsummarizedCorrelations(store, 1700, 1000)).map((c) => c.correlationId);
  assert.deepEqual(ids, Array.from({ length: 30 }, (_, i) => `id${170 + i}`));
  assert.equal((await unsummarizedCorrelations(store, 0, 1000)).length, 51);
  await store.close();
});

test('recentRequests: newest summary per id, filters, by request start or slowest first', async (t) => {
  let now = 1000;
  const store = new SqliteStore({ path: join(tempDir(t), 's.db'), retentionMs: 1e12, maxSizeBytes: 1e12, synchronous: 'NORMAL', now: () => now });
  await store.configureExporters([]);
  await store.append([summary('a', 900, 'http://shop/cart?id=1', 'shop', 3)]);
  now = 2000;
  await store.append([summary('b', 300, 'http://shop/Checkout', 'shop', 2), span('b')]);
  now = 3000;
  // a re-summarized (late span); c's request started first but its summary arrived last.
  await store.append([summary('a', 950, 'http://shop/cart?id=1', 'shop', 3), summary('c', 2000, 'http://blog/post', 'blog', 1)]);

  const ids = (rs: { correlationId: string; durationMs?: number }[]) => rs.map((r) => `${r.correlationId}:${r.durationMs}`);
  assert.deepEqual(ids(await recentRequests(store, { sinceMs: 0, order: 'recent', limit: 10 })), ['a:950', 'b:300', 'c:2000']);
  assert.deepEqual(ids(await recentRequests(store, { sinceMs: 0, order: 'slowest', limit: 2 })), ['c:2000', 'a:950']);
  assert.deepEqual(ids(await recentRequests(store, { sinceMs: 0, order: 'recent', limit: 10, project: 'shop' })), ['a:950', 'b:300']);
  assert.deepEqual(ids(await recentRequests(store, { sinceMs: 0, order: 'recent', limit: 10, urlContains: 'checkout' })), ['b:300']);
  assert.deepEqual(ids(await recentRequests(store, { sinceMs: 0, order: 'recent', limit: 10, minDurationMs: 500 })), ['a:950', 'c:2000']);
  assert.deepEqual(ids(await recentRequests(store, { sinceMs: 2500, order: 'recent', limit: 10 })), ['a:950', 'c:2000']);
  await store.close();
});
