// A mergeable latency histogram as rollup fields: log-spaced buckets (`h<index>`), counts only,
// so histograms of minutes, hours, endpoints and collector instances add up by plain addition
// and an earlier revision's figures are taken back by subtraction.
//
// Bucket i holds values in (γ^(i-1), γ^i] ms with γ = 1.04; a percentile is reported as the
// bucket's midpoint 2γ^i/(γ+1), which is within (γ-1)/(γ+1) < 2% of every value in the bucket.
// Values at or below 1 µs share one bucket (`h_low`).
export const GAMMA = 1.04;
/** The bound on a percentile's relative error (docs/overview.md). */
export const RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1);
const LOG_GAMMA = Math.log(GAMMA);
const LOW_MS = 0.001;
const LOW_FIELD = 'h_low';

/** The field a duration (ms) is counted in. */
export function bucketField(ms: number): string {
  if (!(ms > LOW_MS)) return LOW_FIELD;
  return `h${Math.ceil(Math.log(ms) / LOG_GAMMA - 1e-9)}`;
}

/** Adds one observation to `fields`. */
export function observe(fields: Record<string, number>, ms: number, count = 1): void {
  const f = bucketField(ms);
  fields[f] = (fields[f] ?? 0) + count;
}

/** The percentiles (0 < q <= 1) of the histogram in `fields`, in ms; undefined when it is empty. */
export function quantiles(fields: Readonly<Record<string, number>>, qs: readonly number[]): (number | undefined)[] {
  const buckets: [number, number][] = [];
  let total = 0;
  for (const [k, v] of Object.entries(fields)) {
    if (!k.startsWith('h') || !(v > 0)) continue;
    const index = k === LOW_FIELD ? -Infinity : Number(k.slice(1));
    if (Number.isNaN(index)) continue;
    buckets.push([index, v]);
    total += v;
  }
  if (total === 0) return qs.map(() => undefined);
  buckets.sort((a, b) => a[0] - b[0]);
  return qs.map((q) => {
    const rank = Math.max(1, Math.ceil(q * total - 1e-9));
    let seen = 0;
    for (const [index, count] of buckets) {
      seen += count;
      if (seen >= rank) return index === -Infinity ? LOW_MS : (2 * GAMMA ** index) / (GAMMA + 1);
    }
    return undefined;
  });
}
