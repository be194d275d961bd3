// The pg-agent against the real PostgreSQL: what a user sees in the spans it produces.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import pg from 'pg';
import { PG_DSN, skipWithoutPostgres } from '../../test/env.js';
import { BitvilleError } from '../../collector/common/errors.js';
import { parseAgentConfig } from '../runtime/index.js';
import { pgAgentSchema } from './config.js';
import { admin, cleanupSql, connectClient, durationMs, newCorrelationId, startAgent, timed } from './testing.fixture.js';

const POLL_MS = 100;

test('config: defaults, and unknown keys refused with their path', () => {
  const config = parseAgentConfig('pg.yaml', { project: 'shop' }, pgAgentSchema);
  assert.equal(config.sampling.poll_interval, 100);
  assert.equal(config.sampling.redact_literals, true);
  assert.equal(config.log_source.enabled, false);
  assert.equal(config.statements.top, 10);
  assert.throws(() => parseAgentConfig('pg.yaml', { project: 'shop', sampling: { poll_interval: '100ms', redact: false } }, pgAgentSchema), (err: BitvilleError) => {
    assert.equal(err.code, 'BV_CONFIG_INVALID');
    assert.match(err.message, /pg\.yaml: sampling\.redact: unknown key/);
    return true;
  });
});

test('sampling: each statement of a request becomes one CLIENT span with its correlation id and a duration within poll precision', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const table = `pgagent_items_${randomBytes(4).toString('hex')}`;
  const setup = await admin(t);
  await setup.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text)`);
  cleanupSql(t, `DROP TABLE IF EXISTS ${table}`);

  const { sink } = await startAgent(t);
  const id = newCorrelationId();
  const client = await connectClient(t, `req:${id}`);
  const pid = (client as unknown as { processID: number }).processID;
  const statements = [
    { sql: 'SELECT pg_sleep(0.3)', serverMs: 300, name: 'SELECT test' },
    { sql: `INSERT INTO ${table}(v) SELECT 'secret-value-1' FROM pg_sleep(0.15)`, serverMs: 150, name: `INSERT ${table}` },
    { sql: `UPDATE ${table} SET v = 'secret-value-2' WHERE id > 0 AND pg_sleep(0.15) IS NOT NULL`, serverMs: 150, name: `UPDATE ${table}` },
  ];
  const clientMs: number[] = [];
  for (const s of statements) clientMs.push(await timed(client, s.sql));
  await sink.until(() => sink.spans(id).length >= 3, 'three spans');
  const spans = sink.spans(id).sort((a, b) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1));
  assert.deepEqual(spans.map((s) => s.name), statements.map((s) => s.name));
  spans.forEach((span, i) => {
    const a = span.attributes;
    assert.equal(span.kind, 'client');
    assert.equal(span.traceId, id, 'the correlation id is the trace id');
    assert.equal(span.parentSpanId, '');
    assert.equal(a['bitville.correlation_id'], id);
    assert.equal(a['db.system.name'], 'postgresql');
    assert.equal(a['db.namespace'], 'test');
    assert.equal(a['server.port'], 5432);
    assert.equal(a['postgresql.pid'], pid);
    assert.equal(a['bitville.db.query_truncated'], false);
    assert.ok(!String(a['db.query.text']).includes('secret-value'), `literals redacted: ${a['db.query.text']}`);
    // The true duration lies within the span's stated end uncertainty, which a poll interval bounds.
    const d = durationMs(span);
    const u = a['bitville.end_uncertainty_ms'] as number;
    // At most the gap between two polls, which timer jitter on a loaded machine can stretch.
    assert.ok(u >= 0 && u <= POLL_MS * 2, `uncertainty ${u} ms`);
    assert.ok(d + u >= statements[i]!.serverMs && d - u <= clientMs[i]!, `span ${i} lasted ${d} ± ${u} ms; the server slept ${statements[i]!.serverMs} ms, the client waited ${clientMs[i]} ms`);
    assert.equal(a['client.address'], '127.0.0.1');
    assert.equal(a['client.port'], (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort);
    assert.match(String(a['postgresql.backend_start']), /^\d{4}-\d\d-\d\dT/);
  });
  assert.equal(spans[1]!.attributes['db.operation.name'], 'INSERT');
  assert.equal(spans[1]!.attributes['db.collection.name'], table);
  assert.match(String(spans[1]!.attributes['db.query.text']), new RegExp(`^INSERT INTO ${table}\\(v\\) SELECT \\? FROM pg_sleep\\(\\?\\)$`));
  assert.ok((spans[0]!.attributes['postgresql.wait_events'] as string[]).includes('Timeout:PgSleep'));
  // The last statement ended with the backend going idle: the server's own timestamp.
  assert.equal(spans[2]!.attributes['bitville.db.end_precision'], 'state_change');
  assert.equal(spans[2]!.attributes['bitville.end_uncertainty_ms'], 0);
});

test('sqlcommenter: a traceparent comment gives the exact parent span id; raw text when redaction is off', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const { sink } = await startAgent(t, { sampling: { redact_literals: false } });
  const traceId = newCorrelationId();
  const parent = randomBytes(8).toString('hex');
  // No req: application_name: the comment alone makes the query followed.
  const client = await connectClient(t, 'php-fpm');
  await client.query(`SELECT 'visible-literal', pg_sleep(0.2) /*controller='cart',traceparent='00-${traceId}-${parent}-01'*/`);
  await sink.until(() => sink.spans(traceId).length === 1, 'the commented query');
  const [span] = sink.spans(traceId);
  assert.equal(span!.traceId, traceId);
  assert.equal(span!.parentSpanId, parent);
  assert.equal(span!.attributes['db.query.text'], `SELECT 'visible-literal', pg_sleep(0.2)`);
});

test('a correlation id of another shape is kept as given, with a stable derived trace id', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const { sink } = await startAgent(t);
  const legacy = `legacy-${randomBytes(4).toString('hex')}`;
  const client = await connectClient(t, `req:${legacy}`);
  await client.query('SELECT pg_sleep(0.2)');
  await sink.until(() => sink.spans(legacy).length === 1, 'the legacy-id query');
  const [span] = sink.spans(legacy);
  assert.match(span!.traceId, /^[0-9a-f]{32}$/);
  assert.notEqual(span!.traceId, legacy);
});

test('a role without pg_read_all_stats is stopped with a message naming the grant; after the grant it starts', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const role = `pgagent_noperm_${randomBytes(4).toString('hex')}`;
  const setup = await admin(t);
  await setup.query(`CREATE ROLE ${role} LOGIN`);
  cleanupSql(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`, `DROP ROLE IF EXISTS ${role}`);
  const url = new URL(PG_DSN);
  url.username = role;
  await assert.rejects(startAgent(t, { postgres: { dsn: url.toString() } }), (err: BitvilleError) => {
    assert.equal(err.code, 'BV_PG_PRIVILEGES');
    assert.match(err.message, new RegExp(`GRANT pg_read_all_stats TO ${role};`));
    return true;
  });
  await setup.query(`GRANT pg_read_all_stats TO ${role}`);
  const { sink } = await startAgent(t, { postgres: { dsn: url.toString() } });
  const id = newCorrelationId();
  const client = await connectClient(t, `req:${id}`);
  await client.query('SELECT pg_sleep(0.15)');
  await sink.until(() => sink.spans(id).length === 1, 'a span seen by the granted role');
  assert.equal(sink.spans(id)[0]!.attributes['db.query.text'], 'SELECT pg_sleep(?)');
});

