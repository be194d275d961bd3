// Feeds one exporter from the store. Woken by each commit (an event, no polling while idle);
// hands the exporter's oldest undelivered records over a batch at a time (or several, up to the
// exporter's maxBatchesInFlight, results handled in order), and marks exactly what the exporter
// reports as sent. After a retryable failure it waits (the exporter's retryAfterMs, else a
// doubling backoff) before offering the same batch again.
//
// Where the records come from: a queue that is caught up (its last read of the store found
// nothing more) takes each commit's records from memory as the store hands them over
// (takeCommits), so it never reads back what was just written; they stay queued in the store
// until marked. It reads from the store again when it is behind: at start (a backlog from
// before a restart), after a failure, when more was committed than it holds (HELD_BATCHES), or
// when the store cannot hand commits over (PostgreSQL, shared by instances). A caught-up queue sends once FLUSH_AT records
// wait or LINGER_MS after the first: a drain per few hundred records, not one per request.
//
// What is read from the store is the records' stored text (pendingTexts): an exporter with
// exportTexts() gets it as it is (GELF parses it on its encoder thread), any other the parsed
// records, so only exporters that need the parse pay for it on this thread.
import type { Logger } from 'pino';
import type { ComponentMetrics, ExportResult, Exporter } from './api.js';
import type { Store } from './store.js';
import { readStored, textOf, type StoredRecord, type StoredText } from './model.js';

const DEFAULT_BATCH = 500;
const FLUSH_AT = 300;
const LINGER_MS = 20;
/** Batches' worth of committed records a caught-up queue holds; past it, it reads the store later. */
const HELD_BATCHES = 4;
const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/** What the queue keeps of a batch handed over: enough to mark and count it. */
interface Handed {
  ids: number[];
  /** The ids of the batch's log records (the rest count as spans). */
  logs: Set<number>;
}

function handed(batch: readonly StoredText[]): Handed {
  const logs = new Set<number>();
  for (const r of batch) if (r.kind === 'log') logs.add(r.id);
  return { ids: batch.map((r) => r.id), logs };
}

function retryable(err: unknown): ExportResult {
  return { kind: 'retryable', error: err as Error };
}

