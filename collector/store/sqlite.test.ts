// The SQLite store on a real file: FIFO per exporter, exact marking, signal routing,
// retention and the size cap, file mode, and durability across reopen.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../test/env.js';
import type { FlatRecord, SpanRecord } from '../core/model.js';
import { log, span } from './records.fixture.js';
import { SqliteStore } from './sqlite.js';

const open = (path: string, now = Date.now, over: Partial<ConstructorParameters<typeof SqliteStore>[0]> = {}) =>
  new SqliteStore({ path, retentionMs: 7 * 86_400_000, maxSizeBytes: 10 * 1024 ** 3, synchronous: 'NORMAL', now, ...over });

test('each exporter reads its own backlog oldest first and marking is exact', async (t) => {
  const path = join(tempDir(t), 'sub', 'store.db');
  const store = open(path);
  await store.configureExporters([
    { id: 'gelf', signals: ['traces', 'logs'] },
    { id: 'debug', signals: ['logs'] },
  ]);
  await store.append([span(1), log(2), span(3)]);
  await store.append([span(4)]);
  assert.equal(statSync(path).mode & 0o777, 0o600, 'the database file is private');

  const gelf = await store.pending('gelf', 2);
  assert.deepEqual(gelf.map((r) => r.id), [1, 2]);
  assert.equal((gelf[0] as SpanRecord).name, 'span 1');
  await store.markDelivered('gelf', [1, 2]);
  assert.deepEqual((await store.pending('gelf', 10)).map((r) => r.id), [3, 4]);
  assert.equal(await store.backlog('gelf'), 2);
  // The logs-only exporter never sees spans, and its progress is separate.
  assert.deepEqual((await store.pending('debug', 10)).map((r) => r.id), [2]);
  await store.close();

  // Progress and data survive reopening; a new exporter sees only records that arrive later.
  const again = open(path);
  await again.configureExporters([
    { id: 'gelf', signals: ['traces', 'logs'] },
    { id: 'gelf/audit', signals: ['traces'] },
  ]);
  assert.deepEqual((await again.pending('gelf', 10)).map((r) => r.id), [3, 4]);
  assert.deepEqual(await again.pending('gelf/audit', 10), []);
  await again.append([span(5)]);
  assert.deepEqual((await again.pending('gelf/audit', 10)).map((r) => r.id), [5]);
  assert.deepEqual((await again.byCorrelationId('c1')).map((r) => r.id), [1, 4]);
  await again.close();
});

test('the commit listener fires after each append', async (t) => {
  const store = open(join(tempDir(t), 'store.db'));
  await store.configureExporters([]);
  let commits = 0;
  const off = store.onCommit(() => commits++);
  await store.append([span(1)]);
  await store.append([]);
  off();
  await store.append([span(2)]);
  assert.equal(commits, 1);
  await store.close();
});

test('retention drops records older than the window, by arrival time', async (t) => {
  let now = Date.parse('2026-11-01T00:00:00Z');
  const store = open(join(tempDir(t), 'store.db'), () => now, { retentionMs: 86_400_000 });
  await store.configureExporters([]);
  await store.append([span(1), span(2)]);
  now += 2 * 86_400_000;
  await store.append([span(3)]);
  assert.equal(await store.enforceLimits(), 2);
  assert.deepEqual(store.stats().dropped, { retention: 2, size: 0 });
  assert.equal(store.stats().rows, 1);
  assert.equal(await store.enforceLimits(), 0);
  await store.close();
});

test('the size cap drops the oldest records until the data fits', async (t) => {
  const store = open(join(tempDir(t), 'store.db'), Date.now, { maxSizeBytes: 2 * 1024 * 1024 });
  await store.configureExporters([{ id: 'x', signals: ['traces'] }]);
  const big = 'x'.repeat(2000);
  for (let batch = 0; batch < 30; batch++) {
    await store.append(Array.from({ length: 100 }, (_, i) => span(batch * 100 + i, { name: big })) as FlatRecord[]);
  }
  assert.ok(store.stats().sizeBytes > 2 * 1024 * 1024);
  const removed = await store.enforceLimits();
  assert.ok(removed > 0);
  assert.ok(store.stats().sizeBytes <= 2 * 1024 * 1024);
  assert.equal(store.stats().dropped.size, removed);
  const oldest = (await store.pending('x', 1))[0]!;
  assert.equal(oldest.id, removed + 1, 'the oldest records went first');
  await store.close();
});

