// The latest value of every received series, and its rendering in the Prometheus text format
// (version 0.0.4). Fed with metric points in arrival order; pure apart from the clock it is given.
//
// Prometheus wants cumulative values, so delta sums and delta histograms are added up here (a
// restart of the collector starts them again from zero, as a counter reset). Exponential
// histograms become classic histograms whose bucket bounds are the exponential bucket bounds.
// Resource attributes become `target_info` (plus `job` and `instance` on every series); with
// resource_to_telemetry_conversion they are also copied onto every series.
import type { Attributes, AttributeValue, MetricRecord } from '../../collector/core/api.js';
import { escapeHelp, escapeLabelValue, formatValue, isCounter, labelName, metricName } from './naming.js';

type PromType = 'gauge' | 'counter' | 'histogram' | 'summary';

interface Series {
  labels: [string, string][];
  timeMs: number;
  seenAtMs: number;
  value: number;
  /** Histograms: upper bounds (without +Inf) and the count per bucket (one more than bounds). */
  bounds: number[];
  counts: number[];
  count: number;
  sum: number;
  quantiles: { quantile: number; value: number }[];
}

interface Family {
  type: PromType;
  help: string;
  series: Map<string, Series>;
}

export interface SeriesOptions {
  namespace: string;
  addMetricSuffixes: boolean;
  constLabels: Record<string, string>;
  resourceToLabels: boolean;
  /** Series not updated for this long are dropped. */
  expirationMs: number;
}

export type AddResult = 'stored' | 'stale' | 'type_conflict';

function labelValue(value: AttributeValue): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Attributes -> sorted label pairs; keys that sanitise to the same name join their values with `;`. */
function labelsOf(attributes: Attributes): Map<string, string> {
  const out = new Map<string, string>();
  for (const key of Object.keys(attributes).sort()) {
    const name = labelName(key);
    const value = labelValue(attributes[key]!);
    out.set(name, out.has(name) ? `${out.get(name)};${value}` : value);
  }
  return out;
}

function jobAndInstance(resource: Attributes): [string, string][] {
  const out: [string, string][] = [];
  const name = resource['service.name'];
  const namespace = resource['service.namespace'];
  if (typeof name === 'string' && name !== '') out.push(['job', typeof namespace === 'string' && namespace !== '' ? `${namespace}/${name}` : name]);
  const instance = resource['service.instance.id'];
  if (typeof instance === 'string' && instance !== '') out.push(['instance', instance]);
  return out;
}

const IDENTIFYING = new Set(['service.name', 'service.namespace', 'service.instance.id']);

/** Classic buckets from an exponential histogram point: bounds ascending, counts per bucket. */
function exponentialAsClassic(r: MetricRecord): { bounds: number[]; counts: number[] } {
  // 2^(index / 2^scale) rather than base^index, so bounds at powers of two come out exact.
  const perPowerOfTwo = 2 ** (r.scale ?? 0);
  const bound = (index: number) => 2 ** (index / perPowerOfTwo);
  const bounds: number[] = [];
  const counts: number[] = [];
  const negative = r.negative ?? { offset: 0, bucketCounts: [] };
  const positive = r.positive ?? { offset: 0, bucketCounts: [] };
  // Negative bucket i holds values in [-base^(i+1), -base^i): most negative (highest i) first.
  for (let k = negative.bucketCounts.length - 1; k >= 0; k--) {
    bounds.push(-bound(negative.offset + k));
    counts.push(negative.bucketCounts[k]!);
  }
  bounds.push(r.zeroThreshold ?? 0);
  counts.push(r.zeroCount ?? 0);
  // Positive bucket i holds values in (base^i, base^(i+1)].
  for (let k = 0; k < positive.bucketCounts.length; k++) {
    bounds.push(bound(positive.offset + k + 1));
    counts.push(positive.bucketCounts[k]!);
  }
  counts.push(0); // +Inf
  return { bounds, counts };
}

