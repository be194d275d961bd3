// The redaction processor: golden cases (testdata/*.golden.yaml), the SQL sanitizer and the
// card check on their own, the counts per kind of mask, and config errors.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProcessor, runGolden, span } from '../../test/processors.fixture.js';
import { sanitizeSql } from './sql.js';
import { luhn } from './patterns.js';

test('redaction: keys, values, SQL, URLs (golden)', (t) => runGolden(t, join('plugins', 'redaction', 'testdata', 'redaction.golden.yaml')));
test('redaction: fail-closed allow list (golden)', (t) => runGolden(t, join('plugins', 'redaction', 'testdata', 'strict.golden.yaml')));

test('SQL literals become ? and nothing else changes', () => {
  const cases: [string, string, number][] = [
    ["SELECT * FROM t WHERE a = 'x''y' AND b = 10", 'SELECT * FROM t WHERE a = ? AND b = ?', 2],
    ['SELECT "col1", t2.c3 FROM t2 WHERE id IN (1, 2, 3.5) LIMIT $1', 'SELECT "col1", t2.c3 FROM t2 WHERE id IN (?, ?, ?) LIMIT $1', 3],
    ["/*traceparent='00-abc-01'*/ SELECT 1 -- it's 5\nFROM x", "/*traceparent='00-abc-01'*/ SELECT ? -- it's 5\nFROM x", 1],
    ["INSERT INTO b VALUES (X'1F', B'0101', U&'d\\0061t', -7, 1e-3)", 'INSERT INTO b VALUES (?, ?, ?, -?, ?)', 5],
    ['SELECT $tag$ a \'b\' $tag$, $$c$$', 'SELECT ?, ?', 2],
    ['DEALLOCATE pdo_stmt_00000001', 'DEALLOCATE pdo_stmt_00000001', 0],
    ["SELECT 'unterminated", 'SELECT ?', 1],
    ["SELECT E'it\\'s', 'a\\' , 3", "SELECT ?, ? , ?", 3],
  ];
  for (const [sql, want, count] of cases) assert.deepEqual(sanitizeSql(sql), { text: want, count }, sql);
});

test('card numbers are masked only when the Luhn check passes', () => {
  assert.equal(luhn('4111111111111111'), true);
  assert.equal(luhn('5500005555555559'), true);
  assert.equal(luhn('4111111111111112'), false);
});

test('every mask is counted by kind', async (t) => {
  const h = await buildProcessor(t, { redaction: { allow_all_keys: true, blocked_values: ['secret\\d'] } }, 'redaction');
  await h.processor.process(
    [
      span({ attributes: { a: 'x@y.example and z@w.example', b: '5500-0055-5555-5559', c: 'bearer t0k', d: 'secret1', 'db.statement': "SELECT 'a', 2", 'url.query': 'q=1&pwd=2' } }),
      span({ attributes: { e: 'fine' } }),
    ],
    'traces',
  );
  const got = {
    email: await h.metric('bitville_redaction_masked_email_total'),
    card: await h.metric('bitville_redaction_masked_credit_card_total'),
    bearer: await h.metric('bitville_redaction_masked_bearer_token_total'),
    value: await h.metric('bitville_redaction_masked_value_total'),
    sql: await h.metric('bitville_redaction_masked_sql_total'),
    url: await h.metric('bitville_redaction_masked_url_query_total'),
    removed: await h.metric('bitville_redaction_removed_total'),
  };
  assert.deepEqual(got, { email: 2, card: 1, bearer: 1, value: 1, sql: 2, url: 1, removed: 0 });
});

test('hash_function replaces masked text by its hash', async (t) => {
  const h = await buildProcessor(t, { redaction: { allow_all_keys: true, hash_function: 'sha1', summary: 'silent' } }, 'redaction');
  const [r] = await h.processor.process([span({ attributes: { to: 'mail alice@example.com' } })], 'traces');
  assert.deepEqual(r!.attributes, { to: `mail ${createHash('sha1').update('alice@example.com').digest('hex')}` });
});

test('a bad regex is a config error naming the list entry', async (t) => {
  const err = await buildProcessor(t, { redaction: { blocked_values: ['ok', '(unclosed'], builtin_patterns: ['email', 'ssn'] } }, 'redaction').then(
    () => assert.fail('should not load'),
    (e: Error) => e.message,
  );
  assert.match(err, /processors\.redaction\.blocked_values\[1\]: not a valid regular expression/);
  assert.match(err, /processors\.redaction\.builtin_patterns\[1\]: /);
});
