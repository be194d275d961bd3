// The circuit breaker around a transport: cockatiel's consecutive-failure breaker, with its
// state written to a file at every transition and read back at start, so a restart while
// Graylog is down does not hammer it again.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleAll, type CircuitBreakerPolicy } from 'cockatiel';
import type { Logger } from 'pino';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** Gauge values, as documented: 0 closed, 1 open, 2 half-open. */
export const STATE_VALUES: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

export interface BreakerOptions {
  /** File holding the persisted state (written atomically). */
  file: string;
  failureThreshold: number;
  resetTimeoutMs: number;
  logger: Logger;
  /** Called after every transition, once the state is on disk. */
  onTransition?: (state: BreakerState) => void;
}

/** What the state file holds: cockatiel's own snapshot plus a readable summary. */
interface StateFile {
  state: BreakerState;
  at: string;
  cockatiel: unknown;
}

function stateName(state: CircuitState): BreakerState {
  if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
  return state === CircuitState.HalfOpen ? 'half-open' : 'closed';
}

export { BrokenCircuitError };

export class PersistedBreaker {
  private readonly policy: CircuitBreakerPolicy;
  private readonly listeners: { dispose(): void }[] = [];

  constructor(private readonly options: BreakerOptions) {
    this.policy = circuitBreaker(handleAll, {
      halfOpenAfter: options.resetTimeoutMs,
      breaker: new ConsecutiveBreaker(options.failureThreshold),
      initialState: this.restore(),
    });
    this.listeners.push(this.policy.onStateChange((state) => this.transitioned(stateName(state))));
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

  dispose(): void {
    for (const l of this.listeners.splice(0)) l.dispose();
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

  /** Writes the state atomically: a temporary file, flushed, then renamed over the old one. */
  private persist(state: BreakerState): void {
    const content: StateFile = { state, at: new Date().toISOString(), cockatiel: this.policy.toJSON() };
    const temp = `${this.options.file}.${process.pid}.tmp`;
    try {
      const fd = openSync(temp, 'w');
      try {
        writeSync(fd, JSON.stringify(content, null, 2) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.options.file);
    } catch (err) {
      this.options.logger.error({ err, file: this.options.file }, 'cannot persist the GELF circuit breaker state');
    }
  }

  private restore(): unknown {
    let text: string;
    try {
      text = readFileSync(this.options.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.options.logger.warn({ err, file: this.options.file }, 'cannot read the GELF circuit breaker state; starting closed');
      }
      return undefined;
    }
    try {
      const saved = JSON.parse(text) as StateFile;
      const snapshot = saved.cockatiel as { ownState?: { value?: unknown }; breakerState?: unknown } | undefined;
      if (typeof snapshot?.ownState?.value !== 'number') throw new Error('no breaker snapshot');
      this.options.logger.info({ breaker: saved.state, since: saved.at, file: this.options.file }, 'GELF circuit breaker state restored');
      return snapshot;
    } catch (err) {
      this.options.logger.warn({ err, file: this.options.file }, 'GELF circuit breaker state file is damaged; starting closed');
      return undefined;
    }
  }
}
