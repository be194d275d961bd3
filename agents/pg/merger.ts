// When the log source is on, the same query can arrive twice: sampled from pg_stat_activity
// and read from the server log. Each arrival waits (up to the match window) for its partner;
// a pair becomes one observation with the sampled start (microseconds) and the logged duration
// (exact), a lone one is sent as it is when its wait is over. Without the log source, sampled
// queries pass straight through.
import type { QueryObservation } from './observation.js';

/**
 * How far a logged start (log time minus duration) may be from the sampled query_start of the same
 * query: the log time has millisecond resolution and is taken just after the duration.
 */
const TOLERANCE_US = 3_000n;

interface Waiting {
  obs: QueryObservation;
  /** When it stops waiting (ms, monotonic clock of the caller). */
  deadline: number;
}

export class QueryMerger {
  private readonly sampled: Waiting[] = [];
  private readonly logged: Waiting[] = [];

  constructor(
    private readonly emit: (obs: QueryObservation) => void,
    private readonly windowMs: number,
    private readonly logSourceOn: boolean,
  ) {}

  get waiting(): number {
    return this.sampled.length + this.logged.length;
  }

  addSampled(obs: QueryObservation, nowMs: number): void {
    if (!this.logSourceOn) return this.emit(obs);
    const partner = takeClosest(this.logged, obs);
    if (partner) this.emit(merge(obs, partner));
    else this.sampled.push({ obs, deadline: nowMs + this.windowMs });
  }

  addLogged(obs: QueryObservation, nowMs: number): void {
    const partner = takeClosest(this.sampled, obs);
    if (partner) this.emit(merge(partner, obs));
    else this.logged.push({ obs, deadline: nowMs + this.windowMs });
  }

  /** Sends every observation whose wait is over (all of them with force, at shutdown). */
  flush(nowMs: number, force = false): void {
    for (const list of [this.sampled, this.logged]) {
      for (let i = 0; i < list.length; ) {
        if (force || list[i]!.deadline <= nowMs) this.emit(list.splice(i, 1)[0]!.obs);
        else i++;
      }
    }
  }
}

function takeClosest(list: Waiting[], obs: QueryObservation): QueryObservation | undefined {
  let best = -1;
  let bestGap = -1n;
  list.forEach((w, i) => {
    const [sampled, logged] = obs.source === 'log' ? [w.obs, obs] : [obs, w.obs];
    if (!samePair(sampled, logged)) return;
    const gap = abs(executeLead(sampled, logged));
    if (best < 0 || gap < bestGap) (best = i), (bestGap = gap);
  });
  return best < 0 ? undefined : list.splice(best, 1)[0]!.obs;
}

const abs = (n: bigint) => (n < 0n ? -n : n);

/**
 * Whether a sampled and a logged observation are the same execution. Back-to-back statements of
 * one backend start microseconds apart, so the start alone cannot tell; the text must match and
 * the ends must agree as far as the sampled end is known.
 */
function samePair(sampled: QueryObservation, logged: QueryObservation): boolean {
  if (sampled.pid !== logged.pid) return false;
  const lead = executeLead(sampled, logged);
  if (lead < -TOLERANCE_US || lead > TOLERANCE_US + (sampled.executeStartUs === undefined ? UNSEEN_EXECUTE_US : 0n)) return false;
  const sameText = sampled.truncated ? logged.query.startsWith(sampled.query.slice(0, -1)) : logged.query === sampled.query;
  if (!sameText) return false;
  // The ends must agree within what each side says about its own end (state_change: exactly),
  // except that the backend reports idle a little after it logged the duration: on a busy
  // machine it can be descheduled in between (4 ms measured under load 8 on 2 cores).
  const slack = sampled.endUncertaintyUs + logged.endUncertaintyUs + TOLERANCE_US;
  const late = sampled.endUs - logged.endUs;
  return late >= -slack && late <= slack + IDLE_AFTER_LOG_US;
}

/** How much later than its logged end a backend may still report going idle. */
const IDLE_AFTER_LOG_US = 10_000n;

/**
 * A sample seen in one phase only may have been caught at Parse or Bind: its logged Execute may
 * then begin this much later (planning, or, on a busy machine, the backend descheduled between
 * the phases: 5 ms measured at load 7 on 2 cores).
 */
const UNSEEN_EXECUTE_US = 20_000n;

/** The log times the Execute phase alone; a sample may have started at Parse or Bind. */
function executeStart(sampled: QueryObservation): bigint {
  return sampled.executeStartUs ?? sampled.startUs;
}

/** How much later than the sample's Execute start (as far as it knows it) the logged Execute began. */
function executeLead(sampled: QueryObservation, logged: QueryObservation): bigint {
  return logged.startUs - executeStart(sampled);
}

function merge(sampled: QueryObservation, logged: QueryObservation): QueryObservation {
  // When the sample never saw the Execute start, the log's own end (millisecond) is the best one.
  const unseenExecute = executeLead(sampled, logged) > TOLERANCE_US;
  return {
    ...sampled,
    source: 'sampling+log',
    endUs: unseenExecute ? logged.endUs : executeStart(sampled) + (logged.endUs - logged.startUs),
    endPrecision: unseenExecute ? 'millisecond' : 'exact',
    endUncertaintyUs: unseenExecute ? logged.endUncertaintyUs : 0n,
    // The log holds the whole text; pg_stat_activity may have cut it short.
    query: sampled.truncated && !logged.truncated ? logged.query : sampled.query,
    truncated: sampled.truncated && logged.truncated,
    queryId: sampled.queryId ?? logged.queryId,
  };
}
