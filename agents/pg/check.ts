// `bitville pg-agent --check`: does PostgreSQL let the agent in and show it other sessions'
// queries, are pg_stat_statements and (when configured) the log source usable, is the buffer
// writable and does the collector answer? Nothing is captured or sent.
import { constants, accessSync, readdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import pg from 'pg';
import { checkBufferPath, checkCollector, fail, ok, warn, whoAmI, type CheckResult } from '../runtime/check.js';
import { quoteIdent } from './connection.js';
import type { PgAgentConfig } from './config.js';

function connectFix(err: { code?: string }): string {
  switch (err.code) {
    case '28P01':
    case '28000':
      return "check the role and password in postgres.dsn and pg_hba.conf (peer authentication needs the OS user's name as the role)";
    case '3D000':
      return 'name an existing database in postgres.dsn';
    default:
      return 'is PostgreSQL running and listening where postgres.dsn (or PGHOST/PGPORT) points?';
  }
}

async function checkPostgres(config: PgAgentConfig): Promise<CheckResult[]> {
  const client = new pg.Client({
    connectionString: config.postgres.dsn,
    application_name: config.postgres.application_name,
    statement_timeout: config.postgres.statement_timeout,
    connectionTimeoutMillis: Math.max(config.postgres.statement_timeout, 1000),
    options: '-c default_transaction_read_only=on',
  });
  client.on('error', () => {}); // a dropped connection shows up as the next query's error
  try {
    await client.connect();
  } catch (err) {
    const e = err as Error & { code?: string };
    return [fail(`PostgreSQL connection failed: ${e.message || e.code}`, connectFix(e))];
  }
  const results: CheckResult[] = [];
  try {
    const [who] = (
      await client.query<{ role: string; db: string; superuser: boolean; stats: boolean; version: number }>(
        `SELECT current_user AS role, current_database() AS db, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
           pg_has_role('pg_read_all_stats', 'USAGE') AS stats, current_setting('server_version_num')::int AS version`,
      )
    ).rows;
    results.push(ok(`PostgreSQL connects as role ${who!.role} to database ${who!.db} (server ${Math.floor(who!.version / 10000)})`));
    if (who!.superuser || who!.stats) results.push(ok(`role ${who!.role} can see other sessions' queries (${who!.superuser ? 'superuser' : 'pg_read_all_stats'})`));
    else results.push(fail(`role ${who!.role} cannot see other sessions' queries (every query would read <insufficient privilege>)`, `as a superuser: GRANT pg_read_all_stats TO ${quoteIdent(who!.role)};`));

    if (config.statements.enabled) results.push(await checkStatements(client, who!.db));
    if (config.log_source.enabled) results.push(...(await checkLogSource(client, config, who!.version)));
  } catch (err) {
    results.push(fail(`PostgreSQL check query failed: ${(err as Error).message}`, 'see the PostgreSQL server log'));
  } finally {
    await client.end().catch(() => {});
  }
  return results;
}

async function checkStatements(client: pg.Client, db: string): Promise<CheckResult> {
  const fix = "add pg_stat_statements to shared_preload_libraries (restart), then CREATE EXTENSION pg_stat_statements; in this database; or set statements.enabled: false";
  const [ext] = (await client.query<{ schema: string }>(`SELECT extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = 'pg_stat_statements'`)).rows;
  if (!ext) return warn(`pg_stat_statements is not installed in database ${db}; query totals are off`, fix);
  try {
    await client.query(`SELECT 1 FROM ${ext.schema}.pg_stat_statements(false) LIMIT 1`);
  } catch (err) {
    return warn(`pg_stat_statements is installed but cannot be read: ${(err as Error).message}`, fix);
  }
  return ok(`pg_stat_statements is installed and readable in database ${db}`);
}

async function checkLogSource(client: pg.Client, config: PgAgentConfig, version: number): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let s: { destination: string; collector: string; directory: string; data: string | null; min_duration: string };
  try {
    [s] = (
      await client.query(
        `SELECT current_setting('log_destination') AS destination, current_setting('logging_collector') AS collector,
           current_setting('log_directory') AS directory, current_setting('data_directory', true) AS data,
           current_setting('log_min_duration_statement') AS min_duration`,
      )
    ).rows;
  } catch (err) {
    return [fail(`cannot read the log settings: ${(err as Error).message}`, "GRANT pg_read_all_settings TO the agent's role (pg_monitor includes it)")];
  }
  const destinations = s.destination.split(',').map((d) => d.trim());
  const wanted = config.log_source.format !== 'auto' ? config.log_source.format : version >= 150000 ? 'jsonlog' : 'csvlog';
  const format = config.log_source.format !== 'auto' ? config.log_source.format : version >= 150000 && destinations.includes('jsonlog') ? 'jsonlog' : destinations.includes('csvlog') ? 'csvlog' : undefined;
  if (s.collector !== 'on') results.push(fail(`logging_collector is ${s.collector}; the log source needs it on`, 'ALTER SYSTEM SET logging_collector = on; then restart PostgreSQL'));
  if (!format || !destinations.includes(format)) results.push(fail(`log_destination is '${s.destination}', without ${wanted}`, `ALTER SYSTEM SET log_destination = 'stderr,${wanted}'; SELECT pg_reload_conf();`));
  else results.push(ok(`the server writes a ${format} log (log_destination '${s.destination}')`));
  if (s.min_duration === '-1') results.push(warn('log_min_duration_statement is -1: no statement is logged with its duration, so the log source adds nothing', "ALTER ROLE <application role> SET log_min_duration_statement = '20ms' (or 0 for every statement; see docs/pg-agent.md for the cost)"));
  else results.push(ok(`log_min_duration_statement is ${s.min_duration}`));

  let directory = config.log_source.directory;
  if (!directory) {
    if (!isAbsolute(s.directory) && !s.data) return [...results, fail('cannot see data_directory to find the log directory', "set log_source.directory, or GRANT pg_read_all_settings TO the agent's role")];
    directory = isAbsolute(s.directory) ? s.directory : join(s.data!, s.directory);
  }
  try {
    accessSync(directory, constants.R_OK | constants.X_OK);
    const files = readdirSync(directory).filter((f) => f.endsWith(format === 'csvlog' ? '.csv' : '.json'));
    results.push(files.length > 0 ? ok(`log directory ${directory} is readable (${files.length} ${format} files)`) : warn(`log directory ${directory} is readable but holds no ${format} file yet`, 'check log_destination and that the server has logged since it was set'));
  } catch (err) {
    results.push(fail(`log directory ${directory} cannot be read by ${whoAmI()}: ${(err as { code?: string }).code ?? (err as Error).message}`, 'set log_file_mode = 0640 and a log_directory outside the data directory, and give the agent the server\'s group (SupplementaryGroups=postgres)'));
  }
  return results;
}

export async function checkPgAgent(config: PgAgentConfig): Promise<CheckResult[]> {
  return [
    ...(await checkPostgres(config)),
    checkBufferPath(config.buffer.path, 'StateDirectory=bitville/pg-agent'),
    ...(await checkCollector(config.exporter, ['traces', 'logs'])),
  ];
}
