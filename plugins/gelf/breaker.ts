// The circuit breaker around a transport: cockatiel's consecutive-failure breaker, its state
// saved in the store's component state at every transition and read back at start, so a
// restart while Graylog is down does not hammer it again. With a shared PostgreSQL store the
// instances also adopt each other's transitions, so they open, half-open and close together.
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import type { Logger } from 'pino';
import type { ComponentState } from '../../collector/core/api.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** Gauge values, as documented: 0 closed, 1 open, 2 half-open. */
export const STATE_VALUES: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

/** The component state key holding the breaker. */
export const STATE_KEY = 'breaker';

export interface BreakerOptions {
  /** The exporter's durable state (the store's component_state table). */
  state: ComponentState;
  failureThreshold: number;
  resetTimeoutMs: number;
  logger: Logger;
  /** Called after every transition made by this instance. */
  onTransition?: (state: BreakerState) => void;
}

/**
 * The saved value: cockatiel's own snapshot plus a readable summary. `seq` grows with every
 * transition (any instance's), so a late announcement of an older value is not adopted.
 */
interface Saved {
  state: BreakerState;
  at: string;
  seq: number;
  cockatiel: unknown;
}

function stateName(state: CircuitState): BreakerState {
  if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
  return state === CircuitState.HalfOpen ? 'half-open' : 'closed';
}

/** The saved value if it holds a usable cockatiel snapshot; throws with the reason otherwise. */
function parseSaved(text: string): Saved {
  const saved = JSON.parse(text) as Partial<Saved>;
  const snapshot = saved?.cockatiel as { ownState?: { value?: unknown; openedAt?: unknown }; breakerState?: unknown } | undefined;
  const value = snapshot?.ownState?.value;
  const usable =
    typeof snapshot?.breakerState === 'number' &&
    (value === CircuitState.Closed || (value === CircuitState.Open && typeof snapshot.ownState?.openedAt === 'number'));
  if (!usable) throw new Error('no usable breaker snapshot');
  return { state: saved.state ?? stateName(value as CircuitState), at: String(saved.at), seq: Number(saved.seq) || 0, cockatiel: snapshot };
}

export { BrokenCircuitError };

/**
 * A failed send that the breaker must not count again: a batch that was in flight behind one
 * whose failure was counted, and failed with it (one dropped connection is one failure).
 */
export class SameIncidentError extends Error {
  constructor(override readonly cause: unknown) {
    super((cause as Error)?.message ?? String(cause));
  }
}

export class PersistedBreaker {
  private policy!: CircuitBreakerPolicy;
  private policyListener: { dispose(): void } | undefined;
  private readonly unsubscribe: () => void;
  private seq: number;
  /** The chain of saves, in transition order (never rejects). */
  private saving: Promise<void> = Promise.resolve();

  /** Restores the saved state (a missing or damaged value starts closed) and follows other instances. */
  static async create(options: BreakerOptions): Promise<PersistedBreaker> {
    return new PersistedBreaker(options, await PersistedBreaker.restore(options));
  }

  private constructor(
    private readonly options: BreakerOptions,
    saved: Saved | undefined,
  ) {
    this.seq = saved?.seq ?? 0;
    this.rebuild(saved?.cockatiel);
    this.unsubscribe = options.state.onChange((key, value) => key === STATE_KEY && this.adopt(value));
  }

  get state(): BreakerState {
    return stateName(this.policy.state);
  }

  /** Milliseconds until an open breaker lets a probe through; 0 when a call may go ahead. */
  msUntilHalfOpen(now = Date.now()): number {
    if (this.policy.state !== CircuitState.Open) return 0;
    const snapshot = this.policy.toJSON() as { ownState: { openedAt: number } };
    return Math.max(0, snapshot.ownState.openedAt + this.options.resetTimeoutMs - now);
  }

  /** Runs `fn` through the breaker; throws BrokenCircuitError without calling it while open. */
  execute<T>(fn: () => Promise<T>): Promise<T> {
    return this.policy.execute(fn);
  }

  /** Stops following other instances and waits until the last transition is saved. */
  async close(): Promise<void> {
    this.unsubscribe();
    this.policyListener?.dispose();
    await this.saving;
  }

  /** A fresh cockatiel policy starting from `snapshot` (closed when undefined). */
  private rebuild(snapshot: unknown): void {
    // A send still running on the old policy ends there, unheard: the adopted state wins.
    this.policyListener?.dispose();
    this.policy = circuitBreaker(handleWhen((err) => !(err instanceof SameIncidentError)), {
      halfOpenAfter: this.options.resetTimeoutMs,
      breaker: new ConsecutiveBreaker(this.options.failureThreshold),
      initialState: snapshot,
    });
    this.policyListener = this.policy.onStateChange((state) => this.transitioned(stateName(state)));
  }

  /** Another instance made a transition: take its state as ours, without logging or saving it again. */
  private adopt(value: string): void {
    let saved: Saved;
    try {
      saved = parseSaved(value);
    } catch (err) {
      this.options.logger.warn({ err }, 'ignoring a damaged GELF circuit breaker state from another instance');
      return;
    }
    if (saved.seq < this.seq) return; // an older value announced late
    this.seq = saved.seq;
    this.rebuild(saved.cockatiel);
    this.options.logger.debug({ breaker: saved.state, since: saved.at }, 'GELF circuit breaker state taken from another instance');
  }

  private transitioned(state: BreakerState): void {
    this.persist(state);
    const { logger, resetTimeoutMs, failureThreshold } = this.options;
    const reason = this.policy.lastFailure && 'error' in this.policy.lastFailure ? this.policy.lastFailure.error.message : undefined;
    if (state === 'open') {
      logger.warn(
        { breaker: state, failure_threshold: failureThreshold, reset_timeout_ms: resetTimeoutMs, error: reason },
        `GELF circuit breaker opened: no send attempt for ${resetTimeoutMs} ms, records wait in the store`,
      );
    } else if (state === 'half-open') {
      logger.info({ breaker: state }, 'GELF circuit breaker half-open: sending one probe batch');
    } else {
      logger.info({ breaker: state }, 'GELF circuit breaker closed: forwarding resumes, backlog replays oldest first');
    }
    this.options.onTransition?.(state);
  }

  /**
   * Saves the state in the store, one write after the other so they commit in transition
   * order; the send path does not wait for it. A failed save is logged.
   */
  private persist(state: BreakerState): void {
    const content: Saved = { state, at: new Date().toISOString(), seq: ++this.seq, cockatiel: this.policy.toJSON() };
    const value = JSON.stringify(content);
    this.saving = this.saving
      .then(() => this.options.state.set(STATE_KEY, value))
      .catch((err: unknown) => this.options.logger.error({ err, breaker: state }, 'cannot save the GELF circuit breaker state'));
  }

  private static async restore({ state, logger }: BreakerOptions): Promise<Saved | undefined> {
    let text: string | undefined;
    try {
      text = await state.get(STATE_KEY);
    } catch (err) {
      logger.error({ err }, 'cannot read the GELF circuit breaker state; starting closed');
      return undefined;
    }
    if (text === undefined) return undefined;
    try {
      const saved = parseSaved(text);
      logger.info({ breaker: saved.state, since: saved.at }, 'GELF circuit breaker state restored');
      return saved;
    } catch (err) {
      logger.warn({ err, saved: text.slice(0, 200) }, 'the saved GELF circuit breaker state is damaged; starting closed');
      return undefined;
    }
  }
}
