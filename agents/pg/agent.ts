// The Postgres agent: one poll loop over pg_stat_activity, an optional reader of the server
// log, an optional pg_stat_statements reporter, all handing finished work to an AgentSink.
import { isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { BitvilleError } from '../../collector/common/errors.js';
import type { AgentSink } from '../runtime/types.js';
import type { PgConfig } from './config.js';
import { checkPrivileges, MonitorConnection } from './connection.js';
import { CsvRecords, csvLogEntry, JsonLines, type LogEntry, type LogFormat, LogTailer, observationFromLog, parseJsonLogLine } from './log-source.js';
import { QueryMerger } from './merger.js';
import type { QueryObservation } from './observation.js';
import { ACTIVITY_SQL, ActivitySampler, type ActivityRow } from './sampler.js';
import { spanFor, type SpanContext } from './spans.js';
import { StatementsReporter } from './statements.js';

export interface PgAgentOptions {
  config: PgConfig;
  sink: AgentSink;
  logger: Logger;
  /** Where the agent's metrics go (the runtime's registry); a private one when absent. */
  registry?: Registry;
}

function metrics(registry: Registry | undefined) {
  const registers = registry ? [registry] : [];
  return {
    polls: new Counter({ name: 'bitville_pg_agent_polls_total', help: 'pg_stat_activity polls, by outcome', labelNames: ['outcome'], registers }),
    pollSeconds: new Histogram({ name: 'bitville_pg_agent_poll_duration_seconds', help: 'Round trip of one pg_stat_activity poll', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5], registers }),
    queries: new Counter({ name: 'bitville_pg_agent_queries_total', help: 'Queries reported as spans, by how they were captured', labelNames: ['capture'], registers }),
    reconnects: new Counter({ name: 'bitville_pg_agent_reconnects_total', help: 'Reconnections after the connection was lost', registers }),
    logLines: new Counter({ name: 'bitville_pg_agent_log_records_total', help: 'Server log records read', registers }),
  };
}

