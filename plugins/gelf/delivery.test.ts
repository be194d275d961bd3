// What "sent" means over TCP and TLS, as a user sees it: the real path (SQLite store -> export
// queue -> gelf exporter -> socket) against loopback peers that accept and then drop the
// connection. Nothing is marked sent that the connection did not outlive; what was in the
// confirmation window when a connection dropped arrives on the next one.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { StoredRecord } from '../../collector/core/api.js';
import { ExportQueue } from '../../collector/core/export-queue.js';
import type { FlatRecord } from '../../collector/core/model.js';
import { PostgresStore } from '../../collector/store/postgres.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import type { Store } from '../../collector/core/store.js';
import { PG_DSN, skipWithoutPostgres } from '../../test/env.js';
import { freshSchema } from '../../test/pg.js';
import { GelfExporter } from './exporter.js';
import { exporterContext, gelfConfig, spanRecord, tempDir } from './exporter.fixture.js';
import { TcpReceiver, TEST_CERT_FILE, type Received } from './receivers.fixture.js';

const ID = 'gelf';

/** A store (SQLite unless given) holding `count` spans for the exporter, a gelf exporter and its queue (not started). */
async function pipeline(t: TestContext, count: number, config: Record<string, unknown>, given?: Store) {
  const dir = tempDir(t);
  const store = given ?? new SqliteStore({ path: join(dir, 'bitville.db'), retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, synchronous: 'NORMAL' });
  t.after(() => store.close());
  await store.configureExporters([{ id: ID, signals: ['traces', 'logs'] }]);
  const flat = (n: number): FlatRecord => {
    const { id: _id, receivedAtMs: _at, ...record } = spanRecord(n) as StoredRecord & Record<string, unknown>;
    return record as unknown as FlatRecord;
  };
  await store.append(Array.from({ length: count }, (_, i) => flat(i + 1)));
  const ctx = exporterContext(dir, ID);
  const exporter = new GelfExporter(gelfConfig({ retry_delay: '10ms', ...config }), ctx.context);
  await exporter.start();
  const queue = new ExportQueue(ID, exporter, store, ctx.context.logger, ctx.context.metrics);
  t.after(async () => {
    await queue.shutdown();
    await exporter.shutdown();
  });
  const breaker = () => ctx.gauges.get('bitville_gelf_circuit_breaker_state')!();
  /** Resolves at the first log line whose message matches. */
  const logged = (pattern: RegExp) =>
    new Promise<void>((resolve) => {
      if (ctx.logs.some((l) => pattern.test(String(l.msg)))) return resolve();
      const listener = (line: Record<string, unknown>) => {
        if (!pattern.test(String(line.msg))) return;
        ctx.events.off('log', listener);
        resolve();
      };
      ctx.events.on('log', listener);
    });
  return { store, exporter, queue, breaker, logged, ...ctx };
}

/** Resolves once every id 1..count has arrived at least once. */
async function everyId(receiver: TcpReceiver, count: number): Promise<Received[]> {
  const seen = () => new Set(receiver.messages.map((m) => m._record_id)).size;
  const signal = AbortSignal.timeout(20_000);
  while (seen() < count) {
    await once(receiver, 'message', { signal }).catch(() => {
      throw new Error(`expected ids 1..${count}, got ${seen()} distinct of ${receiver.messages.length} messages`);
    });
  }
  return receiver.messages;
}

for (const tls of [false, true]) {
  const name = tls ? 'TLS' : 'TCP';
  const endpoint = (port: number) =>
    tls ? { endpoint: `tls://localhost:${port}`, tls: { ca_file: TEST_CERT_FILE } } : { endpoint: `tcp://127.0.0.1:${port}` };

  test(`${name}: a peer that accepts and at once drops every connection gets nothing marked sent, and the breaker opens after 5 failures`, async (t) => {
    const receiver = await TcpReceiver.start({ tls });
    t.after(() => receiver.close());
    receiver.closeAfter = 0;
    const p = await pipeline(t, 600, endpoint(receiver.port));
    p.queue.start();
    await p.logged(/circuit breaker opened/);
    await p.queue.shutdown();

    assert.equal(p.breaker(), 1, 'open');
    assert.equal(p.counters.get('bitville_gelf_send_failures'), 5, 'each dropped connection is one failure');
    assert.ok(receiver.connections >= 5, `${receiver.connections} connections accepted and dropped`);
    assert.equal(p.counters.get('otelcol_exporter_sent_spans') ?? 0, 0, 'sent counter');
    assert.equal(await p.store.backlog(ID), 600, 'every record still waits in the store');
    assert.equal(receiver.messages.length, 0);
    assert.ok(p.logs.some((l) => l.msg === 'export failed; will retry' && /confirmation window|write failed/.test(String(l.err))));
  });

  test(`${name}: a peer that takes 700 records and drops the connection gets the unconfirmed ones again on the next connection`, async (t) => {
    const receiver = await TcpReceiver.start({ tls });
    t.after(() => receiver.close());
    receiver.closeAfter = 700;
    // Only the first connection fails; the next ones take everything.
    receiver.once('connection', () => (receiver.closeAfter = undefined));
    const p = await pipeline(t, 1000, { ...endpoint(receiver.port), batch_size: 100 });
    p.queue.start();
    const got = await everyId(receiver, 1000);
    await p.queue.shutdown(); // the batches in flight finish their window and are marked

    assert.equal(receiver.connections, 2);
    assert.equal(await p.store.backlog(ID), 0, 'all marked once confirmed');
    assert.equal(p.counters.get('otelcol_exporter_sent_spans'), 1000, 'each record counted sent once');
    const duplicates = got.length - 1000;
    assert.ok(duplicates > 0, 'records the first connection took inside the window were sent again');
    const resent = p.counters.get('bitville_gelf_resent_records') ?? 0;
    assert.ok(resent >= duplicates, `duplicates (${duplicates}) are counted as re-sent (${resent})`);
    assert.equal(p.counters.get('bitville_gelf_send_failures'), 1, 'one dropped connection, one failure');
    assert.equal(p.breaker(), 0, 'closed');
  });
}

test('TCP: on a healthy connection the window overlaps: 20 batches take far less than 20 windows', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const p = await pipeline(t, 2000, { endpoint: `tcp://127.0.0.1:${receiver.port}`, batch_size: 100, confirm_window: '300ms' });
  const started = performance.now();
  p.queue.start();
  await everyId(receiver, 2000);
  await p.queue.shutdown();
  const elapsed = performance.now() - started;
  assert.equal(await p.store.backlog(ID), 0);
  assert.equal(receiver.messages.length, 2000, 'no duplicates on a healthy connection');
  assert.ok(elapsed < 10 * 300, `took ${Math.round(elapsed)} ms; one window per batch would be ${20 * 300} ms`);
});

test('TCP with the PostgreSQL store: batches read past those in flight, every record delivered and marked once', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const store = new PostgresStore({ dsn: PG_DSN, schema: freshSchema(t), poolSize: 2, claimTimeoutMs: 30_000, retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, partitionsAhead: 1 });
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  receiver.closeAfter = 450;
  receiver.once('connection', () => (receiver.closeAfter = undefined));
  const p = await pipeline(t, 1000, { endpoint: `tcp://127.0.0.1:${receiver.port}`, batch_size: 100 }, store);
  p.queue.start();
  await everyId(receiver, 1000);
  await p.queue.shutdown();
  assert.equal(await store.backlog(ID), 0);
  assert.equal(p.counters.get('otelcol_exporter_sent_spans'), 1000);
  assert.equal(p.counters.get('bitville_gelf_send_failures'), 1);
});