const sameBounds = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export class SeriesTable {
  readonly #options: SeriesOptions;
  readonly #families = new Map<string, Family>();
  readonly #targets = new Map<string, { labels: [string, string][]; seenAtMs: number }>();

  constructor(options: SeriesOptions) {
    this.#options = options;
  }

  get seriesCount(): number {
    let n = 0;
    for (const f of this.#families.values()) n += f.series.size;
    return n;
  }

  add(r: MetricRecord, nowMs: number): AddResult {
    const name = metricName(r, this.#options.namespace, this.#options.addMetricSuffixes);
    const type: PromType =
      r.metricType === 'histogram' || r.metricType === 'exponential_histogram' ? 'histogram' : r.metricType === 'summary' ? 'summary' : isCounter(r) ? 'counter' : 'gauge';
    let family = this.#families.get(name);
    if (family && family.type !== type) return 'type_conflict';

    const labels = new Map<string, string>();
    if (this.#options.resourceToLabels) for (const [k, v] of labelsOf(r.resource)) labels.set(k, v);
    for (const [k, v] of labelsOf(r.attributes)) labels.set(k, v);
    if (r.scope.name) labels.set('otel_scope_name', r.scope.name);
    if (r.scope.version) labels.set('otel_scope_version', r.scope.version);
    const identity = jobAndInstance(r.resource);
    for (const [k, v] of identity) labels.set(k, v);
    for (const [k, v] of Object.entries(this.#options.constLabels)) labels.set(labelName(k), v);
    const sorted = [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = JSON.stringify(sorted);

    if (r.flags & 1) {
      // No recorded value: the series went away at the source.
      family?.series.delete(key);
      return 'stale';
    }
    if (!family) {
      family = { type, help: r.description, series: new Map() };
      this.#families.set(name, family);
    }
    this.#noteTarget(r.resource, identity, nowMs);

    const timeMs = Number(BigInt(r.timeUnixNano) / 1_000_000n);
    const previous = family.series.get(key);
    const delta = r.temporality === 1;
    const next: Series = previous ?? { labels: sorted, timeMs, seenAtMs: nowMs, value: 0, bounds: [], counts: [], count: 0, sum: 0, quantiles: [] };
    if (previous && !delta && timeMs < previous.timeMs) return 'stored'; // an older cumulative point: keep the newer one
    next.timeMs = Math.max(timeMs, previous?.timeMs ?? 0);
    next.seenAtMs = nowMs;
    switch (r.metricType) {
      case 'gauge':
      case 'sum':
        next.value = delta && previous ? previous.value + (r.value ?? 0) : (r.value ?? 0);
        break;
      case 'histogram':
      case 'exponential_histogram': {
        const { bounds, counts } =
          r.metricType === 'histogram'
            ? { bounds: r.explicitBounds ?? [], counts: r.bucketCounts?.length ? r.bucketCounts : [...(r.explicitBounds ?? []).map(() => 0), r.count ?? 0] }
            : exponentialAsClassic(r);
        if (delta && previous && sameBounds(previous.bounds, bounds)) {
          next.counts = previous.counts.map((c, i) => c + (counts[i] ?? 0));
          next.count = previous.count + (r.count ?? 0);
          next.sum = previous.sum + (r.sum ?? 0);
        } else {
          next.bounds = bounds;
          next.counts = counts;
          next.count = r.count ?? 0;
          next.sum = r.sum ?? 0;
        }
        break;
      }
      case 'summary':
        next.count = r.count ?? 0;
        next.sum = r.sum ?? 0;
        next.quantiles = r.quantiles ?? [];
        break;
    }
    family.series.set(key, next);
    return 'stored';
  }

  #noteTarget(resource: Attributes, identity: [string, string][], nowMs: number): void {
    const labels = new Map<string, string>(identity);
    let extra = false;
    for (const [k, v] of labelsOf(Object.fromEntries(Object.entries(resource).filter(([k]) => !IDENTIFYING.has(k))))) {
      if (!labels.has(k)) labels.set(k, v), (extra = true);
    }
    if (!extra) return;
    const sorted = [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this.#targets.set(JSON.stringify(identity), { labels: sorted, seenAtMs: nowMs });
  }

  /** Drops series not updated within the expiration. */
  expire(nowMs: number): number {
    const cutoff = nowMs - this.#options.expirationMs;
    let dropped = 0;
    for (const [name, family] of this.#families) {
      for (const [key, s] of family.series) if (s.seenAtMs < cutoff) family.series.delete(key), dropped++;
      if (family.series.size === 0) this.#families.delete(name);
    }
    for (const [key, t] of this.#targets) if (t.seenAtMs < cutoff) this.#targets.delete(key);
    return dropped;
  }

  /** The text exposition, families sorted by name. */
  render(sendTimestamps: boolean): string {
    const out: string[] = [];
    const line = (name: string, labels: [string, string][], value: number, timeMs: number) => {
      const text = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}` : '';
      out.push(`${name}${text} ${formatValue(value)}${sendTimestamps ? ` ${timeMs}` : ''}`);
    };
    if (this.#targets.size > 0) {
      out.push('# HELP target_info Target metadata', '# TYPE target_info gauge');
      for (const t of this.#targets.values()) line('target_info', t.labels, 1, t.seenAtMs);
    }
    for (const name of [...this.#families.keys()].sort()) {
      const family = this.#families.get(name)!;
      if (family.help) out.push(`# HELP ${name} ${escapeHelp(family.help)}`);
      out.push(`# TYPE ${name} ${family.type}`);
      for (const s of family.series.values()) {
        if (family.type === 'gauge' || family.type === 'counter') {
          line(name, s.labels, s.value, s.timeMs);
        } else if (family.type === 'histogram') {
          let cumulative = 0;
          s.bounds.forEach((bound, i) => {
            cumulative += s.counts[i] ?? 0;
            line(`${name}_bucket`, [...s.labels, ['le', formatValue(bound)]], cumulative, s.timeMs);
          });
          line(`${name}_bucket`, [...s.labels, ['le', '+Inf']], s.count, s.timeMs);
          line(`${name}_sum`, s.labels, s.sum, s.timeMs);
          line(`${name}_count`, s.labels, s.count, s.timeMs);
        } else {
          for (const q of s.quantiles) line(name, [...s.labels, ['quantile', formatValue(q.quantile)]], q.value, s.timeMs);
          line(`${name}_sum`, s.labels, s.sum, s.timeMs);
          line(`${name}_count`, s.labels, s.count, s.timeMs);
        }
      }
    }
    return out.length ? `${out.join('\n')}\n` : '';
  }
}