export class PgAgent {
  private readonly conn: MonitorConnection;
  private readonly metrics: ReturnType<typeof metrics>;
  private sampler: ActivitySampler | undefined;
  private merger: QueryMerger | undefined;
  private spanContext: SpanContext | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly options: PgAgentOptions) {
    const { config, logger } = options;
    this.metrics = metrics(options.registry);
    this.conn = new MonitorConnection({
      dsn: config.postgres.dsn,
      applicationName: config.postgres.application_name,
      statementTimeoutMs: config.postgres.statement_timeout,
      reconnectBackoffMs: config.postgres.reconnect_backoff,
      logger,
      onReconnect: () => this.metrics.reconnects.inc(),
    });
  }

  /** Connects, checks privileges and settings, takes the first snapshot; resolves when capture is running. Throws BitvilleError on a setup problem. */
  async start(): Promise<void> {
    const { config, logger } = this.options;
    await this.conn.connect();
    await checkPrivileges(this.conn);
    // pg_settings has track_activity_query_size in bytes (SHOW adds a unit).
    const [settings] = await this.conn.query<{ bytes: string; version: number }>(
      `SELECT setting AS bytes, current_setting('server_version_num')::int AS version FROM pg_settings WHERE name = 'track_activity_query_size'`,
    );
    this.spanContext = {
      serverAddress: this.conn.server.address,
      serverPort: this.conn.server.port,
      redactLiterals: config.sampling.redact_literals,
      sqlcommenter: config.sampling.sqlcommenter,
    };
    this.sampler = new ActivitySampler({ queryTextLimit: Number(settings!.bytes), sqlcommenter: config.sampling.sqlcommenter });
    this.merger = new QueryMerger((obs) => this.report(obs), config.log_source.match_window, config.log_source.enabled);
    if (config.log_source.enabled) await this.startLogSource(settings!.version);
    await this.poll(); // the first snapshot: what was already running
    this.every(config.sampling.poll_interval, () => this.poll());
    if (config.statements.enabled) {
      const reporter = new StatementsReporter(this.conn, { top: config.statements.top, redactLiterals: config.sampling.redact_literals, logger });
      const report = async () => {
        for (const log of await reporter.report(Date.now())) this.options.sink.submit({ type: 'log', log });
      };
      await report().catch((err) => logger.warn({ err: (err as Error).message }, 'pg-agent: pg_stat_statements snapshot failed'));
      this.every(config.statements.interval, report);
    }
    logger.info({ server: this.conn.server, pollIntervalMs: config.sampling.poll_interval, logSource: config.log_source.enabled }, 'pg-agent: capturing');
  }

  /** Stops the loops, sends what was waiting for a partner, closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([...this.running]);
    this.merger?.flush(0, true);
    await this.conn.close();
  }

  /** Runs fn every intervalMs, measured start to start, never two at once; errors are logged and the loop goes on. */
  private every(intervalMs: number, fn: () => Promise<void>): void {
    const tick = async () => {
      if (this.stopped) return;
      const started = Date.now();
      const run = fn().catch((err) => this.options.logger.warn({ err: (err as Error).message }, 'pg-agent: loop step failed'));
      this.running.add(run);
      await run;
      this.running.delete(run);
      if (this.stopped) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void tick();
      }, Math.max(0, intervalMs - (Date.now() - started)));
      this.timers.add(timer);
    };
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void tick();
    }, intervalMs);
    this.timers.add(timer);
  }

  private async poll(): Promise<void> {
    const sampler = this.sampler!;
    const sentUs = BigInt(Date.now()) * 1000n;
    const stopTimer = this.metrics.pollSeconds.startTimer();
    let rows: ActivityRow[];
    try {
      rows = await this.conn.query<ActivityRow>(ACTIVITY_SQL, [sampler.followedPids(), this.options.config.sampling.sqlcommenter]);
      this.metrics.polls.inc({ outcome: 'ok' });
    } catch (err) {
      this.metrics.polls.inc({ outcome: 'error' });
      throw err;
    } finally {
      stopTimer();
    }
    const now = Date.now();
    for (const obs of sampler.observe(rows, BigInt(now) * 1000n, sentUs)) this.merger!.addSampled(obs, now);
    this.merger!.flush(now);
  }

  private report(obs: QueryObservation): void {
    const span = spanFor(obs, this.spanContext!);
    if (!span) return;
    this.metrics.queries.inc({ capture: obs.source });
    this.options.sink.submit({ type: 'span', span });
  }

  private async startLogSource(serverVersion: number): Promise<void> {
    const { config } = this.options;
    const [s] = await this.conn
      .query<{ destination: string; collector: string; directory: string; data: string | null }>(
        `SELECT current_setting('log_destination') AS destination, current_setting('logging_collector') AS collector,
           current_setting('log_directory') AS directory, current_setting('data_directory', true) AS data`,
      )
      .catch((err) => {
        throw new BitvilleError('BV_PG_PRIVILEGES', `pg-agent: cannot read the log settings (${(err as Error).message}); set log_source.directory, or GRANT pg_read_all_settings TO the agent's role (pg_monitor includes it)`);
      });
    const destinations = s!.destination.split(',').map((d) => d.trim());
    const format: LogFormat | undefined =
      config.log_source.format !== 'auto' ? config.log_source.format : serverVersion >= 150000 && destinations.includes('jsonlog') ? 'jsonlog' : destinations.includes('csvlog') ? 'csvlog' : undefined;
    if (!format || !destinations.includes(format) || s!.collector !== 'on') {
      throw new BitvilleError(
        'BV_PG_LOG_SOURCE',
        `pg-agent: the log source needs logging_collector = on (now ${s!.collector}, changing it needs a restart) and ${format ?? (serverVersion >= 150000 ? 'jsonlog' : 'csvlog')} in log_destination (now '${s!.destination}'): ` +
          `ALTER SYSTEM SET log_destination = 'stderr,${format ?? (serverVersion >= 150000 ? 'jsonlog' : 'csvlog')}'; SELECT pg_reload_conf();`,
      );
    }
    let directory = config.log_source.directory;
    if (!directory) {
      if (!isAbsolute(s!.directory) && !s!.data) {
        throw new BitvilleError('BV_PG_PRIVILEGES', `pg-agent: cannot see data_directory to find the log; set log_source.directory, or GRANT pg_read_all_settings TO the agent's role (pg_monitor includes it)`);
      }
      directory = isAbsolute(s!.directory) ? s!.directory : join(s!.data!, s!.directory);
    }
    const tailer = new LogTailer(directory, format);
    try {
      await tailer.start();
    } catch (err) {
      throw new BitvilleError('BV_PG_LOG_SOURCE', `pg-agent: cannot read the log directory ${directory} (${(err as Error).message}); run the agent as the server's OS user or make the log readable (log_file_mode)`);
    }
    const json = new JsonLines();
    const csv = new CsvRecords();
    this.every(config.log_source.poll_interval, async () => {
      const text = await tailer.read();
      const entries: (LogEntry | undefined)[] = format === 'jsonlog' ? json.push(text).map(parseJsonLogLine) : csv.push(text).map(csvLogEntry);
      const now = Date.now();
      for (const entry of entries) {
        if (!entry) continue;
        this.metrics.logLines.inc();
        const obs = observationFromLog(entry);
        if (obs && obs.applicationName !== config.postgres.application_name && this.sampler!.qualifies(obs.applicationName, obs.query)) this.merger!.addLogged(obs, now);
      }
      this.merger!.flush(now);
    });
  }
}
