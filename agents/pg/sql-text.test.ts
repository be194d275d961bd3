import assert from 'node:assert/strict';
import { test } from 'node:test';
import { correlationIdFromAppName, parseAppName, parseTraceParent, traceIdFor } from './correlation.js';
import { CsvRecords, csvLogEntry, JsonLines, observationFromLog, parseJsonLogLine, parseLogTime } from './log-source.js';
import type { QueryObservation } from './observation.js';
import { spanFor } from './spans.js';
import { analyzeSql } from './sql-text.js';

test('literals become placeholders; identifiers, parameters and keywords stay', () => {
  const sql = `SELECT "Name", 'o''brien', E'a\\'b', $$dollar 'x'$$, $tag$ y $tag$, 42, 3.14e-2, x'1F', $1 FROM users WHERE id = 7 -- it's a comment`;
  const { redacted } = analyzeSql(sql);
  assert.equal(redacted, `SELECT "Name", ?, ?, ?, ?, ?, ?, ?, $1 FROM users WHERE id = ? -- it's a comment`);
  for (const secret of ['brien', 'dollar', '42', '3.14', '1F']) assert.ok(!redacted.includes(secret), secret);
});

test('a text cut short inside a literal is still redacted to its end', () => {
  assert.equal(analyzeSql(`INSERT INTO t VALUES ('card 4111 1111`).redacted, 'INSERT INTO t VALUES (?');
});

test('operation and the single collection are found where cheap', () => {
  assert.deepEqual(pick(analyzeSql('select * from public.Orders o where o.id = 1')), { operation: 'SELECT', collection: 'public.orders' });
  assert.deepEqual(pick(analyzeSql('INSERT INTO "Items"(a) VALUES (1)')), { operation: 'INSERT', collection: 'Items' });
  assert.deepEqual(pick(analyzeSql('UPDATE accounts SET x = 1')), { operation: 'UPDATE', collection: 'accounts' });
  assert.deepEqual(pick(analyzeSql('DELETE FROM only sessions')), { operation: 'DELETE', collection: 'sessions' });
  // Two tables: no collection (the conventions ask for one only when it is unambiguous).
  assert.deepEqual(pick(analyzeSql('SELECT * FROM a JOIN b ON a.id = b.id')), { operation: 'SELECT', collection: undefined });
  assert.deepEqual(pick(analyzeSql('SELECT pg_sleep(0.3)')), { operation: 'SELECT', collection: undefined });
  assert.deepEqual(pick(analyzeSql("INSERT INTO items(v) SELECT 'x' FROM pg_sleep(0.1)")), { operation: 'INSERT', collection: 'items' });
  assert.deepEqual(pick(analyzeSql('/* lead */ select 1')), { operation: 'SELECT', collection: undefined });
});

test('a sqlcommenter comment is read (appended or prepended) and kept out of the query text', () => {
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const appended = analyzeSql(`SELECT 1 /*controller='index',traceparent='${encodeURIComponent(tp)}'*/`);
  assert.equal(appended.comment?.fields.traceparent, tp);
  assert.equal(appended.comment?.fields.controller, 'index');
  assert.equal(appended.redacted, 'SELECT ?');
  const prepended = analyzeSql(`/*traceparent='${tp}'*/ SELECT 2`);
  assert.equal(prepended.comment?.fields.traceparent, tp);
  assert.equal(prepended.raw, 'SELECT 2');
  // An ordinary comment is not sqlcommenter and stays.
  assert.equal(analyzeSql('SELECT 1 /* hello */').comment, undefined);
  assert.equal(analyzeSql('SELECT 1 /* hello */').raw, 'SELECT 1 /* hello */');
});

test('correlation ids: a W3C trace id is used as is, another shape gives a stable derived trace id', () => {
  assert.equal(correlationIdFromAppName('req:0AF7651916CD43DD8448EB211C80319C'), '0AF7651916CD43DD8448EB211C80319C');
  assert.equal(traceIdFor('0AF7651916CD43DD8448EB211C80319C'), '0af7651916cd43dd8448eb211c80319c');
  assert.equal(correlationIdFromAppName('psql'), undefined);
  assert.equal(correlationIdFromAppName('req:'), undefined);
  const derived = traceIdFor('legacy-42');
  assert.match(derived, /^[0-9a-f]{32}$/);
  assert.equal(traceIdFor('legacy-42'), derived);
  assert.notEqual(traceIdFor('legacy-43'), derived);
  assert.equal(parseTraceParent('00-00000000000000000000000000000000-b7ad6b7169203331-01'), undefined);
  assert.equal(parseTraceParent('garbage'), undefined);
});

