// What only the SQLite store does, on a real file: file mode, the size cap measured in pages,
// the GELF flag column, migration of older files, the arrival-time search after retention.
// The common contract is contract.test.ts.
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

test('the database file is private and made with its directory', async (t) => {
  const path = join(tempDir(t), 'sub', 'store.db');
  const store = open(path);
  await store.configureExporters([]);
  await store.append([span(1)]);
  assert.equal(statSync(path).mode & 0o777, 0o600);
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

test('the first id that arrived since a time is found after retention removed the oldest ids', async (t) => {
  let now = 0;
  const store = open(join(tempDir(t), 's.db'), () => now, { retentionMs: 500 });
  await store.configureExporters([]);
  for (let i = 0; i < 200; i++) {
    now = i * 10;
    await store.append([span(i, { correlationId: `id${i}` })]);
  }
  await store.enforceLimits(); // keeps arrivals at or after 1490
  const ids = (await store.correlationsAfterKind('summary', 1700, 1000)).map((c) => c.correlationId);
  assert.deepEqual(ids, Array.from({ length: 30 }, (_, i) => `id${170 + i}`));
  assert.equal((await store.correlationsAfterKind('summary', 0, 1000)).length, 51);
  await store.close();
});
