// Reading a Prometheus text exposition in tests. Families (name, type, help) and the syntax
// check come from parse-prometheus-text-format; it merges a labelled histogram's or summary's
// series into one and drops their labels, so samples are also read line by line here.
import parsePrometheus, { type ParsedFamily } from 'parse-prometheus-text-format';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: string;
}

export interface Exposition {
  families: ParsedFamily[];
  samples: Sample[];
  family(name: string): ParsedFamily | undefined;
  /** Samples of this exact sample name whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
  /** The one value of a sample; fails when there is not exactly one. */
  value(name: string, labels?: Record<string, string>): string;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function readExposition(text: string): Exposition {
  const families = parsePrometheus(text); // throws on a malformed line
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    samples.push({ name: m[1]!, labels, value: m[3]! });
  }
  const find = (name: string, want: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
  return {
    families,
    samples,
    family: (name) => families.find((f) => f.name === name),
    find,
    value(name, want = {}) {
      const found = find(name, want);
      if (found.length !== 1) throw new Error(`${found.length} samples ${name} ${JSON.stringify(want)}:\n${text}`);
      return found[0]!.value;
    },
  };
}

/** Metric names a /metrics text declares (# TYPE lines; histograms also as _bucket, _sum, _count). */
export function declaredNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1]! + s);
  }
  return names;
}
