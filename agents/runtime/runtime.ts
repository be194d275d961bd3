// The shared agent runtime: capture code calls submit(); the runtime buffers (memory, then
// disk), batches (max_events or batch timeout), exports OTLP/HTTP protobuf with gzip, retries
// with backoff behind a circuit breaker, and reports itself on /metrics and in pino JSON logs.
import type { Server } from 'node:http';
import { circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, isBrokenCircuitError, type CircuitBreakerPolicy } from 'cockatiel';
import { pino, type Logger } from 'pino';
import { EventBuffer, type DropReason } from './buffer.js';
import type { RuntimeConfig } from './config.js';
import { encodeLogs, encodeSpans, type Scope } from './encode.js';
import { agentMetrics, serveMetrics, type AgentMetrics } from './metrics.js';
import { OtlpHttpTransport, type SendOutcome, type Signal } from './transport.js';
import type { AgentAttributeValue, AgentEvent, AgentLog, AgentSink, AgentSpan } from './types.js';

export type AgentSource = 'php_agent' | 'pg_agent';

export interface AgentRuntimeOptions {
  /** Becomes the resource attribute `bitville.source` and the `agent` label of every metric. */
  source: AgentSource;
  config: RuntimeConfig;
  /** Instrumentation scope of every batch, e.g. { name: 'bitville.php-agent', version: '0.1.0' }. */
  scope: Scope;
  /** Defaults to pino JSON on stdout with `agent` bound. */
  logger?: Logger;
}

/** A failure the breaker counts: retryable, or unauthorized (the data waits for the token to be fixed). */
class RetryableFailure extends Error {
  constructor(readonly outcome: Extract<SendOutcome, { kind: 'retryable' | 'unauthorized' }>) {
    super(outcome.message);
  }
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const NANOS = /^\d{1,20}$/;
const MAX_RETRY_AFTER_MS = 3_600_000;
/** Statuses that refuse a batch for what is in it, so a smaller batch may pass. */
const SPLITTABLE = new Set([400, 413, 422]);
const AUTH_LOG_INTERVAL_MS = 60_000;

/** Why an event cannot be exported, or undefined when it can. Checked at submit so one bad event never poisons a batch. */
function invalidReason(event: AgentEvent): string | undefined {
  if (event?.type === 'span') {
    const s = event.span;
    if (!s || !HEX32.test(s.traceId) || !HEX16.test(s.spanId) || (s.parentSpanId !== '' && !HEX16.test(s.parentSpanId))) return 'bad_id';
    if (!NANOS.test(s.startTimeUnixNano) || !NANOS.test(s.endTimeUnixNano) || typeof s.name !== 'string' || !s.attributes) return 'bad_field';
    return undefined;
  }
  if (event?.type === 'log') {
    const l = event.log;
    if (!l || (l.traceId && !HEX32.test(l.traceId)) || (l.spanId && !HEX16.test(l.spanId))) return 'bad_id';
    if (!NANOS.test(l.timeUnixNano) || typeof l.body !== 'string' || !l.attributes) return 'bad_field';
    return undefined;
  }
  return 'bad_type';
}

export class AgentRuntime implements AgentSink {
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  private readonly config: RuntimeConfig;
  private readonly resource: Record<string, AgentAttributeValue>;
  private readonly buffer: EventBuffer;
  private readonly transport: OtlpHttpTransport;
  private readonly breaker: CircuitBreakerPolicy;
  private breakerOpenedAt = 0;
  private consecutiveFailures = 0;
  private holdUntil = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private inFlight: AbortController | undefined;
  private idleWaiters: (() => void)[] = [];
  private server: Server | undefined;
  private lastMalformedLog = 0;
  private suppressedMalformed = 0;
  private unauthorizedSince = 0;
  private lastAuthLog = 0;
  /** The bound /metrics URL, set by start(). */
  metricsUrl = '';

