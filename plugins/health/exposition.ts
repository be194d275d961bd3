// Reads the sample lines of a Prometheus text exposition (the collector's own /metrics). Only
// what the rules need: name, labels, value; comments, types and timestamps are skipped.

export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    // prom-client writes +Inf/-Inf/NaN as Number() reads them.
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of every sample of these names (0 when none: a counter appears only once used). */
export function total(samples: readonly Sample[], names: readonly string[]): number {
  let sum = 0;
  for (const s of samples) if (names.includes(s.name) && Number.isFinite(s.value)) sum += s.value;
  return sum;
}
