// Attribution by PHP worker: statements on a persistent connection that still carries an earlier
// request's tag, given to the request that really ran them.
//
// A persistent connection (PDO::ATTR_PERSISTENT, pg_pconnect) belongs to one PHP process: the
// FPM worker (or Apache child) that opened it. Its tag names the request that opened it (A), so a
// statement tagged A outside A's window was run by whichever request that process was running at
// the time. The PHP agent reports each request's process (`host.name` in the resource,
// `process.pid`); a statement tagged A at time t therefore belongs to the one request B of A's
// host and pid whose window contains t. When there is no such request (it was below the PHP
// agent's threshold, or A's own request span is not stored), or more than one (several requests
// at once in one process: a threaded Apache), the statement stays unattributed.
//
// Everything here is derived from the store (B's join asks for the DB spans that started in its
// window), so the result does not depend on the order records arrived in, and it survives a
// restart. The in-memory parts only save reads (owner cache) or say whom to re-join (timeline).
import { SpanKind } from '../../collector/core/api.js';
import type { RecordReader, SpanRecord } from '../../collector/core/api.js';
import { inWindow, isDbSpan, requestSpanOf, windowOf, type StoredSpan, type Window } from './join.js';

/** Most DB spans (and request spans) one window query returns. */
const WINDOW_QUERY_LIMIT = 20_000;
/** Owners (id -> request) and requests per worker remembered; the oldest go first. */
const OWNER_CACHE = 20_000;
const TIMELINE_PER_WORKER = 64;
const WORKERS = 10_000;

/** `host.name` and `process.pid` of the request's PHP process, or undefined when either is missing. */
export function workerOf(request: SpanRecord): string | undefined {
  const host = request.resource['host.name'];
  const pid = request.attributes['process.pid'];
  if (typeof host !== 'string' || host === '' || typeof pid !== 'number') return undefined;
  return `${host}\u0000${pid}`;
}

interface Ran {
  correlationId: string;
  worker: string | undefined;
  window: Window;
}

function ranOf(correlationId: string, request: SpanRecord, toleranceMs: number): Ran {
  return { correlationId, worker: workerOf(request), window: windowOf(request, toleranceMs) };
}

function within(tNs: bigint, w: Window): boolean {
  return tNs >= w.fromNs && tNs <= w.toNs;
}

export class WorkerAttribution {
  readonly #reader: RecordReader;
  readonly #toleranceMs: number;
  /** Correlation id -> where its request ran (null: no request span stored when last read). */
  readonly #owners = new Map<string, Ran | null>();
  /** Worker -> its recent requests, for finding whom a late statement belongs to. */
  readonly #timeline = new Map<string, Ran[]>();

  constructor(reader: RecordReader, toleranceMs: number) {
    this.#reader = reader;
    this.#toleranceMs = toleranceMs;
  }

  /** Remembers a request span (seen passing, or read by a join). */
  noteRequest(correlationId: string, request: SpanRecord): void {
    const ran = ranOf(correlationId, request, this.#toleranceMs);
    remember(this.#owners, correlationId, ran, OWNER_CACHE);
    if (!ran.worker) return;
    const list = this.#timeline.get(ran.worker) ?? [];
    if (!list.some((r) => r.correlationId === correlationId)) list.push(ran);
    if (list.length > TIMELINE_PER_WORKER) list.shift();
    remember(this.#timeline, ran.worker, list, WORKERS);
  }

  /**
   * The DB spans tagged with other ids that `request` (of `correlationId`) ran on its worker:
   * each started and ended in its window, lies outside its own tag's request window, that
   * request ran on the same worker, and no other request of the worker was running then.
   */
  async statementsFor(correlationId: string, request: StoredSpan): Promise<StoredSpan[]> {
    const worker = workerOf(request);
    if (!worker) return [];
    const window = windowOf(request, this.#toleranceMs);
    const [from, to] = [window.fromNs.toString(), window.toNs.toString()];
    const candidates = (await this.#reader.spansStartingBetween(from, to, SpanKind.CLIENT, WINDOW_QUERY_LIMIT)).filter(
      (s): s is StoredSpan => isDbSpan(s) && s.correlationId !== correlationId && inWindow(s, window),
    );
    if (candidates.length === 0) return [];
    // Other requests of this worker that started in the window, and the ones remembered: a
    // statement inside two requests' windows of one process is not attributed.
    const rivals: Ran[] = [...(this.#timeline.get(worker) ?? [])];
    for (const s of await this.#reader.spansStartingBetween(from, to, SpanKind.SERVER, WINDOW_QUERY_LIMIT)) {
      if (s.kind === 'span') rivals.push(ranOf(s.correlationId, s, this.#toleranceMs));
    }
    const others = rivals.filter((r) => r.worker === worker && r.correlationId !== correlationId);
    const mine: StoredSpan[] = [];
    for (const s of candidates) {
      const owner = await this.#ownerOf(s.correlationId);
      if (!owner || owner.worker !== worker || inWindow(s, owner.window)) continue;
      const start = BigInt(s.startTimeUnixNano);
      if (others.some((r) => r.correlationId !== owner.correlationId && within(start, r.window))) continue;
      mine.push(s);
    }
    return mine;
  }

  /**
   * The request a statement outside its tag's window (`request` is the tag's request) ran in, as
   * far as this processor remembers: the one remembered request of the same worker whose window
   * contains its start. Used only to decide whom to join again; the join itself reads the store.
   */
  runningAt(request: SpanRecord, statement: SpanRecord): string | undefined {
    const worker = workerOf(request);
    if (!worker) return undefined;
    const start = BigInt(statement.startTimeUnixNano);
    const running = (this.#timeline.get(worker) ?? []).filter((r) => within(start, r.window));
    return running.length === 1 ? running[0]!.correlationId : undefined;
  }

  /**
   * Loads into memory the requests of `request`'s worker that started up to `lookbackMs` before
   * the earliest of `statements` and no later than the latest (for statements from before this
   * processor started: their request may have passed before it). One store read.
   */
  async recall(request: SpanRecord, statements: readonly SpanRecord[], lookbackMs: number): Promise<void> {
    const worker = workerOf(request);
    if (!worker || statements.length === 0) return;
    const starts = statements.map((s) => BigInt(s.startTimeUnixNano));
    const first = starts.reduce((a, b) => (b < a ? b : a));
    const last = starts.reduce((a, b) => (b > a ? b : a));
    const found = await this.#reader.spansStartingBetween((first - BigInt(lookbackMs) * 1_000_000n).toString(), last.toString(), SpanKind.SERVER, WINDOW_QUERY_LIMIT);
    for (const s of found) if (s.kind === 'span' && workerOf(s) === worker) this.noteRequest(s.correlationId, s);
  }

  async #ownerOf(correlationId: string): Promise<Ran | undefined> {
    const known = this.#owners.get(correlationId);
    if (known !== undefined) return known ?? undefined;
    const request = requestSpanOf((await this.#reader.byCorrelationId(correlationId)).filter((r): r is StoredSpan => r.kind === 'span'));
    if (request) this.noteRequest(correlationId, request);
    else remember(this.#owners, correlationId, null, OWNER_CACHE);
    return request ? this.#owners.get(correlationId) ?? undefined : undefined;
  }
}

/** Sets a key as the newest of a bounded map (the oldest entry goes when it is full). */
function remember<K, V>(map: Map<K, V>, key: K, value: V, limit: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > limit) map.delete(map.keys().next().value as K);
}
