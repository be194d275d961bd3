// Totals from pg_stat_statements: every interval, the top N query ids by execution time spent in
// that interval (deltas of calls, total and mean time, rows), one OTLP log record each. Skipped,
// with one log line, while the extension is not installed in the agent's database.
import type { Logger } from 'pino';
import type { AgentLog } from '../runtime/types.js';
import type { MonitorConnection } from './connection.js';
import { analyzeSql } from './sql-text.js';

interface StatementRow {
  key: string;
  query_id: string;
  datname: string | null;
  rolname: string | null;
  calls: string;
  total_ms: number;
  rows: string;
  query: string | null;
}

const EXTENSION_SQL = `SELECT extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = 'pg_stat_statements'`;

const statementsSql = (schema: string) => `SELECT s.dbid || ':' || s.userid || ':' || s.queryid || ':' || s.toplevel AS key,
  s.queryid::text AS query_id, d.datname, r.rolname, s.calls::text AS calls, s.total_exec_time AS total_ms, s.rows::text AS rows, s.query
FROM ${schema}.pg_stat_statements(true) s
LEFT JOIN pg_database d ON d.oid = s.dbid LEFT JOIN pg_roles r ON r.oid = s.userid`;

interface Totals {
  calls: bigint;
  totalMs: number;
  rows: bigint;
}

export class StatementsReporter {
  private previous: Map<string, Totals> | undefined;
  private previousAt = 0;
  private missingLogged = false;

  constructor(
    private readonly conn: MonitorConnection,
    private readonly options: { top: number; redactLiterals: boolean; logger: Logger },
  ) {}

  /** Takes a snapshot; from the second one on, returns the top-N deltas since the previous one as log records. */
  async report(nowMs: number): Promise<AgentLog[]> {
    const [ext] = await this.conn.query<{ schema: string }>(EXTENSION_SQL);
    if (!ext) {
      if (!this.missingLogged) this.options.logger.info('pg-agent: pg_stat_statements is not installed in this database; totals are off until it is (CREATE EXTENSION pg_stat_statements, with it in shared_preload_libraries)');
      this.missingLogged = true;
      this.previous = undefined;
      return [];
    }
    this.missingLogged = false;
    const rows = await this.conn.query<StatementRow>(statementsSql(ext.schema));
    const current = new Map<string, Totals>();
    for (const r of rows) current.set(r.key, { calls: BigInt(r.calls), totalMs: r.total_ms, rows: BigInt(r.rows) });
    const previous = this.previous;
    const intervalMs = nowMs - this.previousAt;
    this.previous = current;
    this.previousAt = nowMs;
    if (!previous) return [];

    const deltas = rows
      .map((r) => {
        const now = current.get(r.key)!;
        const before = previous.get(r.key);
        // A new entry, or one reset since: its totals are all from this interval.
        const base = before && before.calls <= now.calls ? before : { calls: 0n, totalMs: 0, rows: 0n };
        return { r, calls: now.calls - base.calls, totalMs: now.totalMs - base.totalMs, rows: now.rows - base.rows };
      })
      .filter((d) => d.calls > 0n)
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, this.options.top);

    const timeUnixNano = (BigInt(nowMs) * 1_000_000n).toString();
    return deltas.map(({ r, calls, totalMs, rows: rowCount }, rank) => {
      const sql = analyzeSql(r.query ?? '');
      const text = this.options.redactLiterals ? sql.redacted : sql.raw;
      const attributes: AgentLog['attributes'] = {
        'event.name': 'postgresql.statements.top',
        'db.system.name': 'postgresql',
        'db.query.text': text,
        'postgresql.query_id': r.query_id,
        'postgresql.statements.rank': rank + 1,
        'postgresql.statements.calls': Number(calls),
        'postgresql.statements.total_time_ms': round3(totalMs),
        'postgresql.statements.mean_time_ms': round3(totalMs / Number(calls)),
        'postgresql.statements.rows': Number(rowCount),
        'postgresql.statements.interval_ms': intervalMs,
      };
      if (r.datname) attributes['db.namespace'] = r.datname;
      if (r.rolname) attributes['postgresql.user'] = r.rolname;
      if (sql.operation) attributes['db.operation.name'] = sql.operation;
      return {
        timeUnixNano,
        severityNumber: 9,
        severityText: 'INFO',
        body: `pg_stat_statements #${rank + 1}: ${calls} calls, ${round3(totalMs)} ms: ${text.slice(0, 200)}`,
        attributes,
      };
    });
  }
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
