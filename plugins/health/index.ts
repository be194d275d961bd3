// The `health` processor: alerts about the collector itself, as records, for shops whose only
// alerting is Graylog. Every `interval` it scrapes the collector's own admin /metrics over HTTP
// (the plugin API gives a component only its own metrics; the admin endpoint has them all),
// evaluates the rules in rules.ts, and on each change emits one log record with
// `bitville.kind` = `alert` (event name `bitville.alert`, state firing or resolved), stored and
// forwarded like any record. In the logs pipeline it also watches agent heartbeats
// (event name `bitville.heartbeat`) to tell when an agent has gone silent. Records pass
// through unchanged. It is a processor, not a receiver, because only a processor sees the
// records (the heartbeats) and can emit records of its own. docs/alerts.md lists the alerts
// and the Graylog search for each.
import { hostname } from 'node:os';
import { defineProcessor, parseHostPort } from '../../collector/core/api.js';
import type { FlatRecord, LogRecord, Processor, ProcessorContext } from '../../collector/core/api.js';
import { parseSamples, type Sample } from './exposition.js';
import { HealthRules, type Alert, type Transition } from './rules.js';

export const HEARTBEAT_EVENT = 'bitville.heartbeat';
export const ALERT_EVENT = 'bitville.alert';

export interface HealthConfig {
  metrics_endpoint: string;
  token?: string | undefined;
  interval: number;
  timeout: number;
  project: string;
  breaker_open_for: number;
  queue_growing_for: number;
  store_full_ratio: number;
  drop_ratio: number;
  drop_window: number;
  agent_silence: number;
}

export const factory = defineProcessor<HealthConfig>({
  kind: 'processor',
  type: 'health',
  apiVersion: 2,
  configSchema: (z, helpers) =>
    z.strictObject({
      /** host:port of the collector's admin server (service.telemetry.metrics.address). */
      metrics_endpoint: helpers.hostPort().default('127.0.0.1:8888'),
      /** The admin server's bearer token, when it has one. */
      token: z.string().min(1).optional(),
      /** How often the rules are evaluated. */
      interval: helpers.duration().default(15_000),
      /** Longest wait for one scrape. */
      timeout: helpers.duration().default(5_000),
      /** `service.name` of the alert records (GELF `_project`). */
      project: z.string().min(1).default('bitville'),
      breaker_open_for: helpers.duration().default(5 * 60_000),
      queue_growing_for: helpers.duration().default(15 * 60_000),
      store_full_ratio: z.number().gt(0).max(1).default(0.9),
      drop_ratio: z.number().min(0).max(1).default(0.01),
      drop_window: helpers.duration().default(5 * 60_000),
      agent_silence: helpers.duration().default(3 * 60_000),
    }),
  create: (config, context) => new HealthProcessor(config, context),
});

export default factory;

/** `php_agent/shop@web1`: one agent daemon, known by its heartbeats. */
function agentOf(record: LogRecord): string {
  const r = record.resource;
  const source = typeof r['bitville.source'] === 'string' ? r['bitville.source'] : 'agent';
  const project = typeof r['service.name'] === 'string' && r['service.name'] ? `/${r['service.name']}` : '';
  const host = typeof r['host.name'] === 'string' && r['host.name'] ? `@${r['host.name']}` : '';
  return `${source}${project}${host}`;
}

class HealthProcessor implements Processor {
  readonly #config: HealthConfig;
  readonly #ctx: ProcessorContext;
  readonly #rules: HealthRules;
  readonly #heartbeats = new Map<string, number>();
  readonly #url: string;
  readonly #host = hostname();
  readonly #metrics;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #stopped = true;
  #scrapeFailing = false;

