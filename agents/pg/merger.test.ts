// De-duplication of sampled and logged observations of the same query.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueryMerger } from './merger.js';
import type { QueryObservation } from './observation.js';

const obs = (over: Partial<QueryObservation>): QueryObservation => ({
  source: 'sampling',
  pid: 7,
  startUs: 1_000_000n,
  endUs: 1_300_000n,
  endPrecision: 'state_change',
  endUncertaintyUs: 0n,
  applicationName: 'req:abc',
  query: 'SELECT pg_sleep(0.3)',
  database: 'app',
  waitEvents: [],
  queryId: undefined,
  truncated: false,
  failed: false,
  ...over,
});

test('back-to-back statements of one backend are paired by text and end, not only by start', () => {
  const out: QueryObservation[] = [];
  const merger = new QueryMerger((o) => out.push(o), 1000, true);
  // A 0.2 ms statement logged just before the long one starts (same pid, starts 0.3 ms apart).
  merger.addLogged(obs({ source: 'log', startUs: 999_700n, endUs: 999_900n, endPrecision: 'millisecond', query: 'SELECT 1' }), 0);
  merger.addSampled(obs({}), 10);
  assert.equal(out.length, 0, 'the short one is not taken for the long one');
  merger.addLogged(obs({ source: 'log', startUs: 999_600n, endUs: 1_299_600n + 300n, endPrecision: 'millisecond' }), 20);
  assert.equal(out.length, 1);
  assert.deepEqual([out[0]!.source, out[0]!.endPrecision, out[0]!.startUs, out[0]!.endUs], ['sampling+log', 'exact', 1_000_000n, 1_300_300n]);
  merger.flush(2000);
  assert.deepEqual(out.map((o) => o.query), ['SELECT pg_sleep(0.3)', 'SELECT 1'], 'the short one is sent alone once its wait is over');
});

test('without the log source, sampled observations pass straight through', () => {
  const out: QueryObservation[] = [];
  new QueryMerger((o) => out.push(o), 1000, false).addSampled(obs({}), 0);
  assert.equal(out.length, 1);
});

test('a statement sampled from its Bind phase pairs with the logged Execute; the end comes from the log', () => {
  const out: QueryObservation[] = [];
  const merger = new QueryMerger((o) => out.push(o), 1000, true);
  // Seen at Bind (1.000 s) and Execute (1.004 s: planning took 4 ms, more than the pairing tolerance); ended between polls.
  merger.addSampled(obs({ startUs: 1_000_000n, executeStartUs: 1_004_000n, endUs: 1_150_000n, endUncertaintyUs: 50_000n, endPrecision: 'poll' }), 0);
  merger.addLogged(obs({ source: 'log', startUs: 1_004_200n, endUs: 1_120_200n, endPrecision: 'millisecond', endUncertaintyUs: 1000n }), 10);
  assert.equal(out.length, 1);
  assert.deepEqual([out[0]!.startUs, out[0]!.endUs, out[0]!.endUncertaintyUs, out[0]!.endPrecision], [1_000_000n, 1_004_000n + 116_000n, 0n, 'exact']);
});

test('a backend that reports idle a few ms after it logged the duration (a busy machine) is still one statement', () => {
  const out: QueryObservation[] = [];
  const merger = new QueryMerger((o) => out.push(o), 1000, true);
  // Measured under load: logged 0.76 ms, state_change 4.1 ms after the logged end.
  merger.addSampled(obs({ startUs: 1_000_000n, endUs: 1_005_100n, query: 'SELECT count(*) FROM t' }), 0);
  merger.addLogged(obs({ source: 'log', startUs: 1_000_200n, endUs: 1_001_000n, endPrecision: 'millisecond', endUncertaintyUs: 1000n, query: 'SELECT count(*) FROM t' }), 10);
  assert.equal(out.length, 1);
  assert.deepEqual([out[0]!.source, out[0]!.endUs], ['sampling+log', 1_000_800n]);
  // A logged end this much later than the sampled one is another execution.
  merger.addSampled(obs({ startUs: 2_000_000n, endUs: 2_001_000n, query: 'SELECT count(*) FROM t' }), 20);
  merger.addLogged(obs({ source: 'log', startUs: 2_000_300n, endUs: 2_020_000n, endPrecision: 'millisecond', endUncertaintyUs: 1000n, query: 'SELECT count(*) FROM t' }), 30);
  merger.flush(5000);
  assert.deepEqual(out.slice(1).map((o) => o.source), ['sampling', 'log']);
});

test('a sample caught at Bind only pairs with the Execute logged a few ms later; the end is the log\'s', () => {
  const out: QueryObservation[] = [];
  const merger = new QueryMerger((o) => out.push(o), 1000, true);
  const sql = 'SELECT $1::int AS item, pg_sleep($2)';
  // Seen once, at Bind (1.000 s); the next poll found the next statement (end bounds 1.02-1.08 s).
  merger.addSampled(obs({ query: sql, startUs: 1_000_000n, endUs: 1_079_800n, endUncertaintyUs: 59_800n, endPrecision: 'next_query' }), 0);
  // The Execute began 5 ms later (measured under load) and ran 20 ms.
  merger.addLogged(obs({ source: 'log', query: sql, startUs: 1_005_000n, endUs: 1_025_500n, endPrecision: 'millisecond', endUncertaintyUs: 1000n }), 10);
  assert.equal(out.length, 1, 'one statement');
  assert.deepEqual([out[0]!.source, out[0]!.startUs, out[0]!.endUs, out[0]!.endPrecision], ['sampling+log', 1_000_000n, 1_025_500n, 'millisecond']);
  // A sample whose Execute start is known does not take a log line starting well after it.
  merger.addSampled(obs({ query: sql, startUs: 2_000_000n, executeStartUs: 2_000_400n, endUs: 2_050_000n, endUncertaintyUs: 50_000n, endPrecision: 'next_query' }), 20);
  merger.addLogged(obs({ source: 'log', query: sql, startUs: 2_010_000n, endUs: 2_030_000n, endPrecision: 'millisecond', endUncertaintyUs: 1000n }), 30);
  merger.flush(5000);
  assert.deepEqual(out.slice(1).map((o) => o.source), ['sampling', 'log']);
});
