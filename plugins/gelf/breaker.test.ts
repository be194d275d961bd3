// The circuit breaker as a user sees it: Graylog down -> after 5 failed sends no more
// attempts until the reset timeout, the state survives a restart (it is in the store), a good
// probe resumes, and instances sharing a PostgreSQL store open and close together.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ComponentState } from '../../collector/core/api.js';
import { PostgresStore } from '../../collector/store/postgres.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { componentState } from '../../collector/core/component-state.js';
import { PG_DSN, skipWithoutPostgres } from '../../test/env.js';
import { freshSchema } from '../../test/pg.js';
import { GelfExporter } from './exporter.js';
import { exporterContext, gelfConfig, memoryState, spanRecord, tempDir } from './exporter.fixture.js';
import { TcpReceiver } from './receivers.fixture.js';

const RESET_MS = 600;
const ID = 'gelf/primary';

async function deadPort(t: TestContext): Promise<{ receiver: TcpReceiver; port: number }> {
  const receiver = await TcpReceiver.start();
  const port = receiver.port;
  await receiver.close();
  t.after(() => receiver.close());
  return { receiver, port };
}

function sqliteStore(t: TestContext, path: string): SqliteStore {
  const store = new SqliteStore({ path, retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, synchronous: 'NORMAL' });
  t.after(() => store.close());
  return store;
}

async function startExporter(t: TestContext, state: ComponentState, port: number, resetMs = RESET_MS) {
  const ctx = exporterContext(tempDir(t), ID);
  const config = gelfConfig({
    endpoint: `tcp://127.0.0.1:${port}`,
    retry_delay: '10ms',
    circuit_breaker: { failure_threshold: 5, reset_timeout: `${resetMs}ms` },
  });
  const exporter = new GelfExporter(config, { ...ctx.context, state });
  await exporter.start();
  t.after(() => exporter.shutdown());
  const gauge = () => ctx.gauges.get('bitville_gelf_circuit_breaker_state')!();
  return { exporter, gauge, ...ctx };
}

/** The summary the breaker saved ('open', 'closed', ...), as the store holds it. */
async function saved(state: ComponentState): Promise<string | undefined> {
  const value = await state.get('breaker');
  return value === undefined ? undefined : (JSON.parse(value).state as string);
}

async function failUntilOpen(exporter: GelfExporter, threshold = 5) {
  let result;
  for (let i = 1; i <= threshold; i++) result = await exporter.export([spanRecord(i)]);
  return result!;
}

/**
 * The breaker states one store is told about by other instances. Its listener is added after
 * the exporters started, so when it hears a value the breaker has already adopted it.
 */
function announcements(store: PostgresStore) {
  const seen: string[] = [];
  let wake = () => {};
  store.onStateChange((_component, _key, value) => {
    seen.push(JSON.parse(value).state);
    wake();
  });
  return {
    until: (state: string) =>
      new Promise<void>((resolve) => {
        const check = () => (seen.includes(state) ? resolve() : void (wake = check));
        check();
      }),
  };
}

const until = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('opens after 5 failures, makes no attempt while open, survives a restart, probes after the reset timeout', async (t) => {
  const dir = tempDir(t);
  const dbPath = join(dir, 'bitville.db');
  const { receiver, port } = await deadPort(t);
  const store = sqliteStore(t, dbPath);
  const first = await startExporter(t, componentState(store, ID), port);

  for (let i = 1; i <= 4; i++) {
    const result = await first.exporter.export([spanRecord(i)]);
    assert.equal(result.kind, 'retryable');
    assert.equal(result.kind === 'retryable' && result.retryAfterMs, 10, 'closed: retry soon');
  }
  const fifth = await first.exporter.export([spanRecord(1)]);
  const openedAt = Date.now();
  assert.equal(fifth.kind, 'retryable');
  assert.ok(fifth.kind === 'retryable' && fifth.retryAfterMs! > RESET_MS / 2, 'open: come back at the half-open time');
  assert.equal(await saved(componentState(store, ID)), 'open', 'committed to the store at the transition');
  assert.equal(first.gauge(), 1);
  assert.equal(first.counters.get('bitville_gelf_circuit_breaker_transitions'), 1);
  assert.equal(first.counters.get('bitville_gelf_send_failures'), 5);
  assert.equal(first.logs.filter((l) => /breaker opened/.test(String(l.msg))).length, 1, 'one log line for the transition');

  // Graylog is back, but the breaker is open: the receiver sees no connection attempt.
  await receiver.listen({ port });
  const whileOpen = await first.exporter.export([spanRecord(1)]);
  assert.equal(whileOpen.kind, 'retryable');
  assert.match(whileOpen.kind === 'retryable' ? whileOpen.error.message : '', /open/i);

  // The collector restarts: the store file is closed and opened again, and brings the open breaker back.
  await first.exporter.shutdown();
  await store.close();
  const reopened = sqliteStore(t, dbPath);
  const second = await startExporter(t, componentState(reopened, ID), port);
  assert.equal(second.gauge(), 1, 'restored open');
  assert.ok(second.logs.some((l) => l.msg === 'GELF circuit breaker state restored' && l.breaker === 'open'));
  const afterRestart = await second.exporter.export([spanRecord(1)]);
  assert.equal(afterRestart.kind, 'retryable');
  assert.equal(receiver.connections, 0, 'no connection attempt while open, across the restart');

  // At the half-open time one probe batch goes out; it succeeds and the breaker closes.
  await until(afterRestart.kind === 'retryable' ? afterRestart.retryAfterMs! : 0);
  const probe = await second.exporter.export([spanRecord(1), spanRecord(2)]);
  assert.deepEqual(probe, { kind: 'success' });
  assert.ok(Date.now() - openedAt >= RESET_MS, 'the probe came no earlier than the reset timeout');
  assert.equal(receiver.connections, 1);
  assert.deepEqual((await receiver.waitFor(2)).map((m) => m._record_id), [1, 2]);
  await second.exporter.shutdown(); // waits for the last save
  assert.equal(await saved(componentState(reopened, ID)), 'closed');
  assert.equal(second.gauge(), 0);
  assert.ok(second.logs.some((l) => /half-open/.test(String(l.msg))));
  assert.ok(second.logs.some((l) => /breaker closed/.test(String(l.msg))));
});