/** The batch's records; a text that is not JSON (a damaged row) is set apart with the reason. */
function parseAll(batch: readonly StoredText[]): { records: StoredRecord[]; unreadable: { id: number; reason: string }[] } {
  const records: StoredRecord[] = [];
  const unreadable: { id: number; reason: string }[] = [];
  for (const text of batch) {
    const record = readStored(text);
    if (record instanceof Error) unreadable.push({ id: text.id, reason: record.message });
    else records.push(record);
  }
  return { records, unreadable };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class ExportQueue {
  #running: Promise<void> | undefined;
  #wakeAgain = false;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_START_MS;
  #unsubscribe: (() => void)[] = [];
  /** Committed records taken from memory, not yet handed over, in id order. */
  #held: StoredRecord[] = [];
  #caughtUp = false;
  /** Records were committed since the current store read began that the queue does not hold. */
  #missed = false;
  #linger: NodeJS.Timeout | undefined;
  /** Told when a batch's worth is held, or the queue fell behind (see #gathered). */
  #onGathered: ((gathered: true) => void) | undefined;
  readonly #size: number;
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
    this.#size = exporter.batchSize ?? DEFAULT_BATCH;
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
    this.#unsubscribe = [
      // A commit handed over came through take(); any other only a read of the store can see.
      this.store.onCommit((handedOver) => {
        if (!handedOver) this.#fallBehind();
      }),
      this.store.takeCommits(this.id, { take: (records) => this.#take(records) }),
    ];
    this.wake(); // whatever was left from before a restart
  }

  #take(records: readonly StoredRecord[]): void {
    if (this.#stopping) return;
    if (this.#held.length + records.length > this.#size * HELD_BATCHES) return this.#fallBehind();
    for (const r of records) this.#held.push(r);
    if (this.#held.length < Math.min(this.#size, FLUSH_AT)) return this.#soon();
    this.#tellGathered();
    this.wake();
  }

  /** Resolves once a batch's worth is held or the queue fell behind: either way, the drain has a next batch to take. */
  #gathered(): Promise<true> {
    return new Promise((resolve) => (this.#onGathered = resolve));
  }

  #tellGathered(): void {
    this.#onGathered?.(true);
    this.#onGathered = undefined;
  }

  /** The store holds records this queue does not: read it next. */
  #fallBehind(): void {
    this.#caughtUp = false;
    this.#missed = true;
    this.#held = [];
    this.#tellGathered();
    this.#soon();
  }

  /** Wakes after a short delay, so the commits of that delay go out in one drain. */
  #soon(): void {
    this.#linger ??= setTimeout(() => this.wake(), LINGER_MS);
  }

  wake(): void {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#stopping || this.#timer) return;
    if (this.#running) {
      this.#wakeAgain = true;
      return;
    }
    this.#running = this.#drain()
      .catch((err: Error) => {
        // The store itself failed (a PostgreSQL store lost its server): keep the work, retry later.
        this.logger.error({ err: err.message, retryInMs: this.#backoff }, 'reading or marking the store failed; will retry');
        this.#caughtUp = false;
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
    const size = this.#size;
    const depth = Math.max(1, this.exporter.maxBatchesInFlight ?? 1);
    // Batches handed over and not yet settled, oldest first; later ones are read past them.
    const inFlight: { batch: Handed; result: Promise<ExportResult> }[] = [];
    try {
      while (inFlight.length > 0 || !this.#stopping) {
        if (!this.#stopping && inFlight.length < depth) {
          const batch = await this.#next(size, inFlight.length, inFlight.at(-1)?.batch.ids.at(-1));
          if (batch.length > 0) {
            // Only the ids and kinds stay here while the batch is out (a TCP batch is out for its
            // confirm window): the records themselves are the exporter's to drop once encoded.
            inFlight.push({ batch: handed(batch), result: this.#export(batch) });
            // Let the event loop turn before reading the next batch: the batch just handed over
            // gets written (and earlier ones' timers fire) while the next is read, rather than
            // after every batch in reach was read and serialized in one go.
            await yieldToEventLoop();
            continue;
          }
        }
        if (inFlight.length === 0) return;
        // Caught up with room for another batch: a batch's worth gathering in memory goes out
        // beside the ones whose result is awaited (a TCP batch takes its confirm window).
        if (this.#caughtUp && !this.#stopping && inFlight.length < depth) {
          const gathered = await Promise.race([inFlight[0]!.result.then(() => false), this.#gathered()]);
          if (gathered) continue;
        }
        const head = inFlight.shift()!;
        const result = await head.result;
        if (result.kind !== 'retryable') {
          await this.#settle(head.batch, result);
          continue;
        }
        this.#countFailed(head.batch);
        this.#caughtUp = false; // what failed is read from the store again
        const delay = result.retryAfterMs ?? this.#backoff;
        this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
        this.logger.warn({ err: result.error.message, batch: head.batch.ids.length, retryInMs: delay }, 'export failed; will retry');
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

  /** The next batch: from memory while caught up, else the oldest the store holds after the batches in flight. */
  async #next(size: number, inFlight: number, afterId: number | undefined): Promise<StoredText[]> {
    if (this.#caughtUp) {
      // While a batch is out, let a few hundred gather rather than send a small one beside it.
      if (this.#held.length === 0 || (inFlight > 0 && this.#held.length < Math.min(size, FLUSH_AT))) return [];
      return this.#held.splice(0, size).map(textOf);
    }
    // Whatever was committed until now, the read sees; what commits after it is held.
    this.#held = [];
    this.#missed = false;
    const batch = await this.store.pendingTexts(this.id, size, afterId);
    if (batch.length < size && !this.#missed) {
      this.#caughtUp = true;
      // A store whose reads overlap commits could show the read a record it also handed over.
      if (this.#held.length > 0 && batch.length > 0) {
        const read = new Set(batch.map((r) => r.id));
        this.#held = this.#held.filter((r) => !read.has(r.id));
      }
    }
    return batch;
  }

  /**
   * Hands the batch over: as texts, or parsed. A text that is not JSON (a damaged row) can never
   * be sent: it is reported rejected (dropped, counted, logged) instead of failing its batch
   * again and again. Not async: a suspended async function would keep the batch alive until the
   * export settles.
   */
  #export(batch: StoredText[]): Promise<ExportResult> {
    const { exporter } = this;
    try {
      if (exporter.exportTexts) return exporter.exportTexts(batch).catch(retryable);
      const { records, unreadable } = parseAll(batch);
      if (unreadable.length === 0) return exporter.export(records).catch(retryable);
      if (records.length === 0) return Promise.resolve({ kind: 'success', rejected: unreadable });
      return exporter
        .export(records)
        .then((result): ExportResult => (result.kind === 'success' ? { kind: 'success', rejected: [...(result.rejected ?? []), ...unreadable] } : result))
        .catch(retryable);
    } catch (err) {
      return Promise.resolve(retryable(err));
    }
  }

  /** Marks a batch that succeeded or failed for good, and counts it. */
  async #settle(batch: Handed, result: Exclude<ExportResult, { kind: 'retryable' }>): Promise<void> {
    this.#backoff = BACKOFF_START_MS;
    if (this.#countedFailed.size > 0) for (const id of batch.ids) this.#countedFailed.delete(id);
    if (result.kind === 'permanent') {
      this.#dropped.inc(batch.ids.length);
      this.logger.error({ err: result.error.message, batch: batch.ids.length }, 'export failed permanently; batch dropped');
      await this.store.markDelivered(this.id, batch.ids);
      return;
    }
    const rejected = new Set((result.rejected ?? []).map((r) => r.id));
    for (const r of result.rejected ?? []) this.logger.error({ recordId: r.id, reason: r.reason }, 'record cannot be exported; skipped');
    this.#dropped.inc(rejected.size);
    await this.store.markDelivered(this.id, batch.ids);
    this.#count(this.#sent, batch, rejected.size > 0 ? batch.ids.filter((id) => !rejected.has(id)) : batch.ids);
  }

  /** A record retried after a failure counts as failed once, not once per attempt. */
  #countFailed(batch: Handed): void {
    const fresh = batch.ids.filter((id) => !this.#countedFailed.has(id));
    for (const id of fresh) this.#countedFailed.add(id);
    this.#count(this.#failed, batch, fresh);
  }

  #retryLater(delay: number): void {
    if (this.#stopping) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.wake();
    }, delay);
  }

  /** Counts the records `ids` of `batch` as logs or spans. */
  #count(counters: { spans: { inc(n: number): void }; logs: { inc(n: number): void } }, batch: Handed, ids: readonly number[]): void {
    let logs = 0;
    if (batch.logs.size > 0) for (const id of ids) if (batch.logs.has(id)) logs++;
    if (logs) counters.logs.inc(logs);
    if (ids.length - logs) counters.spans.inc(ids.length - logs);
  }

  /** Stops waking; lets the batch in flight finish and be marked. */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    for (const off of this.#unsubscribe) off();
    this.#held = [];
    this.#tellGathered();
    clearTimeout(this.#linger);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