test('a server-side kill of the agent connection is survived: it reconnects and keeps capturing, never reporting itself', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const { sink, registry, applicationName } = await startAgent(t, { postgres: { reconnect_backoff: ['50ms'] } });
  const setup = await admin(t);
  const { rows } = await setup.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
  assert.equal(rows.length, 1);
  await setup.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);

  const id = newCorrelationId();
  const client = await connectClient(t, `req:${id}`);
  await client.query('SELECT pg_sleep(0.25)');
  await sink.until(() => sink.spans(id).length === 1, 'a span after the kill');
  const reconnects = (await registry.getSingleMetric('bitville_pg_agent_reconnects_total')!.get()).values[0]!.value;
  assert.equal(reconnects, 1);
  const after = await setup.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
  assert.equal(after.rows.length, 1, 'one new agent session');
  assert.notEqual(after.rows[0]!.pid, rows[0]!.pid);
  const ownPids = new Set([rows[0]!.pid, after.rows[0]!.pid]);
  assert.ok(sink.spans().every((s) => !ownPids.has(s.attributes['postgresql.pid'] as number)), 'the agent never reports its own queries');
});

test('pg_stat_statements: periodic top-N deltas as log records', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const setup = await admin(t);
  const { rows } = await setup.query<{ loaded: boolean }>(`SELECT current_setting('shared_preload_libraries') ~ 'pg_stat_statements' AS loaded`);
  if (!rows[0]!.loaded) {
    t.skip('pg_stat_statements is not in shared_preload_libraries (agents/pg/testdata/setup-server.sh sets it, with a restart)');
    return;
  }
  await setup.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  // pg_stat_statements tells queries apart by their tree (a relation counts, an alias does not).
  const marker = `pgagent_marker_${randomBytes(4).toString('hex')}`;
  await setup.query(`CREATE TABLE ${marker} (n int)`);
  cleanupSql(t, `DROP TABLE IF EXISTS ${marker}`);
  const { sink } = await startAgent(t, { statements: { interval: '200ms', top: 1000 } });
  const client = await connectClient(t, 'bitville-pg-agent-test-load');
  for (let i = 0; i < 10; i++) await client.query(`SELECT count(*) FROM ${marker} WHERE n > ${i}`);
  const mine = () => sink.logs().filter((l) => String(l.attributes['db.query.text']).includes(marker));
  const calls = () => mine().reduce((n, l) => n + (l.attributes['postgresql.statements.calls'] as number), 0);
  await sink.until(() => calls() >= 10, 'ten calls reported');
  assert.equal(calls(), 10, 'deltas, not running totals');
  const log = mine()[0]!;
  assert.equal(log.attributes['event.name'], 'postgresql.statements.top');
  assert.equal(log.attributes['db.query.text'], `SELECT count(*) FROM ${marker} WHERE n > $1`);
  assert.ok((log.attributes['postgresql.statements.mean_time_ms'] as number) >= 0);
  assert.equal(log.attributes['db.namespace'], 'test');
});