test('application_name with the PHP worker: the id stays exactly the id, the worker becomes span attributes; older tags still work', () => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  // The PHP agent's longest tag (7-digit pid) is 53 bytes, within PostgreSQL's 63.
  assert.ok(`req:${id}/4194304@0a1b2c3d`.length <= 63);
  assert.deepEqual(parseAppName(`req:${id}/31337@0a1b2c3d`), { correlationId: id, worker: { pid: 31337, hostKey: '0a1b2c3d' } });
  assert.equal(correlationIdFromAppName(`req:${id}/31337@0a1b2c3d`), id);
  // Older agents and hand-written tags: the whole rest is the id, no worker.
  assert.deepEqual(parseAppName(`req:${id}`), { correlationId: id });
  assert.deepEqual(parseAppName('req:legacy-42'), { correlationId: 'legacy-42' });
  // Anything short of the exact suffix is part of a hand-written id.
  for (const tag of ['req:a/b', 'req:a/31337@0A1B2C3D', 'req:a/31337@0a1b2c', 'req:a/0@0a1b2c3d', 'req:/31337@0a1b2c3d', 'req:a/-1@0a1b2c3d']) {
    assert.deepEqual(parseAppName(tag), { correlationId: tag.slice(4) }, tag);
  }
  assert.equal(parseAppName('psql'), undefined);
  assert.equal(parseAppName('req:'), undefined);

  const obs: QueryObservation = {
    source: 'sampling', pid: 77, startUs: 1_000_000n, endUs: 1_005_000n, endPrecision: 'state_change', endUncertaintyUs: 0n,
    applicationName: `req:${id}/31337@0a1b2c3d`, query: 'SELECT 1', database: 'shop', waitEvents: [], queryId: undefined, truncated: false, failed: false,
  };
  const ctx = { serverAddress: 'db', serverPort: 5432, redactLiterals: true, sqlcommenter: false };
  const span = spanFor(obs, ctx)!;
  assert.equal(span.traceId, id);
  assert.equal(span.attributes['bitville.correlation_id'], id);
  assert.equal(span.attributes['bitville.opener.pid'], 31337);
  assert.equal(span.attributes['bitville.opener.host_key'], '0a1b2c3d');
  const old = spanFor({ ...obs, applicationName: `req:${id}` }, ctx)!;
  assert.equal(old.attributes['bitville.correlation_id'], id);
  assert.equal(old.attributes['bitville.opener.pid'], undefined);
  assert.equal(old.attributes['bitville.opener.host_key'], undefined);
});

test('log records: jsonlog lines, csvlog records split across reads, duration messages', () => {
  assert.equal(parseLogTime('2026-11-25 06:10:42.542 UTC'), BigInt(Date.parse('2026-11-25T06:10:42.542Z')) * 1000n);
  const lines = new JsonLines();
  const line = `{"timestamp":"2026-11-25 06:10:42.542 UTC","pid":13238,"dbname":"test","error_severity":"LOG","message":"duration: 0.041 ms  execute <unnamed>: select $1::int as x","application_name":"req:abc","query_id":5641609531476378699}`;
  assert.deepEqual(lines.push(line.slice(0, 50)), []);
  const [whole] = lines.push(`${line.slice(50)}\n`);
  const entry = parseJsonLogLine(whole!)!;
  assert.equal(entry.queryId, '5641609531476378699');
  const obs = observationFromLog(entry)!;
  assert.equal(obs.endUs - obs.startUs, 41n);
  // The log time is cut to the millisecond: the end lies in the millisecond after it, reported in its middle.
  assert.equal(obs.endUs, BigInt(Date.parse('2026-11-25T06:10:42.542Z')) * 1000n + 500n);
  assert.ok(obs.endUncertaintyUs >= 500n);
  assert.equal(obs.query, 'select $1::int as x');
  assert.equal(obs.applicationName, 'req:abc');
  // parse/bind steps are not queries of their own
  assert.equal(observationFromLog({ ...entry, message: 'duration: 0.9 ms  parse <unnamed>: select 1' }), undefined);

  const csv = new CsvRecords();
  const record = `2026-11-25 06:10:42.542 UTC,"postgres","test",4242,"127.0.0.1:5000",abc.1,1,"SELECT",2026-11-25 06:10:40 UTC,3/4,0,LOG,00000,"duration: 12.500 ms  statement: SELECT 'a,""b""
c'",,,,,,,,,"req:xyz","client backend",,0\n`;
  assert.deepEqual(csv.push(record.slice(0, 120)), []);
  const [fields] = csv.push(record.slice(120));
  const csvObs = observationFromLog(csvLogEntry(fields!)!)!;
  assert.equal(csvObs.pid, 4242);
  assert.equal(csvObs.endUs - csvObs.startUs, 12_500n);
  assert.equal(csvObs.query, `SELECT 'a,"b"\nc'`);
  assert.equal(csvObs.applicationName, 'req:xyz');
});

function pick(f: ReturnType<typeof analyzeSql>) {
  return { operation: f.operation, collection: f.collection };
}