test('a failed half-open probe opens the breaker again for another reset timeout', async (t) => {
  const { port } = await deadPort(t);
  const state = memoryState();
  const { exporter } = await startExporter(t, state, port);
  const opened = await failUntilOpen(exporter);
  assert.equal(await saved(state), 'open');
  await until(opened.kind === 'retryable' ? opened.retryAfterMs! : 0);
  const probe = await exporter.export([spanRecord(1)]);
  assert.equal(probe.kind, 'retryable');
  assert.ok(probe.kind === 'retryable' && probe.retryAfterMs! > RESET_MS / 2, 'open again');
  assert.equal(await saved(state), 'open');
});

test('a damaged saved state is reported and the breaker starts closed', async (t) => {
  const state = memoryState();
  await state.set('breaker', '{not json');
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const { exporter, logs, gauge } = await startExporter(t, state, receiver.port);
  assert.ok(logs.some((l) => /damaged/.test(String(l.msg))));
  assert.equal(gauge(), 0);
  assert.deepEqual(await exporter.export([spanRecord(1)]), { kind: 'success' });
});

test('two instances on one PostgreSQL store share the breaker: an open in one stops sends in the other, a probe closing it in one closes it in both', { timeout: 30_000 }, async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const RESET = 2000; // room for the announcement to cross on a busy machine
  const schema = freshSchema(t);
  const pgStore = () => {
    const store = new PostgresStore({ dsn: PG_DSN, schema, poolSize: 2, claimTimeoutMs: 30_000, retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, partitionsAhead: 1 });
    t.after(() => store.close());
    return store;
  };
  const storeA = pgStore();
  await storeA.configureExporters([]); // creates the schema before the second instance opens it
  const storeB = pgStore();
  await storeB.configureExporters([]);
  const { receiver, port } = await deadPort(t);
  const a = await startExporter(t, componentState(storeA, ID), port, RESET);
  const b = await startExporter(t, componentState(storeB, ID), port, RESET);
  const toldA = announcements(storeA);
  const toldB = announcements(storeB);

  await failUntilOpen(a.exporter);
  await toldB.until('open');
  assert.equal(b.gauge(), 1, "the other instance's breaker is open too");

  // Graylog is back, but the shared breaker is open: the second instance makes no attempt.
  await receiver.listen({ port });
  const inB = await b.exporter.export([spanRecord(1)]);
  assert.equal(inB.kind, 'retryable');
  assert.ok(inB.kind === 'retryable' && inB.retryAfterMs! > 0 && inB.retryAfterMs! <= RESET, 'B waits for the half-open time A set');
  assert.equal(receiver.connections, 0, 'no send attempt from the second instance while open');
  assert.equal(b.counters.get('bitville_gelf_send_failures') ?? 0, 0);
  assert.equal(b.counters.get('bitville_gelf_circuit_breaker_transitions') ?? 0, 0, 'adopted, not a transition of its own');

  // B's probe at the half-open time succeeds; A is told and closes without sending anything.
  await until(inB.kind === 'retryable' ? inB.retryAfterMs! : 0);
  assert.deepEqual(await b.exporter.export([spanRecord(1)]), { kind: 'success' });
  await toldA.until('closed');
  assert.equal(a.gauge(), 0, "the first instance's breaker closed with it");
  assert.equal(receiver.connections, 1, 'only the probe of B connected');
  assert.equal(a.counters.get('bitville_gelf_circuit_breaker_transitions'), 1, 'A logged and saved only its own open');
  assert.equal(await saved(componentState(storeA, ID)), 'closed');
});