/**
 * The log source needs logging_collector = on (restart; agents/pg/testdata/setup-server.sh) and
 * jsonlog in log_destination (reload; set here, idempotently). log_min_duration_statement is set
 * only for the test's own session, so nothing else on the shared server is logged because of it.
 */
async function logSourceMissing(setup: pg.Client): Promise<string | undefined> {
  const { rows } = await setup.query<{ collector: string; destination: string; superuser: string }>(
    `SELECT current_setting('logging_collector') AS collector, current_setting('log_destination') AS destination, current_setting('is_superuser') AS superuser`,
  );
  const s = rows[0]!;
  if (s.collector !== 'on') return 'logging_collector is off (it needs a restart: run agents/pg/testdata/setup-server.sh once before the tests)';
  if (!s.destination.split(',').includes('jsonlog')) {
    if (s.superuser !== 'on') return `log_destination '${s.destination}' has no jsonlog and the test role cannot change it`;
    await setup.query(`ALTER SYSTEM SET log_destination = '${s.destination},jsonlog'`);
    await setup.query('SELECT pg_reload_conf()');
    // A reload is signalled, not awaited by the server: check until it shows (bounded).
    for (let i = 0; i < 100; i++) {
      const check = new pg.Client({ connectionString: PG_DSN });
      await check.connect();
      const { rows: r } = await check.query<{ d: string }>(`SELECT current_setting('log_destination') AS d`);
      await check.end();
      if (r[0]!.d.split(',').includes('jsonlog')) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return 'log_destination did not take jsonlog after a reload';
  }
  return undefined;
}

test('log source: statements shorter than the poll interval are captured with exact durations, once each', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const setup = await admin(t);
  const missing = await logSourceMissing(setup);
  if (missing) {
    t.skip(missing);
    return;
  }
  const { agent, sink } = await startAgent(t, { log_source: { enabled: true, poll_interval: '50ms', match_window: '1s' } });
  const id = newCorrelationId();
  const client = await connectClient(t, `req:${id}`, '-c log_min_duration_statement=0');
  const clientMs: number[] = [];
  for (let i = 0; i < 20; i++) clientMs.push(await timed(client, `SELECT ${i} AS n`));
  const longMs = await timed(client, 'SELECT pg_sleep(0.25)');
  await sink.until(() => sink.spans(id).length >= 21, '21 spans');
  await agent.stop(); // sends anything still waiting for a partner: a duplicate would show now
  const spans = sink.spans(id);
  assert.equal(spans.length, 21, 'one span per statement');
  const short = spans.filter((s) => s.attributes['db.query.text'] === 'SELECT ? AS n');
  assert.equal(short.length, 20, 'every short statement captured');
  for (const s of short) {
    assert.ok(['exact', 'millisecond'].includes(s.attributes['bitville.db.end_precision'] as string));
    assert.ok(durationMs(s) < Math.max(...clientMs), `a ${durationMs(s)} ms statement cannot outlast its client round trip`);
  }
  const [long] = spans.filter((s) => String(s.attributes['db.query.text']).includes('pg_sleep'));
  assert.equal(long!.attributes['bitville.db.capture'], 'sampling+log', 'sampled and logged, merged into one');
  assert.equal(long!.attributes['bitville.db.end_precision'], 'exact');
  assert.ok(durationMs(long!) >= 250 && durationMs(long!) <= longMs, `${durationMs(long!)} ms within [250, ${longMs}]`);
});
