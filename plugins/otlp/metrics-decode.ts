// OTLP metrics request -> one flat record per data point. Like decode.ts, one walker serves
// protobufjs messages and OTLP/JSON alike (same lowerCamelCase names; 64-bit numbers as Long,
// decimal strings or numbers). A bad point (no time, a value of the wrong type, bucket counts
// that do not fit the bounds) is rejected on its own and reported in partial_success; a
// request of the wrong shape is refused whole (BV_BAD_DATA).
import { ConsumerError, CORRELATION_ATTRIBUTE } from '../../collector/core/api.js';
import type { Attributes, ExponentialBuckets, MetricRecord, MetricType, Scope } from '../../collector/core/api.js';
import { attributes } from './decode.js';
import type { Flattened } from './decode.js';

type Obj = Record<string, any>;

class PointError extends Error {}

const TYPES: readonly [key: string, type: MetricType][] = [
  ['gauge', 'gauge'],
  ['sum', 'sum'],
  ['histogram', 'histogram'],
  ['exponentialHistogram', 'exponential_histogram'],
  ['summary', 'summary'],
];
const TEMPORALITIES = ['AGGREGATION_TEMPORALITY_UNSPECIFIED', 'AGGREGATION_TEMPORALITY_DELTA', 'AGGREGATION_TEMPORALITY_CUMULATIVE'];

function list(value: unknown, what: string): Obj[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConsumerError('BV_BAD_DATA', `${what} must be an array`);
  return value;
}

function isLong(v: unknown): v is { low: number; high: number; unsigned?: boolean } {
  return typeof v === 'object' && v !== null && typeof (v as Obj).low === 'number' && typeof (v as Obj).high === 'number';
}

/** A 64-bit integer in any of its encodings, as a bigint. */
function int64(value: unknown, what: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (isLong(value)) {
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return value.unsigned ? bits : BigInt.asIntN(64, bits);
  }
  throw new PointError(`${what} is not an integer`);
}

function count(value: unknown, what: string): number {
  const n = int64(value, what);
  if (n < 0n) throw new PointError(`${what} is negative`);
  return Number(n);
}

/** A double: JSON may spell the non-finite ones as strings. */
function double(value: unknown, what: string): number {
  if (typeof value === 'number') return value;
  if (value === 'NaN') return NaN;
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  throw new PointError(`${what} is not a number`);
}

