// Rollups: small rows of named numbers per interval that a component adds to as records are
// committed, so an overview of a week reads a few thousand rows instead of millions of records.
// A contribution travels with one record to the commit and is added in the same transaction as
// that record: a crash keeps both or neither. The store keeps each row at four resolutions
// (ROLLUP_RESOLUTIONS: minute, 10 minutes, hour, UTC day) so a long range reads coarse rows.
import type { FlatRecord } from './model.js';

/** Additions to one rollup row: the row's named numbers grow by `add` (negative takes back). */
export interface RollupDelta {
  /** What the row counts, named by the component (`correlate.endpoint`). */
  series: string;
  /** When the counted event happened (ms since the epoch); the store files it under its minute, 10 minutes, hour and day. */
  atMs: number;
  /** The row within the series and interval (an endpoint, a statement). */
  key: string;
  add: Readonly<Record<string, number>>;
}

export interface RollupContribution {
  /**
   * Added at most once: a second contribution with the same key (an identical record emitted
   * by two collector instances) is ignored. Keys are remembered for ROLLUP_ONCE_HORIZON_MS.
   */
  once: string;
  deltas: readonly RollupDelta[];
}

/** The rows' resolutions (ms), finest first: every delta is added to its row at each (UTC days). */
export const ROLLUP_RESOLUTIONS = [60_000, 600_000, 3_600_000, 86_400_000] as const;
export type RollupResolution = (typeof ROLLUP_RESOLUTIONS)[number];

/** How long a contribution's `once` key is remembered (duplicates arrive within seconds of each other). */
export const ROLLUP_ONCE_HORIZON_MS = 3_600_000;

export interface RollupQuery {
  series: string;
  resolutionMs: RollupResolution;
  /** Rows whose interval starts at or after this (ms since the epoch)... */
  fromMs: number;
  /** ...and before this. */
  untilMs: number;
  /** Only this row key. */
  key?: string;
}

export interface RollupRow {
  /** Start of the row's interval (ms since the epoch). */
  bucketMs: number;
  key: string;
  fields: Record<string, number>;
}

// Kept beside the record, not in it: the stored body (and what exporters send) stays as it was.
const attached = new WeakMap<FlatRecord, RollupContribution>();

/**
 * The rows that cover [fromMs, untilMs) exactly with the fewest rows: the coarsest resolution
 * for the whole intervals in the middle, finer ones for the ragged ends (both ends are taken to
 * be whole minutes).
 */
export function coveringRanges(fromMs: number, untilMs: number, resolutions: readonly number[] = ROLLUP_RESOLUTIONS): { resolutionMs: RollupResolution; fromMs: number; untilMs: number }[] {
  if (fromMs >= untilMs) return [];
  const [finest, ...coarser] = resolutions;
  if (coarser.length === 0) return [{ resolutionMs: finest as RollupResolution, fromMs, untilMs }];
  const r = coarser.at(-1)!;
  const a = Math.ceil(fromMs / r) * r;
  const b = Math.floor(untilMs / r) * r;
  const finer = resolutions.slice(0, -1);
  if (a >= b) return coveringRanges(fromMs, untilMs, finer);
  return [...coveringRanges(fromMs, a, finer), { resolutionMs: r as RollupResolution, fromMs: a, untilMs: b }, ...coveringRanges(b, untilMs, finer)];
}

/** Lets `contribution` travel with `record` to the commit; returns the record. */
export function attachRollup<R extends FlatRecord>(record: R, contribution: RollupContribution): R {
  attached.set(record, contribution);
  return record;
}

/** The contribution attached to the record, if any (for store implementations). */
export function rollupOf(record: FlatRecord): RollupContribution | undefined {
  return attached.get(record);
}

/** Adds `b`'s numbers into `a` (keys that reach zero are dropped). */
export function addFields(a: Record<string, number>, b: Readonly<Record<string, number>>): Record<string, number> {
  for (const [k, v] of Object.entries(b)) {
    const sum = (a[k] ?? 0) + v;
    // Sums of fractional milliseconds drift a little from zero when taken back.
    if (Math.abs(sum) < 1e-9) delete a[k];
    else a[k] = sum;
  }
  return a;
}

/** The contributions' deltas summed per row (resolution, interval, series, key), ready to add to the store. */
export function rowsOf(contributions: readonly RollupContribution[]): Map<string, { series: string; resolutionMs: number; bucketMs: number; key: string; add: Record<string, number> }> {
  const rows = new Map<string, { series: string; resolutionMs: number; bucketMs: number; key: string; add: Record<string, number> }>();
  for (const c of contributions) {
    for (const d of c.deltas) {
      for (const resolutionMs of ROLLUP_RESOLUTIONS) {
        const bucketMs = Math.floor(d.atMs / resolutionMs) * resolutionMs;
        const id = `${resolutionMs}\n${bucketMs}\n${d.series}\n${d.key}`;
        const row = rows.get(id) ?? { series: d.series, resolutionMs, bucketMs, key: d.key, add: {} };
        addFields(row.add, d.add);
        rows.set(id, row);
      }
    }
  }
  return rows;
}
