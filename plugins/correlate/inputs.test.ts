// The join's inputs kept in memory give the same join as the records read back from a real
// SQLite store, and memory is used only when the store holds exactly what passed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FlatRecord } from '../../collector/core/api.js';
import { JoinInputs } from './inputs.js';
import { buildSummary, joinRecords } from './join.js';
import { withRollup } from './rollup.js';
import { flat, querySpans, requestSpans, sampleRequest, storeWith } from './traces.fixture.js';

const options = { slowestQueries: 3, nPlusOneThreshold: 5, toleranceMs: 2 };

test('a join from memory equals the join of the records read back, whatever the statements look like', async (t) => {
  const store = await storeWith(t);
  const inputs = new JoinInputs();
  const r = sampleRequest({ pid: 77 });
  // Statements that differ in what a kept statement shares with its neighbours or holds itself.
  r.queries.push(
    { sql: 'SELECT pg_sleep(0.2)', atMs: 530, ms: 60, attributes: { 'bitville.end_uncertainty_ms': 40 } },
    { sql: 'BEGIN', atMs: 1, ms: 1 },
    { sql: 'SELECT 1', atMs: 2, ms: 1, attributes: { 'bitville.opener.pid': 77, 'bitville.opener.host_key': 'c4719afa' } },
    { sql: 'SELECT late FROM t', atMs: 700, ms: 5 }, // outside the request's window
  );
  const legacy = flat(querySpans(r, [{ sql: 'UPDATE carts SET n = 1', atMs: 300, ms: 8 }])).map((s) => {
    // The legacy convention: db.system and db.statement; and a failed statement.
    if (s.kind !== 'span') return s;
    const { 'db.system.name': system, 'db.query.text': text, ...rest } = s.attributes;
    return { ...s, attributes: { ...rest, 'db.system': system!, 'db.statement': text! }, status: { code: 2, message: 'deadlock' } };
  });
  const batches: FlatRecord[][] = [flat(querySpans(r, r.queries.slice(0, 4))), flat(requestSpans(r)), flat(querySpans(r, r.queries.slice(4))), legacy];
  // A re-delivered span: the same span id again (the first stored copy counts).
  batches.push(batches[0]!.slice(0, 1));
  for (const batch of batches) {
    for (const record of batch) inputs.add(record);
    await store.append(batch);
  }

  const read = await inputs.read(store, r.correlationId);
  assert.equal(read.fromMemory, true, 'the store holds exactly what passed');
  assert.equal(inputs.kept, 0, 'memory of the id is handed over');
  const fromMemory = joinRecords(r.correlationId, read.records, options);
  const readBack = joinRecords(r.correlationId, await store.byCorrelationId(r.correlationId), options);
  const summary = buildSummary(fromMemory, options)!;
  assert.deepEqual(summary, buildSummary(readBack, options));
  assert.deepEqual(withRollup(summary, fromMemory, options), withRollup(buildSummary(readBack, options)!, readBack, options));
  assert.deepEqual(
    fromMemory.queries.map((q) => [q.span.id, q.span.spanId, q.placement, q.statement, q.text, q.span.name, q.span.status.code, q.span.startTimeUnixNano, q.span.endTimeUnixNano]),
    readBack.queries.map((q) => [q.span.id, q.span.spanId, q.placement, q.statement, q.text, q.span.name, q.span.status.code, q.span.startTimeUnixNano, q.span.endTimeUnixNano]),
  );
  assert.equal(summary.attributes['bitville.db_query_count'], 12, 'the statements in the window once each, the legacy one included');
  assert.equal(summary.attributes['bitville.db_unattributed_count'], 1);
});

test('memory is not used when the store holds other records than those that passed, or more than fit', async (t) => {
  const store = await storeWith(t);
  const r = sampleRequest();
  const inputs = new JoinInputs();
  const requestBatch = flat(requestSpans(r));
  for (const record of requestBatch) inputs.add(record);
  await store.append(requestBatch);
  // A statement that reached the store without passing here (another pipeline, another instance).
  await store.append(flat(querySpans(r)));
  const read = await inputs.read(store, r.correlationId);
  assert.equal(read.fromMemory, false);
  assert.equal(read.records.length, 1 + r.queries.length, 'every stored record, read back');

  const small = new JoinInputs(5);
  const other = sampleRequest();
  const records = [...flat(requestSpans(other)), ...flat(querySpans(other))];
  for (const record of records) small.add(record);
  await store.append(records);
  assert.equal(small.kept, 0, 'an id over the cap is dropped from memory whole');
  const capped = await small.read(store, other.correlationId);
  assert.equal(capped.fromMemory, false);
  assert.equal(capped.records.length, records.length);
});
