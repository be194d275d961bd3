// Keeps the error catalogue and its documentation in step.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../test/env.js';
import { ErrorCodes } from './errors.js';

test('every error code is documented in docs/errors.md with its retryability, and no other', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `(BV_[A-Z_]+)` \| (yes|no) \|/gm)].map((m) => [m[1]!, m[2] === 'yes']));
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ErrorCodes).sort());
  for (const [code, { retryable }] of Object.entries(ErrorCodes)) assert.equal(rows.get(code), retryable, code);
});
