// The sampler's state machine on hand-made snapshots (each way a followed query can end), and
// on a real server's snapshots for the extended protocol's phases.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { skipWithoutPostgres } from '../../test/env.js';
import type { QueryObservation } from './observation.js';
import { ACTIVITY_SQL, type ActivityRow, ActivitySampler, CLIENT_TURNAROUND_US } from './sampler.js';
import { admin, cleanupSql, connectClient, newCorrelationId } from './testing.fixture.js';

const row = (over: Partial<ActivityRow>): ActivityRow => ({
  pid: 100,
  datname: 'app',
  application_name: 'req:abc',
  state: 'active',
  query_start_us: '1000000',
  state_change_us: '1000000',
  wait_event_type: null,
  wait_event: null,
  query_id: null,
  query: 'SELECT 1',
  query_bytes: 8,
  ...over,
});

test('a query followed from first sight ends at the state change to idle, with the wait events seen', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  assert.deepEqual(s.observe([], 0n), []);
  assert.deepEqual(s.observe([row({ wait_event_type: 'Timeout', wait_event: 'PgSleep' })], 1_100_000n), []);
  assert.deepEqual(s.followedPids(), [100]);
  const [done] = s.observe([row({ state: 'idle', state_change_us: '1300000' })], 1_400_000n);
  assert.equal(done!.startUs, 1_000_000n);
  assert.equal(done!.endUs, 1_300_000n);
  assert.equal(done!.endPrecision, 'state_change');
  assert.deepEqual(done!.waitEvents, ['Timeout:PgSleep']);
  // The idle backend keeps showing that query: it is reported once.
  assert.deepEqual(s.observe([row({ state: 'idle', state_change_us: '1300000' })], 1_500_000n), []);
});

test('a new query_start ends the previous query between the last poll that saw it and that start; a vanished backend between two polls', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  // The poll was sent at 1.04 s and arrived at 1.05 s: the query was running by the snapshot.
  s.observe([row({})], 1_050_000n, 1_040_000n);
  const [first] = s.observe([row({ query_start_us: '1200000', query: 'SELECT 2' })], 1_250_000n, 1_240_000n);
  assert.deepEqual([first!.endPrecision, first!.query], ['next_query', 'SELECT 1']);
  // Back to back is the likeliest: the next start minus the client's turnaround, with the
  // uncertainty reaching back to the last poll that saw it running.
  assert.equal(first!.endUs, 1_200_000n - CLIENT_TURNAROUND_US);
  assert.equal(first!.endUs - first!.endUncertaintyUs, 1_040_000n, 'the lower bound: last seen running');
  assert.ok(first!.endUs + first!.endUncertaintyUs >= 1_200_000n, 'the upper bound, the next start, is covered');
  const [second] = s.observe([], 1_350_000n, 1_340_000n);
  assert.equal(second!.endPrecision, 'poll');
  assert.equal(second!.startUs, 1_200_000n);
  assert.deepEqual([second!.endUs - second!.endUncertaintyUs, second!.endUs + second!.endUncertaintyUs], [1_240_000n, 1_350_000n]);
});

test('a next start right after the last poll that saw the statement running: the end is that poll, never earlier', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  s.observe([row({})], 1_100_000n, 1_100_000n);
  // The next statement started 50 µs after that poll: less than the turnaround, so the end is the lower bound.
  const [done] = s.observe([row({ query_start_us: '1100050', query: 'SELECT 2' })], 1_200_000n);
  assert.deepEqual([done!.endUs, done!.endUncertaintyUs], [1_100_000n, 50n]);
});

test('a statement the polls missed between two seen ones: the true end lies within the stated uncertainty', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  // SELECT 1 runs 1.000-1.120 s, a missed 30 ms statement 1.120-1.150, SELECT 3 from 1.150 s.
  s.observe([row({})], 1_050_000n);
  const [done] = s.observe([row({ query_start_us: '1150000', query: 'SELECT 3' })], 1_160_000n);
  const trueEnd = 1_120_000n;
  assert.ok(done!.endUs - done!.endUncertaintyUs <= trueEnd && trueEnd <= done!.endUs + done!.endUncertaintyUs);
  assert.equal(done!.endPrecision, 'next_query');
});

test('a state change is the exact end: no uncertainty', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  s.observe([row({})], 1_050_000n);
  const [done] = s.observe([row({ state: 'idle', state_change_us: '1234567' })], 1_300_000n);
  assert.deepEqual([done!.endUs, done!.endUncertaintyUs], [1_234_567n, 0n]);
});

