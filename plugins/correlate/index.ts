// The `correlate` processor: passes records through unchanged, notes their correlation ids and
// keeps what the join needs of them (inputs.ts). Once an id has been quiet for the join window
// (no new record for `window`), it joins the id's records (from memory when the store confirms
// they are exactly what it holds, else read back) and emits a request summary (kind `summary`),
// which is stored and forwarded like any record. docs/correlation.md explains the join.
//
// Pending joins are derived from the store, not kept in memory alone: at start the processor
// asks the store which ids have records newer than their newest summary (looking back
// `recovery_lookback`), and every `window` it asks again for what arrived since (records that
// reached the store without passing here: another pipeline, another collector instance).
//
// Statements on a persistent connection still tagged by an earlier request go to the request of
// the same PHP worker that ran them (workers.ts).
import { defineProcessor } from '../../collector/core/api.js';
import type { AdminRoute, FlatRecord, Processor, ProcessorContext } from '../../collector/core/api.js';
import { SpanKind } from '../../collector/core/api.js';
import { JoinInputs } from './inputs.js';
import { buildSummary, joinRecords, type JoinOptions, type Joined } from './join.js';
import { WorkerAttribution } from './workers.js';
import { unsummarizedCorrelations } from './queries.js';
import { requestRoutes } from './web.js';
import { withRollup } from './rollup.js';

export interface CorrelateConfig {
  window: number;
  slowest_queries: number;
  n_plus_one_threshold: number;
  recovery_lookback: number;
  max_pending: number;
  tolerance: number;
}

/** Ids summarized per commit. */
const EMIT_BATCH = 100;
/**
 * Joins that fall due within this share of the window of each other (at most a second) run
 * together, so their summaries share a commit: a summary committed alone costs about four times
 * one committed among a hundred (measured: 180 µs against 44 µs of CPU).
 */
const GATHER_SHARE = 0.1;
const GATHER_MAX_MS = 1000;
/** Ids asked of the store per sweep query. */
const SWEEP_PAGE = 1000;
/**
 * How long before a stale-tagged statement its request may have started, when the store is asked
 * for it (statements from before this processor started: their request may have passed earlier).
 */
const REQUEST_LOOKBACK_MS = 60_000;

export const factory = defineProcessor<CorrelateConfig>({
  kind: 'processor',
  type: 'correlate',
  configSchema: (z, h) =>
    z.strictObject({
      /** An id is summarized once no record of it has arrived for this long. */
      window: h.duration().default(10_000),
      /** How many of the slowest queries a summary lists. */
      slowest_queries: z.number().int().min(0).max(100).default(5),
      /** Identical statements (after normalization) at least this often flag an N+1 pattern. */
      n_plus_one_threshold: z.number().int().min(2).default(5),
      /** At start, ids with unsummarized records that arrived this far back are joined. */
      recovery_lookback: h.duration().default(3_600_000),
      /** Most ids waiting for their window at once; beyond it new ids wait for a restart. */
      max_pending: z.number().int().positive().default(100_000),
      /**
       * How far outside its request's time window a DB statement may start or end and still join
       * it: the clock skew between the PHP and database hosts. Larger values risk giving a
       * request the first statements of the next request on the same persistent connection.
       */
      tolerance: h.duration().default(2),
    }),
  create: (config, ctx) => new Correlator(config, ctx),
});

export default factory;

class Correlator implements Processor {
  readonly #config: CorrelateConfig;
  readonly #ctx: ProcessorContext;
  readonly #options: JoinOptions;
  /** id -> arrival time (ms) of its newest record seen. */
  readonly #pending = new Map<string, number>();
  /**
   * id -> when its last join read the store (every record that had arrived by then was read),
   * for ids joined recently. The sweep overlaps the previous one, so it can report an id already joined (one
   * with no request span stays unsummarized); this keeps it from being read again.
   */
  readonly #joined = new Map<string, number>();
  readonly #inputs = new JoinInputs();
  readonly #workers: WorkerAttribution;
  #startedAtMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  /** When joins last ran (ms since the epoch). */
  #lastJoinMs = 0;
  #lastSweepMs = 0;
  /** Newest store id a sweep has reported (where store ids follow commits, the next sweep starts after it). */
  #sweptUpToId = 0;
  #work: Promise<void> = Promise.resolve();
  #working = false;
  #stopped = true;
  readonly #joins;
  readonly #summaries;
  readonly #resummaries;
  readonly #incomplete;
  readonly #overflow;
  readonly #failures;
  readonly #readBacks;

