// Builds the whole component graph from a validated config before anything starts, then
// starts downstream first (store, exporters, processors, receivers) and stops upstream first,
// collecting every shutdown error. The store is opened by the caller (the core knows only its
// contracts) and closed here.
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { AdminRoute, Component, Exporter, FlatRecord, Processor, Receiver, Signal } from './api.js';
import { stateDir, storeLimits, type ComponentConfig, type Config } from './config.js';
import { BitvilleError, ConsumerError } from '../common/errors.js';
import { ExportQueue } from './export-queue.js';
import { componentState } from './component-state.js';
import type { Store } from './store.js';
import type { Telemetry } from './telemetry.js';

const EXPORT_GRACE_MS = 5000;

export class CollectorService {
  readonly store: Store;
  readonly #config: Config;
  readonly #telemetry: Telemetry;
  readonly #logger: Logger;
  readonly #receivers: { id: string; component: Receiver }[] = [];
  readonly #processors = new Map<string, Processor>();
  readonly #exporters: { id: string; component: Exporter; queue: ExportQueue }[] = [];
  #limitsTimer: NodeJS.Timeout | undefined;
  /** When retention last completed, for the alert that it stopped running. */
  #limitsLastRunAt = 0;
  #ready = false;
  #closed = false;
  readonly #latency;
  /** Synced from the store's count before each scrape. */
  #commitFailures!: { inc(n: number): void };
  #commitFailuresSeen = 0;

  readonly #startAbort = new AbortController();