test('forwarded_to_graylog reads 1 once every GELF exporter that had the record delivered it', async (t) => {
  const path = join(tempDir(t), 'store.db');
  const store = open(path);
  await store.configureExporters([
    { id: 'gelf', signals: ['traces', 'logs'] },
    { id: 'gelf/audit', signals: ['traces'] },
    { id: 'debug', signals: ['traces', 'logs'] },
  ]);
  await store.append([span(1), log(2), span(3)]);
  await store.markDelivered('gelf', [1, 2, 3]);
  await store.markDelivered('debug', [1, 2, 3]);
  await store.markDelivered('gelf/audit', [1]);
  const flags = () => new Database(path, { readonly: true }).prepare('SELECT id, forwarded_to_graylog AS f FROM records ORDER BY id').all();
  // 3 still waits for gelf/audit; 2 is a log, which gelf/audit never gets.
  assert.deepEqual(flags(), [{ id: 1, f: 1 }, { id: 2, f: 1 }, { id: 3, f: 0 }]);
  await store.markDelivered('gelf/audit', [3]);
  assert.deepEqual(flags(), [{ id: 1, f: 1 }, { id: 2, f: 1 }, { id: 3, f: 1 }]);
  await store.close();
});

test('a store from before the delivery table keeps what was delivered and what was pending', async (t) => {
  const path = join(tempDir(t), 'store.db');
  // Schema version 3: one bit per exporter in forwarded_to_graylog, a partial index per bit.
  const old = new Database(path);
  old.exec(`
    CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, signal TEXT NOT NULL, time_unix_nano INTEGER NOT NULL,
      received_at_ms INTEGER NOT NULL, correlation_id TEXT, trace_id TEXT, span_id TEXT, project TEXT, source TEXT, name TEXT,
      duration_ms REAL, body TEXT NOT NULL, forwarded_to_graylog INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE exporters (id TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE, start_after INTEGER NOT NULL);
    CREATE TABLE component_state (component TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at_ms INTEGER NOT NULL,
      PRIMARY KEY (component, key)) WITHOUT ROWID;
    CREATE INDEX records_pending_0 ON records(id) WHERE (forwarded_to_graylog & 1) = 0;
    CREATE INDEX records_pending_1 ON records(id) WHERE (forwarded_to_graylog & 2) = 0;
    INSERT INTO exporters VALUES ('gelf', 0, 0), ('debug', 1, 1);
    PRAGMA user_version = 3;`);
  const insert = old.prepare("INSERT INTO records (kind, signal, time_unix_nano, received_at_ms, body, forwarded_to_graylog) VALUES ('span', 'traces', 1, ?, ?, ?)");
  // 1: gelf done, before debug existed; 2: gelf done, debug not; 3: neither; 4: both done.
  for (const [n, mask] of [[1, 1], [2, 1], [3, 0], [4, 3]] as const) insert.run(Date.now(), JSON.stringify(span(n)), mask);
  old.close();

  const store = open(path);
  await store.configureExporters([
    { id: 'gelf', signals: ['traces'] },
    { id: 'debug', signals: ['traces'] },
  ]);
  assert.deepEqual((await store.pending('gelf', 10)).map((r) => r.id), [3]);
  assert.deepEqual((await store.pending('debug', 10)).map((r) => r.id), [2, 3]);
  const rows = new Database(path, { readonly: true }).prepare('SELECT id, forwarded_to_graylog AS f FROM records ORDER BY id').all();
  assert.deepEqual(rows, [{ id: 1, f: 1 }, { id: 2, f: 1 }, { id: 3, f: 0 }, { id: 4, f: 1 }]);
  await store.markDelivered('gelf', [3]);
  assert.equal(await store.backlog('gelf'), 0);
  await store.close();
});