  constructor(private readonly options: AgentRuntimeOptions) {
    const { config, source } = options;
    this.config = config;
    this.logger = options.logger ?? pino({ base: { agent: source } });
    this.resource = { 'service.name': config.project, 'host.name': config.host_name, 'bitville.source': source };
    this.buffer = new EventBuffer(config.buffer.path, { memoryBytes: config.buffer.memory_limit, diskBytes: config.buffer.disk_limit }, (n, reason) => this.onDrop(n, reason));
    this.transport = new OtlpHttpTransport({ endpoint: config.exporter.endpoint, token: config.exporter.token, timeoutMs: config.exporter.timeout });
    this.breaker = circuitBreaker(
      handleWhen((err) => err instanceof RetryableFailure),
      { halfOpenAfter: config.exporter.breaker.open_for, breaker: new ConsecutiveBreaker(config.exporter.breaker.failures) },
    );
    this.breaker.onBreak(() => {
      this.breakerOpenedAt = Date.now();
      this.logger.warn({ openFor: config.exporter.breaker.open_for }, 'export circuit breaker opened');
    });
    this.breaker.onReset(() => this.logger.info('export circuit breaker closed'));
    this.metrics = agentMetrics(source, () => this.buffer, () => {
      const state = this.breaker.state;
      return state === CircuitState.Closed ? 0 : state === CircuitState.HalfOpen ? 2 : 1;
    }, { memoryBytes: config.buffer.memory_limit, diskBytes: config.buffer.disk_limit });
  }

  /** Opens the disk buffer (replaying what a previous run left), serves /metrics, starts exporting. */
  async start(): Promise<void> {
    this.buffer.open();
    try {
      const { server, url } = await serveMetrics(this.metrics.registry, this.config.metrics.address);
      this.server = server;
      this.metricsUrl = url;
    } catch (err) {
      this.buffer.close();
      throw err;
    }
    if (this.buffer.diskEvents > 0) this.logger.info({ events: this.buffer.diskEvents, bytes: this.buffer.diskBytes }, 'replaying the disk buffer');
    this.running = true;
    this.loop = this.run();
    const every = this.config.heartbeat_interval;
    if (every > 0) this.heartbeatTimer = setInterval(() => void this.heartbeat(), every);
  }

  /**
   * Queues one heartbeat: a log record (event name `bitville.heartbeat`) with the agent's own
   * counters, so silence is detectable downstream (the collector's `health` processor). It is
   * buffered and exported like any event but never counted as a received event.
   */
  async heartbeat(): Promise<void> {
    if (!this.running) return;
    try {
      const sum = async (counter: { get(): Promise<{ values: { value: number }[] }> }) => (await counter.get()).values.reduce((n, v) => n + v.value, 0);
      const [received, exported, dropped] = await Promise.all([sum(this.metrics.received), sum(this.metrics.exported), sum(this.metrics.dropped)]);
      const limits = this.config.buffer;
      const event: AgentEvent = {
        type: 'log',
        log: {
          timeUnixNano: `${Date.now()}000000`,
          severityNumber: 9,
          severityText: 'INFO',
          body: 'heartbeat',
          eventName: 'bitville.heartbeat',
          attributes: {
            'bitville.kind': 'heartbeat',
            'bitville.heartbeat.interval_s': this.config.heartbeat_interval / 1000,
            'bitville.agent.uptime_s': Math.round((Date.now() - this.startedAt) / 1000),
            'bitville.agent.events_received': received,
            'bitville.agent.events_exported': exported,
            'bitville.agent.events_dropped': dropped,
            'bitville.agent.buffered_events': this.buffer.memoryEvents + this.buffer.diskEvents,
            'bitville.agent.buffer_memory_fill': Number((this.buffer.memoryBytes / limits.memory_limit).toFixed(4)),
            'bitville.agent.buffer_disk_fill': Number((this.buffer.diskBytes / limits.disk_limit).toFixed(4)),
            'bitville.agent.exporter_breaker_state': this.breaker.state === CircuitState.Closed ? 0 : this.breaker.state === CircuitState.HalfOpen ? 2 : 1,
          },
        },
      };
      if (!this.running) return;
      this.buffer.add(JSON.stringify(event));
      this.persistTimer ??= setTimeout(() => this.wakeLoop(), this.config.buffer.persist_interval);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'cannot queue a heartbeat');
    }
  }

  submit(event: AgentEvent): void {
    try {
      const reason = invalidReason(event);
      if (reason) return this.countMalformed(reason, { event: JSON.stringify(event)?.slice(0, 200) });
      this.buffer.add(JSON.stringify(event));
      this.metrics.received.inc();
      if (this.buffer.memoryEvents >= this.config.batch.max_events) this.wakeLoop();
      else this.persistTimer ??= setTimeout(() => this.wakeLoop(), this.config.buffer.persist_interval);
    } catch (err) {
      this.countMalformed('unserializable', { err: (err as Error).message });
    }
  }