function optionalDouble(point: Obj, key: string): number | undefined {
  const v = point[key];
  return v === undefined || v === null ? undefined : double(v, key);
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function temporalityOf(value: unknown): number {
  if (typeof value === 'number') return value;
  const i = TEMPORALITIES.indexOf(String(value));
  return i < 0 ? 0 : i;
}

function buckets(value: Obj | undefined | null, what: string): ExponentialBuckets {
  return {
    offset: typeof value?.offset === 'number' ? value.offset : 0,
    bucketCounts: list(value?.bucketCounts, `${what}.bucketCounts`).map((c) => count(c, `${what} bucket count`)),
  };
}

function point(metric: Obj, type: MetricType, data: Obj, p: Obj, resource: Attributes, scope: Scope): MetricRecord {
  const time = int64(p.timeUnixNano, 'timeUnixNano');
  if (time === 0n) throw new PointError(`a point of metric "${text(metric.name)}" has no timeUnixNano`);
  const attrs = attributes(p.attributes);
  const given = attrs[CORRELATION_ATTRIBUTE] ?? resource[CORRELATION_ATTRIBUTE];
  const record: MetricRecord = {
    kind: 'metric',
    resource,
    scope,
    attributes: attrs,
    traceId: '',
    spanId: '',
    correlationId: typeof given === 'string' ? given : '',
    name: text(metric.name),
    description: text(metric.description),
    unit: text(metric.unit),
    metricType: type,
    temporality: type === 'gauge' || type === 'summary' ? 0 : temporalityOf(data.aggregationTemporality),
    monotonic: type === 'sum' && data.isMonotonic === true,
    startTimeUnixNano: int64(p.startTimeUnixNano, 'startTimeUnixNano').toString(),
    timeUnixNano: time.toString(),
    flags: typeof p.flags === 'number' ? p.flags : 0,
  };
  switch (type) {
    case 'gauge':
    case 'sum':
      if (p.asDouble !== undefined && p.asDouble !== null) record.value = double(p.asDouble, 'asDouble');
      else if (p.asInt !== undefined && p.asInt !== null) record.value = Number(int64(p.asInt, 'asInt'));
      else if (!(record.flags & 1)) throw new PointError(`a point of metric "${record.name}" has no value`);
      break;
    case 'histogram': {
      record.count = count(p.count, 'count');
      record.bucketCounts = list(p.bucketCounts, 'bucketCounts').map((c) => count(c, 'bucket count'));
      record.explicitBounds = list(p.explicitBounds, 'explicitBounds').map((b) => double(b, 'explicit bound'));
      if (record.bucketCounts.length > 0 && record.bucketCounts.length !== record.explicitBounds.length + 1) {
        throw new PointError(`histogram "${record.name}" has ${record.bucketCounts.length} bucket counts for ${record.explicitBounds.length} bounds (want one more count than bounds)`);
      }
      break;
    }
    case 'exponential_histogram':
      record.count = count(p.count, 'count');
      record.scale = typeof p.scale === 'number' ? p.scale : 0;
      if (record.scale < -10 || record.scale > 20) throw new PointError(`exponential histogram "${record.name}" has scale ${record.scale} (want -10..20)`);
      record.zeroCount = count(p.zeroCount, 'zeroCount');
      record.zeroThreshold = optionalDouble(p, 'zeroThreshold') ?? 0;
      record.positive = buckets(p.positive, 'positive');
      record.negative = buckets(p.negative, 'negative');
      break;
    case 'summary':
      record.count = count(p.count, 'count');
      record.quantiles = list(p.quantileValues, 'quantileValues').map((q) => ({
        quantile: double(q?.quantile ?? 0, 'quantile'),
        value: double(q?.value ?? 0, 'quantile value'),
      }));
      break;
  }
  if (type !== 'gauge' && type !== 'sum') {
    const sum = optionalDouble(p, 'sum');
    if (sum !== undefined) record.sum = sum;
    const min = optionalDouble(p, 'min');
    if (min !== undefined) record.min = min;
    const max = optionalDouble(p, 'max');
    if (max !== undefined) record.max = max;
  }
  return record;
}

export function flattenMetrics(request: Obj): Flattened<MetricRecord> {
  const out: Flattened<MetricRecord> = { records: [], rejected: 0, error: '' };
  const reject = (n: number, message: string) => {
    out.rejected += n;
    out.error ||= message;
  };
  for (const group of list(request.resourceMetrics, 'resourceMetrics')) {
    const resource = attributes(group?.resource?.attributes);
    for (const scoped of list(group?.scopeMetrics, 'scopeMetrics')) {
      const scope = { name: text(scoped?.scope?.name), version: text(scoped?.scope?.version), attributes: attributes(scoped?.scope?.attributes) };
      for (const metric of list(scoped?.metrics, 'metrics')) {
        const found = TYPES.find(([key]) => metric?.[key] !== undefined && metric?.[key] !== null);
        if (!found) {
          // A metric with no data says nothing; one that is not an object is a malformed entry.
          if (typeof metric !== 'object' || metric === null) reject(1, 'an entry of metrics is not an object');
          continue;
        }
        const [key, type] = found;
        const data = metric[key] as Obj;
        const points = list(data.dataPoints, `${key}.dataPoints`);
        if (!text(metric.name)) {
          reject(points.length, 'a metric has no name');
          continue;
        }
        for (const p of points) {
          try {
            if (typeof p !== 'object' || p === null) throw new PointError(`a data point of "${metric.name}" is not an object`);
            out.records.push(point(metric, type, data, p, resource, scope));
          } catch (err) {
            if (!(err instanceof PointError)) throw err;
            reject(1, err.message);
          }
        }
      }
    }
  }
  return out;
}
