// The `sampler` processor: probabilistic sampling by correlation id that never loses what
// matters. A request and its DB spans are kept or dropped together; slow and failed requests
// are always kept; summaries always pass. The decision rule is in docs/processors.md; in short:
//
//  1. A record with no correlation id (nor trace id), or a summary, passes.
//  2. An id whose hash falls under the rate is kept, every record of it, on every instance.
//  3. An id with an important record (the SERVER span at or over slow_threshold, status ERROR,
//     an HTTP status >= error_http_status, an ERROR log) is kept from then on, and what was held
//     of it is released.
//  4. Otherwise the request span decides: when it arrives unimportant, the id is dropped (its
//     held records too). Records that arrive before their request span are held (in memory, at
//     most decision_wait and max_held_records); at expiry they are kept only if the store already
//     has records of the id (another instance kept it), else dropped.
//  5. Verdicts are remembered for decision_cache, so late spans follow their request.
//
// Kept records carry `bitville.sampling.rate` (the probability they were kept with) and
// `sampling.adjusted_count` (its inverse), so counts can be scaled back.
//
// Held records are released through ProcessorContext.emit, which commits them directly: place
// the sampler last in the pipeline.
import { defineProcessor } from '../../collector/core/api.js';
import type { FlatRecord, Processor, ProcessorContext } from '../../collector/core/api.js';
import { importance, isRequestSpan, sampledIn, type ImportanceRules } from './decide.js';

export interface SamplerConfig {
  sampling_percentage: number;
  hash_seed: number;
  slow_threshold: number;
  error_http_status: number;
  decision_wait: number;
  decision_cache: number;
  max_held_records: number;
  max_decisions: number;
  check_store: boolean;
}

export const RATE_ATTRIBUTE = 'bitville.sampling.rate';
export const ADJUSTED_COUNT_ATTRIBUTE = 'sampling.adjusted_count';

export const factory = defineProcessor<SamplerConfig>({
  kind: 'processor',
  type: 'sampler',
  configSchema: (z, h) =>
    z.strictObject({
      /** Share of ordinary requests kept, in percent (as otelcol's probabilistic_sampler). */
      sampling_percentage: z.number().min(0).max(100).default(10),
      /** Changes which ids the hash keeps; every instance sharing a store must use the same. */
      hash_seed: z.number().int().min(0).max(0xffffffff).default(0),
      /** A request whose SERVER span lasts at least this long is always kept. */
      slow_threshold: h.duration().default(500),
      /** A span with this HTTP status or higher marks its request failed: always kept. */
      error_http_status: z.number().int().min(100).max(599).default(500),
      /** How long records that arrive before their request span wait for it. */
      decision_wait: h.duration().default(30_000),
      /** How long a verdict is remembered for late records of the id. */
      decision_cache: h.duration().default(300_000),
      /** Most records held at once; beyond it the oldest held ids are decided early. */
      max_held_records: z.number().int().min(0).default(100_000),
      /** Most verdicts remembered at once (oldest forgotten first). */
      max_decisions: z.number().int().min(1).default(200_000),
      /** At expiry, keep held records whose id the store already has (kept elsewhere). */
      check_store: z.boolean().default(true),
    }),
  create: (config, ctx) => new Sampler(config, ctx),
});

export default factory;

interface Verdict {
  keep: boolean;
  /** The probability kept records of the id are annotated with. */
  rate: number;
  atMs: number;
}

interface Held {
  records: FlatRecord[];
  sinceMs: number;
}

class Sampler implements Processor {
  readonly #config: SamplerConfig;
  readonly #ctx: ProcessorContext;
  readonly #rules: ImportanceRules;
  readonly #rate: number;
  /** Insertion-ordered: the oldest verdict first, for eviction. */
  readonly #verdicts = new Map<string, Verdict>();
  /** Insertion-ordered: the longest held first. */
  readonly #held = new Map<string, Held>();
  #heldCount = 0;
  #timer: NodeJS.Timeout | undefined;
  #work: Promise<void> = Promise.resolve();
  readonly #m;