  /** Counts (and logs, at most every 10 s with a count of the rest) an input refused as malformed. */
  countMalformed(reason: string, detail: Record<string, unknown> = {}): void {
    this.metrics.malformed.inc({ reason });
    const now = Date.now();
    if (now - this.lastMalformedLog < 10_000) {
      this.suppressedMalformed++;
      return;
    }
    this.logger.warn({ reason, ...detail, suppressedSinceLast: this.suppressedMalformed }, 'malformed input dropped');
    this.lastMalformedLog = now;
    this.suppressedMalformed = 0;
  }

  /** Resolves once nothing waits for export (memory and disk empty, no request in flight). */
  drained(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops exporting (an in-flight request is abandoned and its events stay on disk), commits memory to disk, closes. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.heartbeatTimer);
    this.inFlight?.abort();
    this.wakeLoop();
    await this.loop;
    clearTimeout(this.persistTimer);
    this.persist();
    this.buffer.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  private isIdle(): boolean {
    return this.buffer.memoryEvents === 0 && this.buffer.diskEvents === 0 && !this.inFlight;
  }

  private onDrop(count: number, reason: DropReason | 'rejected'): void {
    this.metrics.dropped.inc({ reason }, count);
    this.logger.warn({ count, reason }, 'events dropped');
  }

