// OpenTelemetry-to-Prometheus names, case by case from the specification's compatibility rules,
// and the exposition of a delta counter and an exponential histogram.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MetricRecord } from '../../collector/core/api.js';
import { labelName, metricName } from './naming.js';
import { SeriesTable } from './series.js';

function point(over: Partial<MetricRecord>): MetricRecord {
  return {
    kind: 'metric',
    resource: { 'service.name': 'shop' },
    scope: { name: '', version: '', attributes: {} },
    attributes: {},
    traceId: '',
    spanId: '',
    correlationId: '',
    name: 'x',
    description: '',
    unit: '',
    metricType: 'gauge',
    temporality: 0,
    monotonic: false,
    startTimeUnixNano: '0',
    timeUnixNano: '1764064800000000000',
    flags: 0,
    value: 1,
    ...over,
  };
}

test('metric names: units spelled out and appended once, _ratio for 1 on gauges, _total on monotonic sums, invalid characters as _', () => {
  const cases: [Partial<MetricRecord>, string][] = [
    [{ name: 'http.server.request.duration', unit: 's', metricType: 'histogram' }, 'http_server_request_duration_seconds'],
    [{ name: 'http.server.requests', unit: '{request}', metricType: 'sum', monotonic: true }, 'http_server_requests_total'],
    [{ name: 'bytes.sent', unit: 'By', metricType: 'sum', monotonic: true }, 'bytes_sent_bytes_total'],
    [{ name: 'jobs_total', metricType: 'sum', monotonic: true }, 'jobs_total'],
    [{ name: 'memory.usage_bytes', unit: 'By' }, 'memory_usage_bytes'],
    [{ name: 'system.cpu.utilization', unit: '1' }, 'system_cpu_utilization_ratio'],
    [{ name: 'queue.items', unit: '1', metricType: 'sum', monotonic: false }, 'queue_items_ratio'],
    [{ name: 'speed', unit: 'm/s' }, 'speed_meters_per_second'],
    [{ name: 'throughput', unit: 'KiBy/s' }, 'throughput_kibibytes_per_second'],
    [{ name: 'temp', unit: 'Cel' }, 'temp_celsius'],
    [{ name: 'odd--name!!here', unit: 'widgets' }, 'odd_name_here_widgets'],
    [{ name: '2xx.responses', metricType: 'sum', monotonic: true }, '_2xx_responses_total'],
  ];
  for (const [over, want] of cases) assert.equal(metricName(point(over), '', true), want, JSON.stringify(over));
  assert.equal(metricName(point({ name: 'req', unit: 's' }), 'shop', true), 'shop_req_seconds');
  assert.equal(metricName(point({ name: 'req.count', unit: 's', metricType: 'sum', monotonic: true }), '', false), 'req_count');
  assert.equal(labelName('http.route'), 'http_route');
  assert.equal(labelName('0day'), 'key_0day');
});

test('delta sums are added up, a no-value point removes its series, and expiry drops what went quiet', () => {
  const table = new SeriesTable({ namespace: '', addMetricSuffixes: true, constLabels: { region: 'eu' }, resourceToLabels: false, expirationMs: 60_000 });
  const delta = (value: number) => point({ name: 'jobs', metricType: 'sum', monotonic: true, temporality: 1, value });
  table.add(delta(2), 0);
  table.add(delta(5), 1000);
  assert.equal(table.render(false), '# TYPE jobs_total counter\njobs_total{job="shop",region="eu"} 7\n');
  table.add(point({ name: 'jobs', metricType: 'sum', monotonic: true, temporality: 1, flags: 1 }), 2000);
  assert.equal(table.render(false), '# TYPE jobs_total counter\n');
  table.add(point({ name: 'temp', value: 3 }), 3000);
  assert.equal(table.expire(63_001), 1);
  assert.equal(table.render(false), '');
});

test('an exponential histogram becomes classic buckets with exact power-of-two bounds', () => {
  const table = new SeriesTable({ namespace: '', addMetricSuffixes: true, constLabels: {}, resourceToLabels: false, expirationMs: 60_000 });
  // scale 0: bucket i holds (2^i, 2^(i+1)]; offset 0 -> (1,2], (2,4]; negative bucket 0 -> [-2,-1).
  table.add(
    point({
      name: 'wait',
      unit: 'ms',
      metricType: 'exponential_histogram',
      temporality: 2,
      count: 6,
      sum: 7,
      scale: 0,
      zeroCount: 1,
      zeroThreshold: 0,
      positive: { offset: 0, bucketCounts: [2, 2] },
      negative: { offset: 0, bucketCounts: [1] },
      value: undefined,
    }),
    0,
  );
  assert.equal(
    table.render(false),
    [
      '# TYPE wait_milliseconds histogram',
      'wait_milliseconds_bucket{job="shop",le="-1"} 1',
      'wait_milliseconds_bucket{job="shop",le="0"} 2',
      'wait_milliseconds_bucket{job="shop",le="2"} 4',
      'wait_milliseconds_bucket{job="shop",le="4"} 6',
      'wait_milliseconds_bucket{job="shop",le="+Inf"} 6',
      'wait_milliseconds_sum{job="shop"} 7',
      'wait_milliseconds_count{job="shop"} 6',
      '',
    ].join('\n'),
  );
});
