// `bitville pg-agent --check` against the real PostgreSQL and a real collector: a role with and
// without pg_read_all_stats, pg_stat_statements present or not, the log source settings, and
// nothing listening where PostgreSQL or the collector should be.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startCollector } from '../../test/collector.js';
import { PG_DSN, skipWithoutPostgres, tempDir } from '../../test/env.js';
import { sql } from '../../test/pg.js';
import { LINE, refusedPort, runCheck } from '../../test/agent-check.fixture.js';

function withUser(dsn: string, user: string): string {
  const url = new URL(dsn);
  url.username = user;
  url.password = '';
  return url.toString();
}

test('pg-agent --check', async (top) => {
  if (await skipWithoutPostgres(top)) return;
  const collector = await startCollector(top);
  const dir = tempDir(top);
  let n = 0;
  const configFile = (lines: string[]) => {
    const file = join(dir, `pg-agent-${n++}.yaml`);
    writeFileSync(file, ['project: shop', `buffer: { path: "${join(dir, 'state', 'buffer.db')}" }`, ...lines].join('\n'));
    return file;
  };
  const database = new URL(PG_DSN).pathname.slice(1);

  await top.test('a superuser and a live collector: ok lines, pg_stat_statements as the database has it, exit 0', async () => {
    const installed = (await sql(`SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'`)).length > 0;
    const run = await runCheck(['pg-agent', '--check', '--config', configFile([`postgres: { dsn: "${PG_DSN}" }`, `exporter: { endpoint: "${collector.otlpUrl}" }`])]);
    assert.equal(run.code, 0, run.lines.join('\n') + run.stderr);
    for (const line of run.lines) assert.match(line, LINE);
    assert.match(run.lines[0]!, new RegExp(`^ok PostgreSQL connects as role postgres to database ${database} \\(server \\d+\\)$`));
    assert.equal(run.lines[1], "ok role postgres can see other sessions' queries (superuser)");
    assert.match(run.lines[2]!, installed ? /^ok pg_stat_statements is installed and readable|^warn pg_stat_statements is installed but cannot be read/ : new RegExp(`^warn pg_stat_statements is not installed in database ${database}; query totals are off \\(add pg_stat_statements to shared_preload_libraries`));
    assert.match(run.lines[3]!, /^ok buffer directory .*\/state can be created/);
    assert.equal(run.lines[4], `ok collector accepts traces at ${collector.otlpUrl}/v1/traces (HTTP 200)`);
    assert.equal(run.lines[5], `ok collector accepts logs at ${collector.otlpUrl}/v1/logs (HTTP 200)`);
    assert.equal(run.lines.length, 6);
  });

  await top.test('a role without pg_read_all_stats is FAIL with the GRANT that fixes it; after the GRANT it is ok', async (t) => {
    const role = `bv_check_${randomBytes(4).toString('hex')}`;
    await sql(`CREATE ROLE ${role} LOGIN`);
    t.after(() => sql(`DROP ROLE IF EXISTS ${role}`));
    const file = configFile([`postgres: { dsn: "${withUser(PG_DSN, role)}" }`, 'statements: { enabled: false }', `exporter: { endpoint: "${collector.otlpUrl}" }`]);
    const before = await runCheck(['pg-agent', '--check', '--config', file]);
    assert.equal(before.code, 1);
    assert.ok(
      before.lines.includes(`FAIL role ${role} cannot see other sessions' queries (every query would read <insufficient privilege>) (as a superuser: GRANT pg_read_all_stats TO ${role};)`),
      before.lines.join('\n'),
    );
    await sql(`GRANT pg_read_all_stats TO ${role}`);
    const after = await runCheck(['pg-agent', '--check', '--config', file]);
    assert.equal(after.code, 0, after.lines.join('\n'));
    assert.ok(after.lines.includes(`ok role ${role} can see other sessions' queries (pg_read_all_stats)`), after.lines.join('\n'));
  });

  await top.test('the log source: each server setting it needs is checked, and an unreadable log directory is FAIL', async () => {
    const [s] = await sql<{ collector: string; destination: string; min: string }>(
      `SELECT current_setting('logging_collector') AS collector, current_setting('log_destination') AS destination, current_setting('log_min_duration_statement') AS min`,
    );
    const missing = join(dir, 'no-such-log-dir');
    const run = await runCheck(['pg-agent', '--check', '--config', configFile([`postgres: { dsn: "${PG_DSN}" }`, 'statements: { enabled: false }', `log_source: { enabled: true, format: jsonlog, directory: "${missing}" }`, `exporter: { endpoint: "${collector.otlpUrl}" }`])]);
    assert.equal(run.code, 1);
    const text = run.lines.join('\n');
    if (s!.collector === 'on') assert.doesNotMatch(text, /logging_collector/);
    else assert.match(text, /^FAIL logging_collector is off; the log source needs it on \(ALTER SYSTEM SET logging_collector = on; then restart PostgreSQL\)$/m);
    if (s!.destination.split(',').map((d) => d.trim()).includes('jsonlog')) assert.match(text, /^ok the server writes a jsonlog log/m);
    else assert.match(text, new RegExp(`^FAIL log_destination is '${s!.destination}', without jsonlog \\(ALTER SYSTEM SET log_destination = 'stderr,jsonlog'; SELECT pg_reload_conf\\(\\);\\)$`, 'm'));
    if (s!.min === '-1') assert.match(text, /^warn log_min_duration_statement is -1/m);
    else assert.match(text, new RegExp(`^ok log_min_duration_statement is ${s!.min}$`, 'm'));
    assert.match(text, new RegExp(`^FAIL log directory ${missing} cannot be read by uid \\d+, gid \\d+: ENOENT \\(set log_file_mode = 0640`, 'm'));
  });

  await top.test('nothing listening: PostgreSQL and the collector are FAIL lines, exit 1', async () => {
    const pgPort = await refusedPort();
    const otlpPort = await refusedPort();
    const run = await runCheck(['pg-agent', '--check', '--config', configFile([`postgres: { dsn: "postgres://postgres@127.0.0.1:${pgPort}/test", statement_timeout: 1s }`, `exporter: { endpoint: "http://127.0.0.1:${otlpPort}" }`])]);
    assert.equal(run.code, 1);
    assert.match(run.lines[0]!, new RegExp(`^FAIL PostgreSQL connection failed: .*ECONNREFUSED.* \\(is PostgreSQL running and listening where postgres\\.dsn \\(or PGHOST/PGPORT\\) points\\?\\)$`));
    assert.equal(run.lines.at(-1), `FAIL collector does not answer at http://127.0.0.1:${otlpPort}/v1/traces: ECONNREFUSED (start the collector (systemctl start bitville-collector) or correct exporter.endpoint)`);
  });
});
