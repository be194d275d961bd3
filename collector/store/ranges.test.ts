// The id-range arithmetic both stores keep delivery progress with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runsOf, sortedIds, subtract } from './ranges.js';

test('runs of consecutive ids', () => {
  assert.deepEqual(runsOf([]), []);
  assert.deepEqual(runsOf([4]), [[4, 4]]);
  assert.deepEqual(runsOf([1, 2, 3, 5, 6, 9]), [[1, 3], [5, 6], [9, 9]]);
  assert.deepEqual(runsOf([1, 1, 2]), [[1, 2]], 'a repeated id is one id');
});

test('what a range keeps once delivered ids are taken out', () => {
  assert.deepEqual(subtract([1, 10], [1, 2, 3]), [[4, 10]], 'a batch from the head');
  assert.deepEqual(subtract([1, 10], [8, 9, 10, 11, 12]), [[1, 7]], 'a batch reaching past the end');
  assert.deepEqual(subtract([1, 10], [3, 7]), [[1, 2], [4, 6], [8, 10]], 'single ids from the middle');
  assert.deepEqual(subtract([5, 6], [1, 5, 6, 9]), [], 'the whole range');
  assert.deepEqual(subtract([5, 6], [1, 9]), [[5, 6]], 'nothing of it');
});

test('ids sorted numerically, once each', () => {
  assert.deepEqual(sortedIds([10, 9, 100, 9]), [9, 10, 100]);
});
