// OpenTelemetry names -> Prometheus names, by the OpenTelemetry specification's Prometheus
// compatibility rules: invalid characters become `_` (runs collapsed), the unit is spelled out
// and appended (`s` -> `_seconds`, `By` -> `_bytes`, `1` on a gauge -> `_ratio`, `m/s` ->
// `_meters_per_second`, `{...}` annotations dropped), monotonic sums end in `_total`.
// Pure functions: the exporter calls them once per new series.
import type { MetricRecord } from '../../collector/core/api.js';

const UNITS: Record<string, string> = {
  // time
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  // bytes
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes',
  KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  // SI and others
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams',
  Cel: 'celsius', Hz: 'hertz', '%': 'percent',
};
const PER_UNITS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

function clean(text: string): string {
  return text.replace(/[^a-zA-Z0-9_:]+/g, '_').replace(/_+/g, '_');
}

/** The unit as words (`seconds`, `meters_per_second`), '' for none or only annotations. */
export function unitSuffix(unit: string, metricType: MetricRecord['metricType']): string {
  const bare = unit.replace(/\{[^}]*\}/g, '').trim();
  if (bare === '') return '';
  if (bare === '1') return metricType === 'gauge' ? 'ratio' : '';
  const [main = '', per] = bare.split('/', 2);
  const words = [UNITS[main] ?? main];
  if (per !== undefined && per !== '') words.push('per', PER_UNITS[per] ?? UNITS[per] ?? per);
  return clean(words.filter((w) => w !== '').join('_')).replace(/^_|_$/g, '');
}

/** Whether the point is exposed as a Prometheus counter (a monotonic sum). */
export function isCounter(r: MetricRecord): boolean {
  return r.metricType === 'sum' && r.monotonic;
}

/** The family name of a metric (histogram and summary series add `_bucket`, `_sum`, `_count`). */
export function metricName(r: MetricRecord, namespace: string, addSuffixes: boolean): string {
  let name = clean(r.name);
  if (addSuffixes) {
    const counter = isCounter(r);
    if (counter) name = name.replace(/_total$/, '');
    const unit = unitSuffix(r.unit, r.metricType === 'sum' && !counter ? 'gauge' : r.metricType);
    if (unit !== '' && !name.endsWith(`_${unit}`) && name !== unit) name = `${name}_${unit}`;
    if (counter) name += '_total';
  }
  if (namespace !== '') name = `${clean(namespace)}_${name}`;
  name = name.replace(/_+/g, '_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** A label name from an attribute key: invalid characters `_`, a leading digit gets `key_`. */
export function labelName(key: string): string {
  const name = key.replace(/[^a-zA-Z0-9_]/g, '_');
  if (/^[0-9]/.test(name)) return `key_${name}`;
  return name === '' ? 'key_' : name;
}

/** Escapes a label value for the text format. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Escapes HELP text. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value in the text format (Go float spelling for the special values). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
