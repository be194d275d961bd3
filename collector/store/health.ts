// Whether a store can commit, for both implementations. A failed commit (disk full, I/O error,
// database unreachable) makes the store unwritable: the failure is counted, logged (the first
// at once, then at most one line per LOG_EVERY_MS with the count in between), and the store
// probes with a tiny write every PROBE_EVERY_MS until one succeeds. Any successful commit, a
// probe or a sender's, makes it writable again. Readiness (/readyz) follows `writable`.
import type { Logger } from 'pino';

const LOG_EVERY_MS = 10_000;
const PROBE_EVERY_MS = 1000;

export class StoreHealth {
  #writable = true;
  #failures = 0;
  #lastLogAt = -Infinity;
  #unlogged = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly what: string,
    private readonly logger: Logger | undefined,
    /** A write as small as possible that commits; rejects while the store cannot commit. */
    private readonly probe: () => Promise<void>,
    private readonly probeEveryMs = PROBE_EVERY_MS,
  ) {}

  get writable(): boolean {
    return this.#writable;
  }

  get commitFailures(): number {
    return this.#failures;
  }

  /** Runs a commit; a storage failure is recorded and rethrown, a success restores writability. */
  async commit<T>(work: () => T | Promise<T>, isStorageFailure: (err: unknown) => boolean): Promise<T> {
    try {
      const result = await work();
      this.succeeded();
      return result;
    } catch (err) {
      if (isStorageFailure(err)) this.failed(err as Error);
      throw err;
    }
  }

  /** commit() for synchronous work (SQLite), without an extra await on the hot path. */
  commitSync<T>(work: () => T, isStorageFailure: (err: unknown) => boolean): T {
    try {
      const result = work();
      if (!this.#writable) this.succeeded();
      return result;
    } catch (err) {
      if (isStorageFailure(err)) this.failed(err as Error);
      throw err;
    }
  }

  failed(err: Error): void {
    this.#failures++;
    const now = Date.now();
    if (now - this.#lastLogAt >= LOG_EVERY_MS) {
      this.logger?.error(
        { err: err.message, code: (err as { code?: string }).code, failuresSinceLastLine: this.#unlogged + 1, totalFailures: this.#failures },
        `${this.what} cannot commit; requests get 503 and /readyz is not ready until it can`,
      );
      this.#lastLogAt = now;
      this.#unlogged = 0;
    } else {
      this.#unlogged++;
    }
    if (!this.#writable) return;
    this.#writable = false;
    this.#armProbe();
  }

  succeeded(): void {
    if (this.#writable) return;
    this.#writable = true;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#lastLogAt = -Infinity; // a new outage is logged at once
    this.logger?.info({ totalFailures: this.#failures }, `${this.what} commits again; ready`);
  }

  #armProbe(): void {
    if (this.#closed || this.#probeTimer) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#writable || this.#closed) return;
      this.probe().then(
        () => this.succeeded(),
        () => this.#armProbe(), // still failing: counted once per outage start, not per probe
      );
    }, this.probeEveryMs);
    this.#probeTimer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#probeTimer);
  }
}
