// Attribution by PHP worker: statements on a persistent connection that still carries an earlier
// request's tag, given to the request that really ran them.
//
// A persistent connection (PDO::ATTR_PERSISTENT, pg_pconnect) belongs to one PHP process: the
// FPM worker (or Apache child) that opened it. Its tag names the request that opened it (A), so a
// statement tagged A outside A's window was run by whichever request that process was running at
// the time. Which process: the PHP agent's tag says so itself (`req:<id>/<pid>@<host key>`, which
// the pg-agent puts on the DB span as bitville.opener.pid and bitville.opener.host_key), so A's
// own request span is not needed (A is usually fast, hence never sent); for older tags
// (`req:<id>` alone) it is A's request span (`host.name` in the resource, `process.pid`). Each
// request span names its process the same way (the host key is derived from its `host.name`), so
// a statement of A's process at time t belongs to the one request B of that process whose window
// contains t. When there is no such request (below the PHP agent's threshold), or more than one
// (several requests at once in one process: a threaded Apache), it stays unattributed.
//
// Everything here is derived from the store (B's join asks for the DB spans that started in its
// window), so the result does not depend on the order records arrived in, and it survives a
// restart. The in-memory parts only save reads (owner cache) or say whom to re-join (timeline).
import { createHash } from 'node:crypto';
import { SpanKind } from '../../collector/core/api.js';
import type { RecordReader, SpanRecord } from '../../collector/core/api.js';
import { inWindow, isDbSpan, requestSpanOf, windowOf, type StoredSpan, type Window } from './join.js';

/** Most DB spans (and request spans) one window query returns. */
const WINDOW_QUERY_LIMIT = 20_000;
/** Owners (id -> request) and requests per worker remembered; the oldest go first. */
const OWNER_CACHE = 20_000;
const TIMELINE_PER_WORKER = 64;
const WORKERS = 10_000;

/** The DB span attributes naming the PHP process whose tag the statement's connection carries. */
export const OPENER_PID = 'bitville.opener.pid';
export const OPENER_HOST_KEY = 'bitville.opener.host_key';

/** The PHP agent's host discriminator in its tag: the first 8 hex digits of SHA-256(host name). */
export function hostKeyOf(hostName: string): string {
  return createHash('sha256').update(hostName).digest('hex').slice(0, 8);
}

const workerKey = (hostKey: string, pid: number) => `${hostKey}/${pid}`;

/** The request's PHP process, from `host.name` and `process.pid`, or undefined when either is missing. */
export function workerOf(request: SpanRecord): string | undefined {
  const host = request.resource['host.name'];
  const pid = request.attributes['process.pid'];
  if (typeof host !== 'string' || host === '' || typeof pid !== 'number') return undefined;
  return workerKey(hostKeyOf(host), pid);
}

/** The PHP process a DB span's tag names (the PHP agent's tag with the worker), or undefined. */
export function openerOf(statement: SpanRecord): string | undefined {
  const pid = statement.attributes[OPENER_PID];
  const hostKey = statement.attributes[OPENER_HOST_KEY];
  if (typeof pid !== 'number' || typeof hostKey !== 'string' || hostKey === '') return undefined;
  return workerKey(hostKey, pid);
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
  /** Id without a request span -> the newest store id of its statements already placed. */
  readonly #placedUpTo = new Map<string, number>();

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
   * each started and ended in its window, lies outside its own tag's request window (if that is
   * stored), its tag names this worker (or, for a tag without the worker, its tag's request ran
   * on it), and no other request of the worker was running then.
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
      // The tag's own word on the process wins; without it, the tag's request span must say.
      const opener = openerOf(s);
      if (opener !== undefined && opener !== worker) continue;
      const owner = await this.#ownerOf(s.correlationId);
      if (opener === undefined && owner?.worker !== worker) continue;
      // The opener's own statement (when its request is not stored, it did not run then: this
      // process was running `request`).
      if (owner && inWindow(s, owner.window)) continue;
      const start = BigInt(s.startTimeUnixNano);
      if (others.some((r) => r.correlationId !== s.correlationId && within(start, r.window))) continue;
      mine.push(s);
    }
    return mine;
  }

  /**
   * The requests to join again for statements tagged `correlationId` that lie outside its own
   * request's window (`request`; undefined when it is not stored): for each, the one remembered
   * request of the statement's process whose window contains its start. Statements from before
   * `recallBeforeMs` (this processor's start) may belong to a request that passed before it, so
   * the store's requests of that process up to `lookbackMs` before them are loaded first (one
   * read per process). Only says whom to re-join; the join itself reads the store.
   */
  async runnersOf(correlationId: string, request: SpanRecord | undefined, statements: readonly SpanRecord[], recallBeforeMs: number, lookbackMs: number): Promise<Set<string>> {
    const byWorker = new Map<string, SpanRecord[]>();
    for (const s of statements) {
      const worker = openerOf(s) ?? (request ? workerOf(request) : undefined);
      if (worker) byWorker.set(worker, [...(byWorker.get(worker) ?? []), s]);
    }
    const runners = new Set<string>();
    for (const [worker, list] of byWorker) {
      const early = list.filter((s) => !this.#runningAt(worker, s) && Number(BigInt(s.startTimeUnixNano) / 1_000_000n) < recallBeforeMs);
      await this.#recall(worker, early, lookbackMs);
      for (const s of list) {
        const runner = this.#runningAt(worker, s);
        if (runner !== undefined && runner !== correlationId) runners.add(runner);
      }
    }
    return runners;
  }

  /** The one remembered request of `worker` whose window contains the statement's start. */
  #runningAt(worker: string, statement: SpanRecord): string | undefined {
    const start = BigInt(statement.startTimeUnixNano);
    const running = (this.#timeline.get(worker) ?? []).filter((r) => within(start, r.window));
    return running.length === 1 ? running[0]!.correlationId : undefined;
  }

  /** Loads into memory the stored requests of `worker` that started from `lookbackMs` before the earliest statement to the latest. One store read. */
  async #recall(worker: string, statements: readonly SpanRecord[], lookbackMs: number): Promise<void> {
    if (statements.length === 0) return;
    const starts = statements.map((s) => BigInt(s.startTimeUnixNano));
    const first = starts.reduce((a, b) => (b < a ? b : a));
    const last = starts.reduce((a, b) => (b > a ? b : a));
    const found = await this.#reader.spansStartingBetween((first - BigInt(lookbackMs) * 1_000_000n).toString(), last.toString(), SpanKind.SERVER, WINDOW_QUERY_LIMIT);
    for (const s of found) if (s.kind === 'span' && workerOf(s) === worker) this.noteRequest(s.correlationId, s);
  }

  /**
   * For an id without a request span (its summary would say so): the newest store id of its
   * statements already given to runnersOf. Its connection keeps running statements under it, so
   * it is joined again and again; the older ones were placed already. Forgotten on restart
   * (then they are looked at once more).
   */
  placedUpTo(correlationId: string): number {
    return this.#placedUpTo.get(correlationId) ?? 0;
  }

  notePlaced(correlationId: string, upTo: number): void {
    if (upTo > this.placedUpTo(correlationId)) remember(this.#placedUpTo, correlationId, upTo, OWNER_CACHE);
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
