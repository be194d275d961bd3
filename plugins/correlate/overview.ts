// The `overview` processor: serves the overview pages and JSON (overview-web.ts) from the
// rollups the correlate processor adds with each summary (rollup.ts). In the logs pipeline it
// also files the pg-agent's pg_stat_statements totals under the same normalized statements, so
// the statements table shows them beside the sampled figures. Records pass through unchanged.
// docs/overview.md explains the figures and their limits.
import { createHash } from 'node:crypto';
import { attachRollup, defineProcessor } from '../../collector/core/api.js';
import type { AdminRoute, FlatRecord, LogRecord, Processor, ProcessorContext } from '../../collector/core/api.js';
import { normalizeSql } from './statements.js';
import { SERIES } from './rollup-names.js';
import { overviewRoutes } from './overview-web.js';

export type OverviewConfig = Record<string, never>;

/** The pg-agent's event for one statement's pg_stat_statements delta over an interval (docs/pg-agent.md). */
export const PG_STATEMENTS_EVENT = 'postgresql.statements.top';

export const overviewFactory = defineProcessor<OverviewConfig>({
  kind: 'processor',
  type: 'overview',
  configSchema: (z) => z.strictObject({}),
  create: (_config, ctx) => new Overview(ctx),
});

class Overview implements Processor {
  constructor(private readonly ctx: ProcessorContext) {}

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  adminRoutes(): AdminRoute[] {
    return overviewRoutes(this.ctx.reader);
  }

  process(records: FlatRecord[]): FlatRecord[] {
    for (const r of records) if (r.kind === 'log' && isPgStatements(r)) withPgStatementsRollup(r);
    return records;
  }
}

function isPgStatements(r: LogRecord): boolean {
  return r.attributes['event.name'] === PG_STATEMENTS_EVENT || r.eventName === PG_STATEMENTS_EVENT;
}

/** Files one pg_stat_statements delta under its normalized statement and minute. */
export function withPgStatementsRollup(r: LogRecord): LogRecord {
  const a = r.attributes;
  const text = a['db.query.text'];
  const calls = a['postgresql.statements.calls'];
  const totalMs = a['postgresql.statements.total_time_ms'];
  if (typeof text !== 'string' || typeof calls !== 'number' || typeof totalMs !== 'number') return r;
  const atMs = Number(BigInt(r.timeUnixNano) / 1_000_000n);
  // The same delta re-delivered by the agent (a retry) has the same identity: counted once.
  const once = createHash('sha256')
    .update(`${r.timeUnixNano}\n${String(a['postgresql.query_id'])}\n${String(a['db.namespace'])}\n${String(a['postgresql.user'])}`)
    .digest('hex')
    .slice(0, 24);
  return attachRollup(r, { once: `pgss:${once}`, deltas: [{ series: SERIES.pgStatements, atMs, key: normalizeSql(text), add: { calls, ms: totalMs } }] });
}