test('Parse, Bind and Execute of one statement (query_start restarts, same text) are one statement', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  const sql = 'SELECT * FROM items WHERE id = $1';
  s.observe([], 0n);
  // Caught at Bind; the next poll sees the Execute (started 0.4 ms later), then the backend idle.
  assert.deepEqual(s.observe([row({ query: sql, query_start_us: '1000000' })], 1_000_300n), []);
  assert.deepEqual(s.observe([row({ query: sql, query_start_us: '1000400' })], 1_100_000n), [], 'still the same statement');
  const done = s.observe([row({ query: sql, query_start_us: '1000400', state: 'idle', state_change_us: '1150000' })], 1_200_000n);
  assert.equal(done.length, 1);
  assert.deepEqual([done[0]!.startUs, done[0]!.executeStartUs, done[0]!.endUs, done[0]!.endPrecision], [1_000_000n, 1_000_400n, 1_150_000n, 'state_change']);

  // The same text executed again later (an N+1 loop over a prepared statement) is a new statement.
  s.observe([row({ query: sql, query_start_us: '1300000' })], 1_300_100n);
  const [again] = s.observe([row({ query: sql, query_start_us: '1380000' })], 1_400_000n);
  assert.deepEqual([again!.startUs, again!.endPrecision], [1_300_000n, 'next_query']);

  // Caught at Bind inside its implicit transaction; by the next poll the Execute has finished and
  // the backend is idle (no transaction start to compare): one statement, ending at the state change.
  s.observe([row({ query: sql, query_start_us: '1500000', xact_start_us: '1499900' })], 1_500_300n);
  const [phased] = s.observe([row({ query: sql, query_start_us: '1500400', xact_start_us: null, state: 'idle', state_change_us: '1530000' })], 1_600_000n);
  assert.deepEqual([phased!.startUs, phased!.endUs, phased!.endPrecision], [1_500_000n, 1_530_000n, 'state_change']);

  // Two autocommit executions 2 ms apart: each has its own transaction, so two statements.
  s.observe([row({ query: sql, query_start_us: '2000000', xact_start_us: '2000000' })], 2_000_500n);
  const [first] = s.observe([row({ query: sql, query_start_us: '2002000', xact_start_us: '2002000' })], 2_100_000n);
  assert.deepEqual([first!.startUs, first!.endUs], [2_000_000n, 2_002_000n - CLIENT_TURNAROUND_US]);
});

test('the client address, port and backend start of the connection are kept', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  s.observe([row({ client_addr: '10.0.0.7', client_port: 51234, backend_start_us: '900000' })], 1_050_000n);
  const [done] = s.observe([row({ state: 'idle', state_change_us: '1060000' })], 1_100_000n);
  assert.deepEqual([done!.clientAddress, done!.clientPort, done!.backendStartUs], ['10.0.0.7', 51234, 900_000n]);
});

test('a query that began and ended between polls is reported from the idle row, except on the first poll', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  assert.deepEqual(s.observe([row({ pid: 1, state: 'idle', state_change_us: '1000500' })], 1_100_000n), []);
  const [done] = s.observe([row({ pid: 2, state: 'idle', query_start_us: '1150000', state_change_us: '1150800' })], 1_200_000n);
  assert.deepEqual([done!.pid, done!.endUs - done!.startUs, done!.endPrecision], [2, 800n, 'state_change']);
});

test('an aborted transaction marks the statement failed; a text at the size limit is truncated', () => {
  const s = new ActivitySampler({ queryTextLimit: 10, sqlcommenter: true });
  s.observe([row({ query_bytes: 9 })], 1_050_000n);
  const [done] = s.observe([row({ state: 'idle in transaction (aborted)', state_change_us: '1060000' })], 1_100_000n);
  assert.equal(done!.failed, true);
  assert.equal(done!.truncated, true);
});

test('only backends with a correlation id, or a traceparent comment when sqlcommenter is on, are followed', () => {
  const on = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  const off = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: false });
  const commented = row({ application_name: 'php', query: "SELECT 1 /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/" });
  for (const s of [on, off]) s.observe([], 0n);
  on.observe([commented, row({ pid: 5, application_name: 'psql' })], 1_050_000n);
  off.observe([commented], 1_050_000n);
  assert.deepEqual(on.followedPids(), [100]);
  assert.deepEqual(off.followedPids(), []);
});

test('real server: a statement whose Bind (planning) and Execute are both seen is one statement from Bind to its end', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const fn = `pgagent_slow_plan_${randomBytes(4).toString('hex')}`;
  const setup = await admin(t);
  // Immutable with constant arguments: the planner runs it at Bind, so planning takes 15 ms.
  await setup.query(`CREATE FUNCTION ${fn}() RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(0.015); RETURN 1; END$$`);
  cleanupSql(t, `DROP FUNCTION IF EXISTS ${fn}()`);
  const id = newCorrelationId();
  const client = await connectClient(t, `req:${id}`);
  const pid = (client as unknown as { processID: number }).processID;
  // Warm the session (catalog caches, the function's compilation) so the phases are Parse, Bind, Execute alone.
  await client.query(`SELECT ${fn}()`);

  // Poll as fast as the server answers, so both phases are seen.
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: false });
  const done: QueryObservation[] = [];
  s.observe([], BigInt(Date.now()) * 1000n);
  let running = true;
  const poller = (async () => {
    const phases = new Set<string>();
    while (running) {
      const sent = BigInt(Date.now()) * 1000n;
      const { rows } = await setup.query<ActivityRow>(ACTIVITY_SQL, [s.followedPids(), false]);
      for (const r of rows) if (r.pid === pid && r.state === 'active') phases.add(r.query_start_us!);
      done.push(...s.observe(rows.filter((r) => r.pid === pid), BigInt(Date.now()) * 1000n, sent));
    }
    return phases;
  })();
  const sql = `SELECT $1::int + ${fn}() FROM pg_sleep(0.2)`;
  const started = Date.now();
  await client.query(sql, [1]);
  const clientMs = Date.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 30));
  running = false;
  const phases = await poller;
  assert.ok(phases.size >= 2, `the poll saw ${phases.size} query_start values for the statement (Bind, Execute)`);
  const mine = done.filter((o) => o.pid === pid && o.query === sql);
  assert.equal(mine.length, 1, `one statement, got ${mine.map((o) => `${o.startUs}-${o.endUs}`).join(', ')}`);
  const ms = Number(mine[0]!.endUs - mine[0]!.startUs) / 1000;
  assert.ok(ms >= 215 && ms <= clientMs + 1, `${ms} ms: planning (15 ms) and execution (200 ms), within the client's ${clientMs} ms`);
  assert.ok(mine[0]!.executeStartUs! - mine[0]!.startUs >= 14_000n, 'the Execute phase began after planning');
});
