// The pg-agent's config: the shared agent keys (project, exporter, batch, buffer, metrics) from
// the agent runtime, plus its own. Defaults live here and nowhere else.
import { z } from 'zod';
import { schemaHelpers } from '../../collector/common/schema.js';
import { runtimeConfigShape } from '../runtime/index.js';

const { duration } = schemaHelpers;

export const pgConfigShape = {
  postgres: z
    .strictObject({
      /** Connection string; when absent the standard PG* variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...) apply. */
      dsn: z.string().min(1).optional(),
      /** The agent's own application_name: its sessions are recognised and never reported by it. */
      application_name: z.string().min(1).max(63).default('bitville-pg-agent'),
      /** statement_timeout of the agent's own queries. */
      statement_timeout: duration().prefault('2s'),
      /** Waits between reconnection attempts after the connection is lost; the last one repeats. */
      reconnect_backoff: z.array(duration()).min(1).prefault(['100ms', '500ms', '1s', '5s', '10s']),
    })
    .prefault({}),
  sampling: z
    .strictObject({
      /** How often pg_stat_activity is read (one query per poll). */
      poll_interval: duration().prefault('100ms'),
      /** Replace literals in db.query.text by `?` (raw text only when false). */
      redact_literals: z.boolean().default(true),
      /** Also follow backends whose query carries a sqlcommenter comment with a traceparent. */
      sqlcommenter: z.boolean().default(true),
    })
    .prefault({}),
  log_source: z
    .strictObject({
      /** Follow the server log for exact durations (needs log_min_duration_statement and a structured log). */
      enabled: z.boolean().default(false),
      /** Log format to read; `auto` picks jsonlog on PostgreSQL 15+ when it is in log_destination, else csvlog. */
      format: z.enum(['auto', 'jsonlog', 'csvlog']).default('auto'),
      /** Directory of the log files; by default asked from the server (data_directory/log_directory), which requires the agent to run beside it. */
      directory: z.string().min(1).optional(),
      /** How often the log file is read for new lines. */
      poll_interval: duration().prefault('100ms'),
      /** How long a sampled span waits for its log line (and a log line for its sampled span) before it is sent alone. */
      match_window: duration().prefault('2s'),
    })
    .prefault({}),
  statements: z
    .strictObject({
      /** Report pg_stat_statements deltas when the extension is installed. */
      enabled: z.boolean().default(true),
      /** How often the top-N report is sent. */
      interval: duration().prefault('60s'),
      /** Query ids per report, by total execution time in the interval. */
      top: z.int().min(1).max(1000).default(10),
    })
    .prefault({}),
};

export const pgAgentSchema = z.strictObject({
  ...runtimeConfigShape({ bufferPath: '/var/lib/bitville/pg-agent/buffer.db', metricsAddress: '127.0.0.1:9467' }),
  ...pgConfigShape,
});

/** The whole parsed config (shared runtime keys included). */
export type PgAgentConfig = z.output<typeof pgAgentSchema>;
const pgOnlySchema = z.strictObject(pgConfigShape);
/** What the capture code reads (PgAgentConfig satisfies it). */
export type PgConfig = z.output<typeof pgOnlySchema>;