  private wakeLoop(): void {
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private persist(): void {
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    try {
      this.buffer.persist();
    } catch (err) {
      // Events stay in memory (bounded) and the next wake-up tries again.
      this.logger.error({ err: (err as Error).message }, 'cannot write the disk buffer');
      this.persistTimer = setTimeout(() => this.wakeLoop(), Math.max(this.config.buffer.persist_interval, 1000));
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.persist();
      const now = Date.now();
      if (this.holdUntil > now) {
        await this.sleep(this.holdUntil - now);
        continue;
      }
      const waiting = this.buffer.diskEvents;
      if (waiting === 0) {
        if (this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
        await this.sleep(this.buffer.memoryEvents > 0 ? this.config.buffer.persist_interval : Infinity);
        continue;
      }
      const due = (this.buffer.oldestAcceptedAt() ?? now) + this.config.batch.timeout;
      if (waiting < this.config.batch.max_events && due > now) {
        await this.sleep(due - now);
        continue;
      }
      try {
        await this.exportBatch();
      } catch (err) {
        // A bug or a disk error must not end exporting: log, hold off briefly, go on.
        this.logger.error({ err: (err as Error).message }, 'export loop error');
        this.holdUntil = Date.now() + 1000;
      }
    }
  }

  /** Sends the oldest batch, one request per signal; decides what leaves the buffer and how long to hold off. */
  private async exportBatch(): Promise<void> {
    const rows = this.buffer.take(this.config.batch.max_events);
    const spans: { id: number; span: AgentSpan }[] = [];
    const logs: { id: number; log: AgentLog }[] = [];
    const unreadable: number[] = [];
    for (const row of rows) {
      try {
        const event = JSON.parse(row.json) as AgentEvent;
        if (event.type === 'span') spans.push({ id: row.id, span: event.span });
        else logs.push({ id: row.id, log: event.log });
      } catch {
        unreadable.push(row.id);
      }
    }
    if (unreadable.length) {
      this.buffer.remove(unreadable);
      this.countMalformed('unreadable_row', { rows: unreadable.length });
    }
    this.inFlight = new AbortController();
    try {
      const { resource } = this;
      const { scope } = this.options;
      if (spans.length && !(await this.send('traces', spans, (items) => encodeSpans(items.map((s) => s.span), resource, scope), ({ span }) => ({ traceId: span.traceId, spanId: span.spanId, name: span.name })))) return;
      if (logs.length) await this.send('logs', logs, (items) => encodeLogs(items.map((l) => l.log), resource, scope), ({ log }) => ({ traceId: log.traceId, body: log.body.slice(0, 200) }));
    } finally {
      this.inFlight = undefined;
      this.buffer.release();
    }
  }

  /**
   * One request through the breaker. Returns false when the caller should stop and hold off.
   * A batch refused as a whole for its content (400, 413) is split in halves and each half sent
   * again, recursively, so one bad event costs about 2·log2(batch) extra requests and only the
   * event the collector refuses on its own is dropped; its neighbours are delivered.
   */
  private async send<T extends { id: number }>(
    signal: Signal,
    items: T[],
    encode: (items: T[]) => Uint8Array,
    identify: (item: T) => Record<string, unknown>,
  ): Promise<boolean> {
    const abort = this.inFlight!.signal;
    const ids = items.map((i) => i.id);
    let outcome: SendOutcome;
    try {
      outcome = await this.breaker.execute(async () => {
        const result = await this.transport.send(signal, encode(items), abort);
        if (result.kind === 'retryable' || result.kind === 'unauthorized') throw new RetryableFailure(result);
        return result;
      });
    } catch (err) {
      if (isBrokenCircuitError(err)) {
        this.holdUntil = Math.max(this.breakerOpenedAt + this.config.exporter.breaker.open_for, Date.now() + 10);
        return false;
      }
      if (!(err instanceof RetryableFailure)) throw err;
      outcome = err.outcome;
    }
    if (abort.aborted) return false;
    if (outcome.kind !== 'unauthorized' && this.unauthorizedSince) this.authRecovered();
    switch (outcome.kind) {
      case 'success':
        this.consecutiveFailures = 0;
        this.buffer.remove(ids);
        this.metrics.exported.inc({ signal }, ids.length - outcome.rejected);
        if (outcome.rejected > 0) {
          this.metrics.dropped.inc({ reason: 'rejected' }, outcome.rejected);
          this.logger.warn({ signal, rejected: outcome.rejected, message: outcome.message }, 'collector rejected part of a batch');
        }
        return true;
      case 'permanent':
        this.consecutiveFailures = 0;
        this.metrics.exportFailures.inc({ signal, kind: 'permanent' });
        if (items.length > 1 && SPLITTABLE.has(outcome.status)) {
          this.metrics.batchSplits.inc({ signal });
          this.logger.debug({ signal, status: outcome.status, events: items.length }, 'batch refused as a whole; splitting it to find the bad events');
          const half = Math.ceil(items.length / 2);
          return (await this.send(signal, items.slice(0, half), encode, identify)) && this.send(signal, items.slice(half), encode, identify);
        }
        this.buffer.remove(ids);
        this.onDrop(ids.length, 'rejected');
        this.logger.error(
          { signal, status: outcome.status, message: outcome.message, events: ids.length, ...(items.length === 1 ? { event: identify(items[0]!) } : {}) },
          items.length === 1 ? 'collector refused an event; dropped it alone' : 'collector refused a batch permanently; dropped',
        );
        return true;
      case 'retryable':
      case 'unauthorized': {
        const backoff = this.config.exporter.retry_backoff;
        const retryAfter = outcome.kind === 'retryable' ? outcome.retryAfterMs : undefined;
        const wait = retryAfter !== undefined ? Math.min(retryAfter, MAX_RETRY_AFTER_MS) : backoff[Math.min(this.consecutiveFailures, backoff.length - 1)]!;
        this.consecutiveFailures++;
        this.holdUntil = Date.now() + wait;
        this.metrics.exportFailures.inc({ signal, kind: outcome.kind });
        if (outcome.kind === 'unauthorized') this.authRefused(signal, outcome.status, outcome.message, wait);
        else this.logger.warn({ signal, status: outcome.status, message: outcome.message, retryInMs: wait, events: ids.length }, 'export failed; will retry');
        return false;
      }
    }
  }

  /** 401/403: nothing is dropped; an error line at most once a minute (with what waits), and the gauge. */
  private authRefused(signal: Signal, status: number, message: string, retryInMs: number): void {
    const now = Date.now();
    this.unauthorizedSince ||= now;
    this.metrics.unauthorized.set(1);
    if (now - this.lastAuthLog < AUTH_LOG_INTERVAL_MS) return;
    this.lastAuthLog = now;
    this.logger.error(
      { signal, status, message, retryInMs, refusedForMs: now - this.unauthorizedSince, bufferedEvents: this.buffer.diskEvents + this.buffer.memoryEvents },
      'the collector refuses this agent\'s credentials (check exporter.token); events are kept and retried, none dropped',
    );
  }

  private authRecovered(): void {
    this.logger.info({ refusedForMs: Date.now() - this.unauthorizedSince }, 'the collector accepts this agent\'s credentials again');
    this.unauthorizedSince = 0;
    this.lastAuthLog = 0;
    this.metrics.unauthorized.set(0);
  }
}
