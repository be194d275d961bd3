// The health rules, as a pure state machine: each evaluation takes the collector's samples (or
// none when the scrape failed), the agents' last heartbeats and the time, and returns the alerts
// that started firing or resolved since the last one. No I/O and no clock of its own, so the
// rules are tested by feeding samples.
import { total, type Sample } from './exposition.js';

export type Severity = 'critical' | 'warning';

export interface RuleSettings {
  /** A GELF breaker not closed (open or half-open) for this long fires `gelf_breaker_open`. */
  breakerOpenFor: number;
  /** An exporter backlog that has not shrunk, and has grown, for this long fires `export_queue_growing`. */
  queueGrowingFor: number;
  /** Store size over this share of max_size fires `store_nearly_full`. */
  storeFullRatio: number;
  /** Lost over received, over dropWindow, above this fires `records_dropped`. */
  dropRatio: number;
  dropWindow: number;
  /** An agent that sent a heartbeat and none since for this long fires `agent_silent`. */
  agentSilence: number;
}

export interface Alert {
  /** `gelf_breaker_open`, `agent_silent`, ... */
  name: string;
  /** What it is about: an exporter id, `php_agent@web1`, `store`, `collector`. */
  subject: string;
  severity: Severity;
  /** One line for people (GELF `_body`). */
  summary: string;
  /** The measured value that decided it, when there is one. */
  value?: number;
  /** When the condition began (ms since the epoch). */
  sinceMs: number;
}

export interface Transition {
  state: 'firing' | 'resolved';
  alert: Alert;
}

interface Condition {
  name: string;
  subject: string;
  severity: Severity;
  summary: string;
  value?: number;
  /** How long the condition must hold before it fires. */
  forMs: number;
}

const RECEIVED = ['otelcol_receiver_accepted_spans', 'otelcol_receiver_accepted_log_records', 'otelcol_receiver_accepted_metric_points'];
const REFUSED = ['otelcol_receiver_refused_spans', 'otelcol_receiver_refused_log_records', 'otelcol_receiver_refused_metric_points'];
const LOST = [...REFUSED, 'bitville_exporter_dropped_records', 'bitville_store_dropped_size_records'];

export class HealthRules {
  /** key -> when its condition was first seen true (pending or firing). */
  private readonly since = new Map<string, number>();
  private readonly firing = new Map<string, Alert>();
  /** exporter -> start of the current run of non-shrinking backlog. */
  private readonly queueRun = new Map<string, { atMs: number; size: number; last: number }>();
  /** (time, lost, received) totals, oldest first, covering dropWindow. */
  private readonly totals: { atMs: number; lost: number; received: number }[] = [];
  /** Metric conditions of the last successful scrape (kept while scrapes fail). */
  private metricConditions: Condition[] = [];

  constructor(private readonly settings: RuleSettings) {}

  /** Alerts firing now. */
  active(): Alert[] {
    return [...this.firing.values()];
  }

  /**
   * One evaluation. `samples` undefined means the scrape failed: the metric conditions keep
   * their last known state rather than resolving on missing data. `heartbeats` maps an agent
   * (`source@host`) to the arrival time of its last heartbeat.
   */
  evaluate(nowMs: number, samples: readonly Sample[] | undefined, heartbeats: ReadonlyMap<string, number>): Transition[] {
    if (samples) this.metricConditions = this.fromMetrics(nowMs, samples);
    const conditions = [...this.metricConditions, ...this.fromHeartbeats(nowMs, heartbeats)];

    const out: Transition[] = [];
    const seen = new Set<string>();
    for (const c of conditions) {
      const key = `${c.name}|${c.subject}`;
      seen.add(key);
      const since = this.since.get(key) ?? nowMs;
      this.since.set(key, since);
      const current = this.firing.get(key);
      if (current) {
        current.value = c.value;
      } else if (nowMs - since >= c.forMs) {
        const alert: Alert = { name: c.name, subject: c.subject, severity: c.severity, summary: c.summary, value: c.value, sinceMs: since };
        this.firing.set(key, alert);
        out.push({ state: 'firing', alert });
      }
    }
    for (const key of [...this.since.keys()]) {
      if (seen.has(key)) continue;
      this.since.delete(key);
      const alert = this.firing.get(key);
      if (alert) {
        this.firing.delete(key);
        out.push({ state: 'resolved', alert });
      }
    }
    return out;
  }

