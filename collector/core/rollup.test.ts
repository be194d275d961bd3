// Rollup helpers: how a range is covered by rows of each resolution, and how deltas are summed per row.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addFields, coveringRanges, rowsOf } from './rollup.js';

const M = 60_000;
const H = 60 * M;
const D = 24 * H;

test('a range is covered exactly, coarse rows in the middle and finer ones at the ragged ends', () => {
  const from = 10 * D - H - 25 * M; // 22:35 the day before
  const until = 12 * D + 2 * H + 17 * M; // 02:17 two days later
  const parts = coveringRanges(from, until);
  assert.deepEqual(
    parts.map((p) => [p.resolutionMs / M, (p.untilMs - p.fromMs) / M]),
    [[1, 5], [10, 20], [60, 1 * 60], [1440, 2 * 1440], [60, 2 * 60], [10, 10], [1, 7]],
  );
  // Contiguous and complete.
  for (let i = 1; i < parts.length; i++) assert.equal(parts[i]!.fromMs, parts[i - 1]!.untilMs);
  assert.equal(parts[0]!.fromMs, from);
  assert.equal(parts.at(-1)!.untilMs, until);
  assert.deepEqual(coveringRanges(5 * M, 8 * M), [{ resolutionMs: M, fromMs: 5 * M, untilMs: 8 * M }]);
  assert.deepEqual(coveringRanges(8 * M, 8 * M), []);
});

test('deltas are summed per row at every resolution; a sum that returns to zero drops its key', () => {
  const rows = rowsOf([
    { once: 'a', deltas: [{ series: 's', atMs: D + 61 * M, key: 'k', add: { n: 1, ms: 2.5 } }] },
    { once: 'b', deltas: [{ series: 's', atMs: D + 61 * M + 5, key: 'k', add: { n: 1, ms: -2.5 } }] },
  ]);
  assert.equal(rows.size, 4);
  for (const row of rows.values()) assert.deepEqual(row.add, { n: 2 });
  assert.deepEqual([...rows.values()].map((r) => r.bucketMs), [D + 61 * M, D + 60 * M, D + 60 * M, D]);
  assert.deepEqual(addFields({ a: 0.1, b: 1 }, { a: -0.1, c: 3 }), { b: 1, c: 3 });
});