  constructor(config: HealthConfig, ctx: ProcessorContext) {
    this.#config = config;
    this.#ctx = ctx;
    this.#rules = new HealthRules({
      breakerOpenFor: config.breaker_open_for,
      queueGrowingFor: config.queue_growing_for,
      storeFullRatio: config.store_full_ratio,
      dropRatio: config.drop_ratio,
      dropWindow: config.drop_window,
      agentSilence: config.agent_silence,
    });
    const { host, port } = parseHostPort(config.metrics_endpoint);
    const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' || host === '' ? '127.0.0.1' : host;
    this.#url = `http://${shownHost}:${port}/metrics`;
    const m = ctx.metrics;
    this.#metrics = {
      transitions: m.counter('bitville_health_alert_transitions_total', 'Alert records emitted (firing and resolved).'),
      scrapeFailures: m.counter('bitville_health_scrape_failures_total', 'Scrapes of the collector\'s own /metrics that failed.'),
      emitFailures: m.counter('bitville_health_emit_failures_total', 'Alert records that could not be committed (retried at the next evaluation).'),
      heartbeats: m.counter('bitville_health_heartbeats_total', 'Agent heartbeat records seen.'),
    };
    m.gauge('bitville_health_alerts_firing', 'Alerts firing now.', () => this.#rules.active().length);
    m.gauge('bitville_health_agents_known', 'Agents that have sent a heartbeat.', () => this.#heartbeats.size);
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#schedule();
  }

  async shutdown(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#tick;
  }

  process(records: FlatRecord[]): FlatRecord[] {
    for (const r of records) {
      if (r.kind === 'log' && r.eventName === HEARTBEAT_EVENT) {
        this.#heartbeats.set(agentOf(r), Date.now());
        this.#metrics.heartbeats.inc();
      }
    }
    return records;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#tick = this.#evaluate().finally(() => this.#schedule());
    }, this.#config.interval);
  }

  /** Transitions not yet committed (a failed emit is retried, so no firing or resolved is lost). */
  #unsent: Transition[] = [];

  async #evaluate(): Promise<void> {
    const samples = await this.#scrape();
    const now = Date.now();
    this.#unsent.push(...this.#rules.evaluate(now, samples, this.#heartbeats));
    if (this.#unsent.length === 0) return;
    const batch = this.#unsent;
    try {
      await this.#ctx.emit(batch.map((t) => this.#record(t, now)));
      this.#unsent = [];
      this.#metrics.transitions.inc(batch.length);
      for (const t of batch) {
        const log = t.state === 'firing' ? this.#ctx.logger.warn.bind(this.#ctx.logger) : this.#ctx.logger.info.bind(this.#ctx.logger);
        log({ alert: t.alert.name, subject: t.alert.subject, state: t.state, severity: t.alert.severity, value: t.alert.value }, `alert ${t.state}: ${t.alert.summary}`);
      }
    } catch (err) {
      // Kept for the next evaluation; bounded, since each alert adds at most one pair.
      this.#metrics.emitFailures.inc(batch.length);
      this.#ctx.logger.error({ err: (err as Error).message, alerts: batch.length }, 'cannot store alert records; will retry');
      if (this.#unsent.length > 1000) this.#unsent.splice(0, this.#unsent.length - 1000);
    }
  }

  async #scrape(): Promise<Sample[] | undefined> {
    try {
      const response = await fetch(this.#url, {
        headers: this.#config.token ? { authorization: `Bearer ${this.#config.token}` } : {},
        signal: AbortSignal.timeout(this.#config.timeout),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const samples = parseSamples(await response.text());
      if (this.#scrapeFailing) this.#ctx.logger.info({ url: this.#url }, 'scraping the collector\'s metrics works again');
      this.#scrapeFailing = false;
      return samples;
    } catch (err) {
      this.#metrics.scrapeFailures.inc();
      // One line when it starts failing, not one per interval.
      if (!this.#scrapeFailing) this.#ctx.logger.error({ url: this.#url, err: (err as Error).message }, 'cannot scrape the collector\'s own metrics; metric alerts keep their last state');
      this.#scrapeFailing = true;
      return undefined;
    }
  }

  #record(t: Transition, nowMs: number): LogRecord {
    const a: Alert = t.alert;
    const firing = t.state === 'firing';
    // Severity numbers chosen so GELF `level` is the syslog severity: critical 2, warning 4,
    // resolved informational 6 (plugins/gelf/serializer.ts, syslogLevelOfSeverity).
    const severityNumber = !firing ? 9 : a.severity === 'critical' ? 21 : 13;
    const nanos = `${nowMs}000000`;
    return {
      kind: 'log',
      resource: { 'service.name': this.#config.project, 'host.name': this.#host, 'bitville.source': 'collector' },
      scope: { name: 'bitville.health', version: '1', attributes: {} },
      attributes: {
        'bitville.kind': 'alert',
        'bitville.alert.name': a.name,
        'bitville.alert.state': t.state,
        'bitville.alert.subject': a.subject,
        'bitville.alert.severity': a.severity,
        'bitville.alert.since': new Date(a.sinceMs).toISOString(),
        ...(a.value !== undefined && Number.isFinite(a.value) ? { 'bitville.alert.value': a.value } : {}),
        ...(firing ? {} : { 'bitville.alert.duration_s': Math.round((nowMs - a.sinceMs) / 1000) }),
      },
      traceId: '',
      spanId: '',
      correlationId: '',
      timeUnixNano: nanos,
      observedTimeUnixNano: nanos,
      severityNumber,
      severityText: firing ? a.severity.toUpperCase() : 'RESOLVED',
      body: `${t.state === 'firing' ? 'FIRING' : 'RESOLVED'} ${a.name} ${a.subject}: ${a.summary}`,
      eventName: ALERT_EVENT,
      flags: 0,
    };
  }
}