  private fromMetrics(nowMs: number, samples: readonly Sample[]): Condition[] {
    const s = this.settings;
    const out: Condition[] = [];
    for (const x of samples) {
      if (x.name === 'bitville_gelf_circuit_breaker_state' && x.value > 0) {
        const exporter = x.labels.exporter ?? 'gelf';
        out.push({
          name: 'gelf_breaker_open',
          subject: exporter,
          severity: 'critical',
          summary: `GELF exporter ${exporter}: circuit breaker ${x.value === 2 ? 'half-open' : 'open'}; records wait in the store for Graylog`,
          value: x.value,
          forMs: s.breakerOpenFor,
        });
      }
      if (x.name === 'bitville_store_writable' && x.value === 0) {
        out.push({ name: 'store_unwritable', subject: 'store', severity: 'critical', summary: 'the store cannot commit (disk full, I/O error or database unreachable); senders get 503', value: 0, forMs: 0 });
      }
    }

    const size = samples.find((x) => x.name === 'bitville_store_size_bytes')?.value;
    const max = samples.find((x) => x.name === 'bitville_store_max_size_bytes')?.value;
    if (size !== undefined && max && size / max > s.storeFullRatio) {
      const ratio = size / max;
      out.push({ name: 'store_nearly_full', subject: 'store', severity: 'warning', summary: `the store is at ${(ratio * 100).toFixed(1)}% of max_size; beyond it the oldest records are dropped`, value: ratio, forMs: 0 });
    }

    const queues = new Set<string>();
    for (const x of samples) {
      if (x.name !== 'otelcol_exporter_queue_size') continue;
      const exporter = x.labels.exporter ?? '';
      queues.add(exporter);
      const run = this.queueRun.get(exporter);
      if (!run || x.value < run.last) this.queueRun.set(exporter, { atMs: nowMs, size: x.value, last: x.value });
      else run.last = x.value;
      const r = this.queueRun.get(exporter)!;
      if (nowMs - r.atMs >= s.queueGrowingFor && x.value > r.size) {
        out.push({ name: 'export_queue_growing', subject: exporter, severity: 'warning', summary: `exporter ${exporter}: backlog grew from ${r.size} to ${x.value} records without shrinking`, value: x.value, forMs: 0 });
      }
    }
    for (const exporter of [...this.queueRun.keys()]) if (!queues.has(exporter)) this.queueRun.delete(exporter);

    const point = { atMs: nowMs, lost: total(samples, LOST), received: total(samples, [...RECEIVED, ...REFUSED]) };
    // A restart resets the counters: start the window again.
    const last = this.totals.at(-1);
    if (last && (point.lost < last.lost || point.received < last.received)) this.totals.length = 0;
    this.totals.push(point);
    while (this.totals.length > 1 && this.totals[1]!.atMs <= nowMs - s.dropWindow) this.totals.shift();
    const first = this.totals[0]!;
    const lost = point.lost - first.lost;
    const received = point.received - first.received;
    if (lost > 0 && lost > s.dropRatio * received) {
      out.push({
        name: 'records_dropped',
        subject: 'collector',
        severity: 'warning',
        summary: `${lost} of ${received} records received were lost (refused, unsendable or dropped by the size cap)`,
        value: received > 0 ? lost / received : lost,
        forMs: 0,
      });
    }
    return out;
  }

  private fromHeartbeats(nowMs: number, heartbeats: ReadonlyMap<string, number>): Condition[] {
    const out: Condition[] = [];
    for (const [agent, lastMs] of heartbeats) {
      const silent = nowMs - lastMs;
      if (silent > this.settings.agentSilence) {
        out.push({ name: 'agent_silent', subject: agent, severity: 'critical', summary: `agent ${agent} has sent no heartbeat for ${Math.round(silent / 1000)} s`, value: silent / 1000, forMs: 0 });
      }
    }
    return out;
  }
}