  constructor(config: SamplerConfig, ctx: ProcessorContext) {
    this.#config = config;
    this.#ctx = ctx;
    this.#rules = { slowMs: config.slow_threshold, errorHttpStatus: config.error_http_status };
    this.#rate = config.sampling_percentage / 100;
    const m = ctx.metrics;
    this.#m = {
      kept: m.counter('bitville_sampler_kept_total', 'Records kept (passed on or released after holding).'),
      keptImportant: m.counter('bitville_sampler_kept_important_total', 'Records kept because their request was slow or failed.'),
      dropped: m.counter('bitville_sampler_dropped_total', 'Records sampled out.'),
      heldExpired: m.counter('bitville_sampler_held_expired_total', 'Held records dropped because their request span did not come within decision_wait (or max_held_records was reached).'),
      releaseFailures: m.counter('bitville_sampler_release_failures_total', 'Held records that could not be committed when released.'),
    };
    m.gauge('bitville_sampler_held_records', 'Records held waiting for their request span.', () => this.#heldCount);
    m.gauge('bitville_sampler_decisions', 'Verdicts remembered.', () => this.#verdicts.size);
  }

  async start(): Promise<void> {
    const every = Math.max(10, Math.min(1000, this.#config.decision_wait / 4));
    this.#timer = setInterval(() => this.#serial(() => this.#expire(Date.now(), false).finally(() => this.#keepAlive())), every);
    this.#timer.unref();
  }

  /**
   * Held records have been acknowledged to their sender; at shutdown their verdict is unknown, so
   * they are kept (a few extra records rather than a lost slow request).
   */
  async shutdown(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#serial(async () => {
      const all = [...this.#held.values()].flatMap((h) => h.records);
      this.#held.clear();
      this.#heldCount = 0;
      if (all.length > 0) await this.#release(all, 1);
    });
  }

  process(records: FlatRecord[]): FlatRecord[] {
    const now = Date.now();
    // Group by id, keeping the batch order of the output.
    const byId = new Map<string, FlatRecord[]>();
    const out: FlatRecord[] = [];
    for (const r of records) {
      const id = r.correlationId || r.traceId;
      if (r.kind === 'summary' || id === '') {
        out.push(r);
        continue;
      }
      let list = byId.get(id);
      if (!list) byId.set(id, (list = []));
      list.push(r);
    }
    const release: FlatRecord[] = [];
    let dropped = 0;
    let important = 0;
    for (const [id, list] of byId) {
      let verdict = this.#verdicts.get(id);
      const why = list.some((r) => importance(r, this.#rules) !== undefined);
      // An important record keeps its id at rate 1, also one the hash kept (so its request span
      // counts once when counts are scaled back) or one already dropped (an error is never lost).
      if (why && (!verdict || !verdict.keep || verdict.rate < 1)) verdict = this.#decide(id, true, 1, now);
      else if (!verdict && sampledIn(id, this.#config.hash_seed, this.#config.sampling_percentage)) verdict = this.#decide(id, true, this.#rate, now);
      else if (!verdict && list.some(isRequestSpan)) verdict = this.#decide(id, false, 0, now);
      if (!verdict) {
        this.#hold(id, list, now);
        continue;
      }
      if (!verdict.keep) {
        dropped += list.length + this.#unhold(id).length;
        continue;
      }
      if (verdict.rate === 1 && this.#rate < 1) important += list.length;
      for (const r of list) out.push(annotate(r, verdict.rate));
      const held = this.#unhold(id);
      for (const r of held) release.push(annotate(r, verdict.rate));
    }
    if (dropped > 0) this.#m.dropped.inc(dropped);
    if (important > 0) this.#m.keptImportant.inc(important);
    this.#m.kept.inc(out.length);
    if (release.length > 0) void this.#serial(() => this.#release(release, undefined));
    if (this.#heldCount > this.#config.max_held_records) void this.#serial(() => this.#expire(now, true));
    this.#keepAlive();
    return out;
  }

  #decide(id: string, keep: boolean, rate: number, now: number): Verdict {
    const v = { keep, rate, atMs: now };
    this.#verdicts.delete(id); // re-insert: the map stays ordered by decision time
    this.#verdicts.set(id, v);
    // Forget old verdicts: by age, and by count.
    for (const [k, old] of this.#verdicts) {
      if (this.#verdicts.size <= this.#config.max_decisions && now - old.atMs < this.#config.decision_cache) break;
      this.#verdicts.delete(k);
    }
    return v;
  }

  #hold(id: string, list: FlatRecord[], now: number): void {
    const h = this.#held.get(id);
    if (h) h.records.push(...list);
    else this.#held.set(id, { records: list, sinceMs: now });
    this.#heldCount += list.length;
  }

  #unhold(id: string): FlatRecord[] {
    const h = this.#held.get(id);
    if (!h) return [];
    this.#held.delete(id);
    this.#heldCount -= h.records.length;
    return h.records;
  }

  /**
   * Decides held ids whose wait is over (or, under pressure, the oldest until the bound holds):
   * kept when the store already has records of the id, else dropped.
   */
  /** The expiry timer keeps the process alive only while records wait for a decision. */
  #keepAlive(): void {
    if (this.#heldCount > 0) this.#timer?.ref();
    else this.#timer?.unref();
  }

  async #expire(now: number, pressure: boolean): Promise<void> {
    for (const [id, h] of this.#held) {
      const due = now - h.sinceMs >= this.#config.decision_wait;
      if (!due && !(pressure && this.#heldCount > this.#config.max_held_records)) break;
      let stored = false;
      if (this.#config.check_store) {
        try {
          stored = (await this.#ctx.reader.byCorrelationId(id)).length > 0;
        } catch (err) {
          this.#ctx.logger.warn({ err, correlationId: id }, 'sampler: store lookup failed; the held records are kept');
          stored = true;
        }
      }
      // The id may have been decided while the store was asked.
      if (this.#held.get(id) !== h) continue;
      const records = this.#unhold(id);
      const known = this.#verdicts.get(id);
      if (stored || known?.keep) {
        const rate = known?.keep ? known.rate : 1;
        this.#decide(id, true, rate, now);
        await this.#release(records, rate);
      } else {
        this.#decide(id, false, 0, now);
        this.#m.heldExpired.inc(records.length);
        this.#m.dropped.inc(records.length);
      }
    }
  }

  async #release(records: FlatRecord[], rate: number | undefined): Promise<void> {
    const annotated = rate === undefined ? records : records.map((r) => annotate(r, rate));
    try {
      await this.#ctx.emit(annotated);
      this.#m.kept.inc(annotated.length);
    } catch (err) {
      this.#m.releaseFailures.inc(annotated.length);
      this.#ctx.logger.error({ err, records: annotated.length }, 'sampler: held records could not be committed');
    }
  }

  /** Runs store work one step at a time, so releases and expiries never interleave. */
  #serial(step: () => Promise<void>): Promise<void> {
    const next = this.#work.then(step, step);
    this.#work = next.catch(() => {});
    return next;
  }
}

function annotate(r: FlatRecord, rate: number): FlatRecord {
  r.attributes[RATE_ATTRIBUTE] = rate;
  r.attributes[ADJUSTED_COUNT_ATTRIBUTE] = rate > 0 ? 1 / rate : 0;
  return r;
}
