// Feeds one exporter from the store. Woken by each commit (an event, no polling while idle);
// reads the exporter's oldest undelivered records, hands them over a batch at a time (or
// several, up to the exporter's maxBatchesInFlight, results handled in order), and marks
// exactly what the exporter reports as sent. After a retryable failure it waits (the
// exporter's retryAfterMs, else a doubling backoff) before offering the same batch again.
import type { Logger } from 'pino';
import type { ComponentMetrics, ExportResult, Exporter } from './api.js';
import type { Store } from './store.js';
import type { StoredRecord } from './model.js';

const DEFAULT_BATCH = 500;
const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

export class ExportQueue {
  #running: Promise<void> | undefined;
  #wakeAgain = false;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_START_MS;
  #unsubscribe: (() => void) | undefined;
  readonly #sent: { spans: ReturnType<ComponentMetrics['counter']>; logs: ReturnType<ComponentMetrics['counter']> };
  readonly #failed: { spans: ReturnType<ComponentMetrics['counter']>; logs: ReturnType<ComponentMetrics['counter']> };
  readonly #dropped: ReturnType<ComponentMetrics['counter']>;
  /** Ids of failed records already counted: a retried record counts once, not per attempt. */
  readonly #countedFailed = new Set<number>();

  constructor(
    readonly id: string,
    private readonly exporter: Exporter,
    private readonly store: Store,
    private readonly logger: Logger,
    metrics: ComponentMetrics,
  ) {
    this.#sent = {
      spans: metrics.counter('otelcol_exporter_sent_spans', 'Spans (and summaries) the exporter delivered.'),
      logs: metrics.counter('otelcol_exporter_sent_log_records', 'Log records the exporter delivered.'),
    };
    this.#failed = {
      spans: metrics.counter('otelcol_exporter_send_failed_spans', 'Spans whose send failed at least once (they stay queued and are retried; each counts once).'),
      logs: metrics.counter('otelcol_exporter_send_failed_log_records', 'Log records whose send failed at least once (they stay queued and are retried; each counts once).'),
    };
    this.#dropped = metrics.counter('bitville_exporter_dropped_records', 'Records the exporter can never send (unserializable, permanent failure).');
    const backlog = metrics.gauge('otelcol_exporter_queue_size', 'Records stored and not yet delivered by the exporter.');
    // The backlog is counted in the store on each scrape; the gauge is refreshed by the scrape hook.
    this.refreshBacklog = async () => backlog.set(await this.store.backlog(this.id));
  }

  readonly refreshBacklog: () => Promise<void>;

  start(): void {
    this.#unsubscribe = this.store.onCommit(() => this.wake());
    this.wake(); // whatever was left from before a restart
  }

  wake(): void {
    if (this.#stopping || this.#timer) return;
    if (this.#running) {
      this.#wakeAgain = true;
      return;
    }
    this.#running = this.#drain()
      .catch((err: Error) => {
        // The store itself failed (a PostgreSQL store lost its server): keep the work, retry later.
        this.logger.error({ err: err.message, retryInMs: this.#backoff }, 'reading or marking the store failed; will retry');
        this.#retryLater(this.#backoff);
        this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#wakeAgain) {
          this.#wakeAgain = false;
          this.wake();
        }
      });
  }

  async #drain(): Promise<void> {
    const size = this.exporter.batchSize ?? DEFAULT_BATCH;
    const depth = Math.max(1, this.exporter.maxBatchesInFlight ?? 1);
    // Batches handed over and not yet settled, oldest first; later ones are read past them.
    const inFlight: { batch: StoredRecord[]; result: Promise<ExportResult> }[] = [];
    try {
      while (inFlight.length > 0 || !this.#stopping) {
        if (!this.#stopping && inFlight.length < depth) {
          const last = inFlight.at(-1)?.batch.at(-1)?.id;
          const batch = await this.store.pending(this.id, size, last);
          if (batch.length > 0) {
            inFlight.push({ batch, result: this.#export(batch) });
            continue;
          }
        }
        const head = inFlight.shift();
        if (!head) return;
        const result = await head.result;
        if (result.kind !== 'retryable') {
          await this.#settle(head.batch, result);
          continue;
        }
        this.#countFailed(head.batch);
        const delay = result.retryAfterMs ?? this.#backoff;
        this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
        this.logger.warn({ err: result.error.message, batch: head.batch.length, retryInMs: delay }, 'export failed; will retry');
        // Later batches were handed over too: keep what they delivered, offer the rest again.
        while (inFlight.length > 0) {
          const next = inFlight.shift()!;
          const r = await next.result;
          if (r.kind === 'retryable') this.#countFailed(next.batch);
          else await this.#settle(next.batch, r);
        }
        this.#retryLater(delay);
        return;
      }
    } finally {
      // Only when the store failed: let the exporter finish what it holds before a retry re-reads it.
      await Promise.allSettled(inFlight.map((f) => f.result));
    }
  }

  #export(batch: StoredRecord[]): Promise<ExportResult> {
    return this.exporter.export(batch).catch((err: unknown) => ({ kind: 'retryable' as const, error: err as Error }));
  }

  /** Marks a batch that succeeded or failed for good, and counts it. */
  async #settle(batch: StoredRecord[], result: Exclude<ExportResult, { kind: 'retryable' }>): Promise<void> {
    this.#backoff = BACKOFF_START_MS;
    for (const r of batch) this.#countedFailed.delete(r.id);
    if (result.kind === 'permanent') {
      this.#dropped.inc(batch.length);
      this.logger.error({ err: result.error.message, batch: batch.length }, 'export failed permanently; batch dropped');
      await this.store.markDelivered(this.id, batch.map((r) => r.id));
      return;
    }
    const rejected = new Set((result.rejected ?? []).map((r) => r.id));
    for (const r of result.rejected ?? []) this.logger.error({ recordId: r.id, reason: r.reason }, 'record cannot be exported; skipped');
    this.#dropped.inc(rejected.size);
    await this.store.markDelivered(this.id, batch.map((r) => r.id));
    this.#count(this.#sent, batch.filter((r) => !rejected.has(r.id)));
  }

  /** A record retried after a failure counts as failed once, not once per attempt. */
  #countFailed(batch: StoredRecord[]): void {
    const fresh = batch.filter((r) => !this.#countedFailed.has(r.id));
    for (const r of fresh) this.#countedFailed.add(r.id);
    this.#count(this.#failed, fresh);
  }

  #retryLater(delay: number): void {
    if (this.#stopping) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.wake();
    }, delay);
  }

  #count(counters: { spans: { inc(n: number): void }; logs: { inc(n: number): void } }, batch: StoredRecord[]): void {
    const logs = batch.reduce((n, r) => n + (r.kind === 'log' ? 1 : 0), 0);
    if (logs) counters.logs.inc(logs);
    if (batch.length - logs) counters.spans.inc(batch.length - logs);
  }

  /** Stops waking; lets the batch in flight finish and be marked. */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    this.#unsubscribe?.();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
