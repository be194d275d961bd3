// Delivery progress as id ranges, shared by both stores. A range [from, to] of an exporter says
// "every id from `from` to `to` is a stored record still to deliver to this exporter": exact,
// so a backlog is the sum of range lengths and a read walks the ranges' ids. An append adds one
// range per exporter for each run of consecutive ids it queued for it (usually one); marking a
// batch delivered removes its ids, which deletes the ranges it covers and shortens or splits
// the one or two it only partly covers. So progress costs a row per commit and per batch, not a
// row per record.

/** Inclusive id range. */
export type IdRange = readonly [from: number, to: number];

/** Runs of consecutive integers in ids sorted ascending (duplicates tolerated). */
export function runsOf(sorted: readonly number[]): IdRange[] {
  const runs: IdRange[] = [];
  let from = NaN;
  let to = NaN;
  for (const id of sorted) {
    if (id === to + 1) to = id;
    else if (id !== to) {
      if (!Number.isNaN(from)) runs.push([from, to]);
      from = to = id;
    }
  }
  if (!Number.isNaN(from)) runs.push([from, to]);
  return runs;
}

/** What is left of a range once the ids (sorted ascending) are taken out of it, in order. */
export function subtract(range: IdRange, sorted: readonly number[]): IdRange[] {
  const [from, to] = range;
  const left: IdRange[] = [];
  let next = from;
  for (const id of sorted) {
    if (id < next) continue;
    if (id > to) break;
    if (id > next) left.push([next, id - 1]);
    next = id + 1;
  }
  if (next <= to) left.push([next, to]);
  return left;
}

/** Ids sorted ascending, numerically, without duplicates. */
export function sortedIds(ids: readonly number[]): number[] {
  const sorted = [...ids].sort((a, b) => a - b);
  return sorted.filter((id, i) => i === 0 || id !== sorted[i - 1]);
}