  constructor(config: CorrelateConfig, ctx: ProcessorContext) {
    this.#config = config;
    this.#ctx = ctx;
    this.#options = { slowestQueries: config.slowest_queries, nPlusOneThreshold: config.n_plus_one_threshold, toleranceMs: config.tolerance };
    this.#workers = new WorkerAttribution(ctx.reader, config.tolerance);
    const m = ctx.metrics;
    this.#joins = m.counter('bitville_correlate_joins_total', 'Ids joined, whether or not a summary came of it.');
    this.#readBacks = m.counter('bitville_correlate_read_backs_total', 'Joins that read the id\'s records back from the store (memory did not hold exactly what was stored).');
    this.#summaries = m.counter('bitville_correlate_summaries_total', 'Request summaries emitted.');
    this.#resummaries = m.counter('bitville_correlate_resummaries_total', 'Summaries that supersede an earlier one (late spans).');
    this.#incomplete = m.counter('bitville_correlate_incomplete_total', 'Ids whose window passed with DB spans but no request (SERVER) span stored.');
    this.#overflow = m.counter('bitville_correlate_pending_overflow_total', 'Ids not noted because max_pending ids were waiting.');
    this.#failures = m.counter('bitville_correlate_failures_total', 'Joins that failed (store read or commit) and will be retried.');
    m.gauge('bitville_correlate_pending', 'Ids waiting for their join window.', () => this.#pending.size);
  }

  async start(): Promise<void> {
    this.#stopped = false;
    // Recover what a previous run left pending, then keep sweeping for records that reach the
    // store without passing through this processor.
    const startedAt = Date.now();
    this.#startedAtMs = startedAt;
    this.#lastSweepMs = startedAt - this.#config.recovery_lookback;
    this.#run(() => this.#sweep());
    this.#sweepTimer = setInterval(() => this.#run(() => this.#sweep()), Math.max(this.#config.window, 100));
    this.#sweepTimer.unref();
  }

  /** The request pages and their JSON API (web.ts). */
  adminRoutes(): AdminRoute[] {
    return requestRoutes(this.#ctx.reader, this.#config.window, this.#options);
  }

  async shutdown(): Promise<void> {
    // Pending ids are not lost: their records are in the store and the next start recovers them.
    this.#stopped = true;
    clearInterval(this.#sweepTimer);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#work;
  }

  process(records: FlatRecord[]): FlatRecord[] {
    const now = Date.now();
    for (const r of records) {
      if (r.correlationId === '' || r.kind === 'summary') continue;
      if (this.#note(r.correlationId, now)) this.#inputs.add(r);
      if (r.kind === 'span' && r.spanKind === SpanKind.SERVER) this.#workers.noteRequest(r.correlationId, r);
    }
    this.#schedule();
    return records;
  }

  /** Marks the id pending (its window restarts); false when max_pending ids already wait. */
  #note(id: string, receivedAtMs: number): boolean {
    const known = this.#pending.get(id);
    if (known === undefined && this.#pending.size >= this.#config.max_pending) {
      this.#overflow.inc();
      return false;
    }
    if (known === undefined || receivedAtMs > known) this.#pending.set(id, receivedAtMs);
    return true;
  }

  /** Sets the timer for the earliest deadline, gathered (one timer, however many ids wait). */
  #schedule(): void {
    if (this.#stopped || this.#timer || this.#working || this.#pending.size === 0) return;
    let earliest = Infinity;
    for (const at of this.#pending.values()) earliest = Math.min(earliest, at);
    const gather = Math.min(GATHER_MAX_MS, this.#config.window * GATHER_SHARE);
    const delay = Math.max(0, earliest + this.#config.window - Date.now(), this.#lastJoinMs + gather - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#run(() => this.#joinDue());
    }, delay);
    this.#timer.unref();
  }

  /** Runs store work one piece at a time (never two joins of one id at once). */
  #run(step: () => Promise<void>): void {
    this.#work = this.#work.then(async () => {
      if (this.#stopped) return;
      this.#working = true;
      try {
        await step();
      } catch (err) {
        this.#failures.inc();
        this.#ctx.logger.error({ err }, 'correlation join failed; retrying after the window');
      } finally {
        this.#working = false;
        this.#schedule();
      }
    });
  }

  async #sweep(): Promise<void> {
    const startedAt = Date.now();
    // Overlap the previous sweep by a window: a record can become visible a little after the
    // time it was stamped with (a concurrent transaction on a shared store). Where ids follow
    // commits, the records up to the newest id reported were all visible then: skipped.
    let since = this.#lastSweepMs - this.#config.window;
    const afterId = this.#ctx.reader.idsFollowCommits ? this.#sweptUpToId : 0;
    // Joins of records older than this sweep's range cannot be reported again.
    for (const [id, at] of this.#joined) if (at < since) this.#joined.delete(id);
    for (let page = 0; page < 1000 && !this.#stopped; page++) {
      const found = await unsummarizedCorrelations(this.#ctx.reader, since, SWEEP_PAGE, afterId);
      for (const c of found) {
        const joined = this.#joined.get(c.correlationId);
        if (joined === undefined || c.lastReceivedAtMs > joined) this.#note(c.correlationId, c.lastReceivedAtMs);
        this.#sweptUpToId = Math.max(this.#sweptUpToId, c.lastId);
      }
      if (found.length < SWEEP_PAGE) break;
      since = found.at(-1)!.lastReceivedAtMs;
    }
    this.#lastSweepMs = startedAt;
  }

  async #joinDue(): Promise<void> {
    const now = Date.now();
    this.#lastJoinMs = now;
    const due = [...this.#pending].filter(([, at]) => at + this.#config.window <= now);
    for (let i = 0; i < due.length && !this.#stopped; i += EMIT_BATCH) {
      const batch = due.slice(i, i + EMIT_BATCH);
      const summaries: FlatRecord[] = [];
      let superseding = 0;
      let incomplete = 0;
      const readAt = new Map<string, number>();
      const rejoin = new Set<string>();
      try {
        for (const [id] of batch) {
          readAt.set(id, Date.now());
          const joined = await this.#join(id, rejoin);
          const summary = buildSummary(joined, this.#options);
          // The overview's rollups travel with the summary to its commit (rollup.ts).
          if (summary) summaries.push(withRollup(summary, joined, this.#options));
          if (summary && joined.summaries.length > 0) superseding++;
          // DB spans whose request never came; a trace without DB spans or a SERVER span is complete as it is.
          if (!joined.request && joined.queries.length > 0) incomplete++;
        }
        await this.#ctx.emit(summaries);
      } catch (err) {
        // Try these ids again after another window, not in a tight loop.
        const retryAt = Date.now();
        for (const [id] of batch) this.#pending.set(id, Math.max(retryAt, this.#pending.get(id) ?? 0));
        throw err;
      }
      this.#joins.inc(batch.length);
      this.#summaries.inc(summaries.length);
      this.#resummaries.inc(superseding);
      this.#incomplete.inc(incomplete);
      // An id that received a record while it was being joined stays for another window.
      for (const [id, at] of batch) {
        this.#joined.set(id, readAt.get(id)!);
        if (this.#pending.get(id) === at) this.#pending.delete(id);
      }
      // Requests that ran statements of these ids on their worker: joined again a window from now.
      const at = Date.now();
      for (const id of rejoin) this.#note(id, at);
    }
  }

  /**
   * One id's join: its records (memory or store), plus the statements its request ran on a
   * connection tagged by an earlier request of its worker. Statements of this id that ran outside
   * its window (all of them when its request span is not stored), in a later request of the
   * worker that this processor knows, add that request to `rejoin` (it may have been summarized
   * before they arrived).
   */
  async #join(id: string, rejoin: Set<string>): Promise<Joined> {
    const read = await this.#inputs.read(this.#ctx.reader, id);
    if (!read.fromMemory) this.#readBacks.inc();
    const own = joinRecords(id, read.records, this.#options);
    const request = own.request;
    if (request) this.#workers.noteRequest(id, request);
    const lent = request ? await this.#workers.statementsFor(id, request) : [];
    const joined = lent.length > 0 ? joinRecords(id, read.records, this.#options, lent) : own;
    // Only statements stored since the newest summary (or, without a request span, since the
    // previous join) can be news to another request.
    const coveredUpTo = joined.summaries.at(-1)?.id ?? (request ? 0 : this.#workers.placedUpTo(id));
    const stale = joined.queries.filter((q) => (q.placement === 'outside_window' || q.placement === 'no_request') && q.attributedBy === 'tag' && q.span.id > coveredUpTo).map((q) => q.span);
    // Whoever ran them on the tag's process is joined again; for statements from before this
    // processor started, their request may have passed earlier (read back).
    for (const runner of await this.#workers.runnersOf(id, request, stale, this.#startedAtMs + this.#config.window, REQUEST_LOOKBACK_MS)) rejoin.add(runner);
    if (!request) this.#workers.notePlaced(id, stale.reduce((max, s) => Math.max(max, s.id), 0));
    return joined;
  }
}
