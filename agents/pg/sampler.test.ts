// The sampler's state machine on hand-made snapshots: each way a followed query can end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ActivityRow, ActivitySampler } from './sampler.js';

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

test('a new query_start ends the previous query; a vanished backend ends at the poll', () => {
  const s = new ActivitySampler({ queryTextLimit: 1024, sqlcommenter: true });
  s.observe([row({})], 1_050_000n);
  const [first] = s.observe([row({ query_start_us: '1200000', query: 'SELECT 2' })], 1_250_000n);
  assert.deepEqual([first!.endUs, first!.endPrecision, first!.query], [1_200_000n, 'next_query', 'SELECT 1']);
  const [second] = s.observe([], 1_350_000n);
  assert.deepEqual([second!.startUs, second!.endUs, second!.endPrecision], [1_200_000n, 1_350_000n, 'poll']);
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