  constructor(config: Config, telemetry: Telemetry, store: Store) {
    this.#config = config;
    this.#telemetry = telemetry;
    this.#logger = telemetry.logger;
    this.store = store;
    const dataDir = stateDir(config.storage);
    mkdirSync(dataDir, { recursive: true });
    this.#registerStoreMetrics();
    this.#latency = telemetry
      .forComponent('store', storeLimits(config.storage).kind)
      .histogram('bitville_processing_duration_seconds', 'Time from decoded request to committed records.', [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);

    const context = (c: ComponentConfig) => ({
      id: c.id,
      logger: this.#logger.child({ component: c.id, kind: c.kind }),
      metrics: telemetry.forComponent(c.kind, c.id),
      dataDir,
      signals: Object.freeze([...c.signals]),
      state: componentState(this.store, c.id),
    });
    const used = (c: ComponentConfig) => c.signals.length > 0;
    for (const c of config.exporters.values()) {
      if (!used(c) || c.factory.kind !== 'exporter') continue;
      const ctx = context(c);
      const component = c.factory.create(c.config, ctx);
      this.#exporters.push({ id: c.id, component, queue: new ExportQueue(c.id, component, this.store, ctx.logger, ctx.metrics) });
    }
    for (const c of config.processors.values()) {
      if (!used(c) || c.factory.kind !== 'processor') continue;
      this.#processors.set(
        c.id,
        c.factory.create(c.config, {
          ...context(c),
          reader: this.store,
          emit: (records) => this.#commit(records),
        }),
      );
    }
    for (const c of config.receivers.values()) {
      if (!used(c) || c.factory.kind !== 'receiver') continue;
      const component = c.factory.create(c.config, {
        ...context(c),
        consumer: { consume: (signal, records) => this.#consume(signal, records) },
      });
      this.#receivers.push({ id: c.id, component });
    }
  }

  /** Started, not stopping, and the store can commit (a full disk makes it not ready until space returns). */
  get ready(): boolean {
    return this.#ready && this.store.writable();
  }

  async start(): Promise<void> {
    const routes = this.#exporters.map((e) => ({ id: e.id, signals: this.#config.exporters.get(e.id)!.signals }));
    await this.store.configureExporters(routes);
    await this.#enforceLimits();
    this.#limitsTimer = setInterval(() => void this.#enforceLimits(), storeLimits(this.#config.storage).check_interval);
    this.#limitsTimer.unref();
    const startOne = async (id: string, component: Component) => {
      try {
        await component.start(this.#startAbort.signal);
      } catch (err) {
        throw new BitvilleError('BV_START_FAILED', `${id} failed to start: ${(err as Error).message}`, { cause: err });
      }
    };
    for (const e of this.#exporters) await startOne(e.id, e.component);
    for (const e of this.#exporters) e.queue.start();
    for (const [id, p] of this.#processors) await startOne(id, p);
    for (const r of this.#receivers) await startOne(r.id, r.component);
    this.#ready = true;
    this.#logger.info({ receivers: this.#receivers.length, processors: this.#processors.size, exporters: this.#exporters.length }, 'collector started');
  }

  /** The admin routes components contribute, each with the id of its component. */
  adminRoutes(): { id: string; route: AdminRoute }[] {
    const all: { id: string; component: Component }[] = [
      ...this.#receivers,
      ...[...this.#processors].map(([id, component]) => ({ id, component })),
      ...this.#exporters,
    ];
    return all.flatMap(({ id, component }) => (component.adminRoutes?.() ?? []).map((route) => ({ id, route })));
  }

  /**
   * Drains: receivers stop accepting and finish in-flight requests; exporters finish their
   * batch. Safe after a failed or partial start: every created component is shut down.
   */
  async shutdown(): Promise<Error[]> {
    this.#ready = false;
    this.#startAbort.abort(new Error('the collector is stopping'));
    const noGrace = new AbortController().signal;
    const errors: Error[] = [];
    const attempt = async (what: string, step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (err) {
        errors.push(err as Error);
        this.#logger.error({ err, component: what }, 'shutdown error');
      }
    };
    clearInterval(this.#limitsTimer);
    for (const r of [...this.#receivers].reverse()) await attempt(r.id, () => r.component.shutdown(noGrace));
    for (const [id, p] of [...this.#processors].reverse()) await attempt(id, () => p.shutdown(noGrace));
    // Let each exporter finish its batch in flight; past the grace its shutdown abandons it.
    await Promise.all(
      this.#exporters.map(async (e) => {
        const drained = e.queue.shutdown();
        const grace = AbortSignal.timeout(EXPORT_GRACE_MS);
        await Promise.race([drained, new Promise((r) => grace.addEventListener('abort', r, { once: true }))]);
        await attempt(e.id, () => e.component.shutdown(grace));
        await drained;
      }),
    );
    this.#closed = true;
    await attempt('store', () => this.store.close());
    return errors;
  }

  async #consume(signal: Signal, records: FlatRecord[]): Promise<void> {
    if (this.#closed) throw new ConsumerError('BV_SHUTTING_DOWN', 'the collector has shut down its store');
    const started = performance.now();
    let out = records;
    for (const id of this.#config.pipelines[signal]?.processors ?? []) {
      out = await this.#processors.get(id)!.process(out, signal);
    }
    await this.#commit(out);
    this.#latency.observe((performance.now() - started) / 1000);
  }

  async #commit(records: FlatRecord[]): Promise<void> {
    try {
      await this.store.append(records);
    } catch (err) {
      throw new ConsumerError('BV_STORE_FAILED', `storage could not commit: ${(err as Error).message}`, { cause: err });
    }
  }

  async #enforceLimits(): Promise<void> {
    try {
      const removed = await this.store.enforceLimits();
      this.#limitsLastRunAt = Date.now();
      if (removed > 0) this.#logger.info({ removed }, 'store limits enforced (retention, size cap)');
    } catch (err) {
      this.#logger.error({ err }, 'enforcing store limits failed');
    }
  }

  /** Refreshes gauges that need a store query; called before each /metrics scrape. */
  async refreshMetrics(): Promise<void> {
    const failures = this.store.stats().commitFailures;
    this.#commitFailures.inc(failures - this.#commitFailuresSeen);
    this.#commitFailuresSeen = failures;
    await Promise.all(this.#exporters.map((e) => e.queue.refreshBacklog()));
  }

  #registerStoreMetrics(): void {
    const limits = storeLimits(this.#config.storage);
    const m = this.#telemetry.forComponent('store', limits.kind);
    m.gauge('bitville_store_size_bytes', 'Bytes of data in the store (free pages excluded).', () => this.store.stats().sizeBytes);
    m.gauge('bitville_store_records', 'Records in the store.', () => this.store.stats().rows);
    m.gauge('bitville_store_retention_seconds', 'Configured retention.', () => limits.retention / 1000);
    m.gauge('bitville_store_max_size_bytes', 'Configured size cap.', () => limits.max_size);
    m.gauge('bitville_store_dropped_retention_records', 'Records dropped by retention since start.', () => this.store.stats().dropped.retention);
    m.gauge('bitville_store_dropped_size_records', 'Records dropped by the size cap since start.', () => this.store.stats().dropped.size);
    m.gauge('bitville_store_writable', '1 while the store can commit; 0 after a failed commit (disk full, I/O error, database unreachable) until one succeeds.', () =>
      this.store.writable() ? 1 : 0,
    );
    this.#commitFailures = m.counter('bitville_store_commit_failures_total', 'Commits that failed for a storage reason (disk full, I/O error, database unreachable).');
    m.gauge('bitville_store_limits_last_run_timestamp_seconds', 'When retention and the size cap were last enforced successfully (Unix time; 0 = not yet).', () => this.#limitsLastRunAt / 1000);
  }
}

