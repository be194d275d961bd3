// The metrics signal end to end: the OpenTelemetry JS SDK's metrics exporters (OTLP/HTTP JSON
// and OTLP/gRPC) send to a real collector, every data point is stored as a `metric` record, and
// the `prometheus` exporter serves the series, checked by scraping it and parsing the text with
// a Prometheus text parser. GELF forwards metric points only from the metrics pipeline.
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricsHttp } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationType, MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { TcpReceiver } from '../plugins/gelf/receivers.fixture.js';
import { opentelemetry } from '../proto/generated/otlp.js';
import { eventually, readStore, startCollector } from './collector.js';
import { grpcCall } from './grpc.fixture.js';
import { readExposition, type Exposition } from './prometheus-text.fixture.js';

async function startMetricsCollector(t: TestContext) {
  const c = await startCollector(t, {
    config: {
      receivers: { otlp: { protocols: { grpc: { endpoint: '127.0.0.1:0' } } } },
      exporters: { prometheus: { endpoint: '127.0.0.1:0' } },
      service: { pipelines: { metrics: { receivers: ['otlp'], exporters: ['prometheus'] } } },
    },
  });
  const g = await c.waitForLog((l) => l.msg === 'OTLP/gRPC receiver listening');
  const p = await c.waitForLog((l) => l.msg === 'Prometheus exporter listening');
  const scrapeUrl = `http://127.0.0.1:${p.port}/metrics`;
  /** The parsed scrape once `ready` holds for it. */
  const scrape = (ready: (e: Exposition) => boolean, what: string) =>
    eventually(async () => {
      const res = await fetch(scrapeUrl);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const e = readExposition(await res.text());
      return ready(e) ? e : undefined;
    }, 10_000, what);
  return { ...c, grpcUrl: `http://127.0.0.1:${g.port}`, grpcAddress: `127.0.0.1:${g.port}`, scrape };
}

/** Records a fixed set of instruments through the SDK and flushes them through `exporter`. */
async function recordWithSdk(exporter: PushMetricExporter, service: string) {
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'service.instance.id': 'web-1', 'host.name': 'web-1', 'deployment.environment': 'test' }),
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
    views: [{ instrumentName: 'queue.wait', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }],
  });
  const meter = provider.getMeter('checkout', '1.2.3');
  meter.createCounter('http.server.requests', { unit: '{request}', description: 'Requests served.' }).add(3, { route: '/cart' });
  const duration = meter.createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.25, 0.5, 1] } });
  for (const v of [0.1, 0.3, 2]) duration.record(v, { route: '/cart' });
  const queue = meter.createUpDownCounter('queue.depth');
  queue.add(5);
  queue.add(-2);
  meter.createGauge('process.memory.usage', { unit: 'By' }).record(1048576);
  meter.createObservableGauge('system.cpu.utilization', { unit: '1' }).addCallback((r) => r.observe(0.25));
  const wait = meter.createHistogram('queue.wait', { unit: 'ms' });
  for (const v of [1, 2, 4, 8]) wait.record(v);
  await provider.forceFlush();
  await provider.shutdown();
}

for (const protocol of ['http', 'grpc'] as const) {
  test(`SDK metrics over OTLP/${protocol} are stored as metric points and scraped from the prometheus exporter`, async (t) => {
    const c = await startMetricsCollector(t);
    const service = `shop-${protocol}`;
    const exporter = protocol === 'http' ? new MetricsHttp({ url: `${c.otlpUrl}/v1/metrics` }) : new MetricsGrpc({ url: c.grpcUrl });
    await recordWithSdk(exporter, service);

    const rows = readStore(c.dbPath);
    assert.ok(rows.length >= 6, `one row per data point; got ${rows.length}`);
    assert.ok(rows.every((r) => r.kind === 'metric' && r.signal === 'metrics'));
    const histogram = rows.find((r) => r.record.name === 'http.server.request.duration')!.record;
    assert.equal(histogram.metricType, 'histogram');
    assert.equal(histogram.temporality, 2);
    assert.deepEqual(histogram.explicitBounds, [0.25, 0.5, 1]);
    assert.deepEqual(histogram.bucketCounts, [1, 1, 0, 1]);
    assert.equal(histogram.count, 3);
    assert.equal(histogram.unit, 's');
    assert.equal(histogram.resource['service.name'], service);
    const counter = rows.find((r) => r.record.name === 'http.server.requests')!.record;
    assert.deepEqual([counter.metricType, counter.monotonic, counter.value], ['sum', true, 3]);
    const exp = rows.find((r) => r.record.name === 'queue.wait')!.record;
    assert.equal(exp.metricType, 'exponential_histogram');
    assert.equal(exp.count, 4);

    const e = await c.scrape((x) => x.family('queue_wait_milliseconds') !== undefined && x.family('target_info') !== undefined, 'all series scraped');
    const id = { job: service, instance: 'web-1', otel_scope_name: 'checkout', otel_scope_version: '1.2.3' };

    assert.equal(e.family('http_server_requests_total')!.type, 'COUNTER');
    assert.equal(e.family('http_server_requests_total')!.help, 'Requests served.');
    assert.deepEqual(e.find('http_server_requests_total'), [{ name: 'http_server_requests_total', labels: { ...id, route: '/cart' }, value: '3' }]);

    assert.equal(e.family('http_server_request_duration_seconds')!.type, 'HISTOGRAM');
    const d = 'http_server_request_duration_seconds';
    assert.deepEqual(
      e.find(`${d}_bucket`, { ...id, route: '/cart' }).map((s) => [s.labels.le, s.value]),
      [['0.25', '1'], ['0.5', '2'], ['1', '2'], ['+Inf', '3']],
    );
    assert.equal(e.value(`${d}_count`, { ...id, route: '/cart' }), '3');
    assert.equal(Number(e.value(`${d}_sum`, { ...id, route: '/cart' })), 2.4);

    assert.equal(e.family('queue_depth')!.type, 'GAUGE');
    assert.equal(e.value('queue_depth', { job: service }), '3');
    assert.equal(e.value('process_memory_usage_bytes', id), '1048576');
    assert.equal(e.value('system_cpu_utilization_ratio', id), '0.25');

    // The exponential histogram as classic buckets: every value at or below its bucket's bound.
    assert.equal(e.family('queue_wait_milliseconds')!.type, 'HISTOGRAM');
    assert.equal(e.value('queue_wait_milliseconds_count', id), '4');
    assert.equal(Number(e.value('queue_wait_milliseconds_sum', id)), 15);
    const buckets = e.find('queue_wait_milliseconds_bucket', id).map((s) => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), Number(s.value)] as const);
    for (const [value, below] of [[1, 1], [2, 2], [4, 3], [8, 4]] as const) {
      assert.equal(buckets.find(([le]) => le >= value)![1], below, `values <= ${value}`);
    }
    assert.deepEqual(buckets.at(-1), [Infinity, 4]);

    assert.deepEqual(e.find('target_info'), [
      { name: 'target_info', labels: { job: service, instance: 'web-1', host_name: 'web-1', deployment_environment: 'test' }, value: '1' },
    ]);
  });
}

const metricsRequest = (metrics: object[], service = 'batch') => ({
  resourceMetrics: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeMetrics: [{ scope: { name: 'jobs' }, metrics }] }],
});
const T = (s: number) => String(BigInt(1764064800 + s) * 1_000_000_000n);

test('OTLP/JSON summaries and delta sums: quantiles served, deltas added up, bad points refused in partial_success', async (t) => {
  const c = await startMetricsCollector(t);
  const post = async (body: object) => {
    const res = await fetch(`${c.otlpUrl}/v1/metrics`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    return (await res.json()) as { partialSuccess?: { rejectedDataPoints?: number; errorMessage?: string } };
  };
  const summary = {
    name: 'job.runtime',
    unit: 's',
    summary: { dataPoints: [{ timeUnixNano: T(1), count: '10', sum: 12.5, quantileValues: [{ quantile: 0.5, value: 1 }, { quantile: 0.99, value: 3.5 }] }] },
  };
  const delta = (n: number, at: number) => ({
    name: 'jobs.done',
    sum: { aggregationTemporality: 'AGGREGATION_TEMPORALITY_DELTA', isMonotonic: true, dataPoints: [{ timeUnixNano: T(at), asInt: String(n), attributes: [{ key: 'queue', value: { stringValue: 'mail' } }] }] },
  });
  assert.deepEqual(await post(metricsRequest([summary, delta(2, 1)])), {});
  const partial = await post(metricsRequest([delta(5, 2), { name: 'no.time', gauge: { dataPoints: [{ asDouble: 1 }] } }]));
  assert.equal(partial.partialSuccess?.rejectedDataPoints, 1);
  assert.match(partial.partialSuccess?.errorMessage ?? '', /no timeUnixNano/);

  const e = await c.scrape((x) => x.find('jobs_done_total')[0]?.value === '7', 'delta points added up');
  assert.deepEqual(e.find('jobs_done_total')[0]!.labels, { job: 'batch', otel_scope_name: 'jobs', queue: 'mail' });
  assert.equal(e.family('job_runtime_seconds')!.type, 'SUMMARY');
  assert.deepEqual(e.find('job_runtime_seconds').map((s) => [s.labels.quantile, s.value]), [['0.5', '1'], ['0.99', '3.5']]);
  assert.deepEqual([e.value('job_runtime_seconds_count'), e.value('job_runtime_seconds_sum')], ['10', '12.5']);
  assert.equal(e.family('no_time'), undefined);
  assert.equal(readStore(c.dbPath).length, 3);
});

test('protobuf metrics over gRPC and over HTTP get their partial_success, and the store holds the good points', async (t) => {
  const c = await startMetricsCollector(t);
  const { ExportMetricsServiceRequest, ExportMetricsServiceResponse } = opentelemetry.proto.collector.metrics.v1;
  const body = Buffer.from(
    ExportMetricsServiceRequest.encode({
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                { name: 'temp', unit: 'Cel', gauge: { dataPoints: [{ timeUnixNano: Number(T(1)), asDouble: 21.5 }] } },
                { name: 'bad.histogram', histogram: { dataPoints: [{ timeUnixNano: Number(T(1)), count: 1, bucketCounts: [1], explicitBounds: [1, 2] }] } },
              ],
            },
          ],
        },
      ],
    }).finish(),
  );
  const reply = ExportMetricsServiceResponse.decode(await grpcCall(c.grpcAddress, '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', body, {}));
  assert.equal(Number(reply.partialSuccess?.rejectedDataPoints), 1);
  assert.match(reply.partialSuccess?.errorMessage ?? '', /bucket counts/);
  const res = await fetch(`${c.otlpUrl}/v1/metrics`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-protobuf');
  const overHttp = ExportMetricsServiceResponse.decode(Buffer.from(await res.arrayBuffer()));
  assert.equal(Number(overHttp.partialSuccess?.rejectedDataPoints), 1);
  const rows = readStore(c.dbPath);
  assert.deepEqual(rows.map((r) => [r.record.name, r.record.value, r.record.unit]), [['temp', 21.5, 'Cel'], ['temp', 21.5, 'Cel']]);
  const e = await c.scrape((x) => x.family('temp_celsius') !== undefined, 'gauge scraped');
  assert.equal(e.value('temp_celsius'), '21.5');
});

test('GELF gets metric points only from a GELF exporter named in the metrics pipeline', async (t) => {
  const graylog = await TcpReceiver.start();
  const graylogMetrics = await TcpReceiver.start();
  t.after(() => Promise.all([graylog.close(), graylogMetrics.close()]));
  const c = await startCollector(t, {
    config: {
      exporters: { gelf: { endpoint: `tcp://127.0.0.1:${graylog.port}` }, 'gelf/metrics': { endpoint: `tcp://127.0.0.1:${graylogMetrics.port}` } },
      service: {
        pipelines: { traces: { exporters: ['gelf'] }, logs: { exporters: ['gelf'] }, metrics: { receivers: ['otlp'], exporters: ['gelf/metrics'] } },
      },
    },
  });
  const post = async (path: string, body: object) => {
    const res = await fetch(`${c.otlpUrl}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
  };
  await post('/v1/metrics', metricsRequest([{ name: 'queue.depth', gauge: { dataPoints: [{ timeUnixNano: T(1), asInt: '4' }] } }], 'shop'));
  const span = { traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174', name: 'GET /cart', startTimeUnixNano: T(2), endTimeUnixNano: T(3) };
  await post('/v1/traces', { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'shop' } }] }, scopeSpans: [{ spans: [span] }] }] });

  const [metric] = await graylogMetrics.waitFor(1);
  assert.equal(metric!._kind, 'metric');
  assert.equal(metric!._name, 'queue.depth');
  assert.equal(JSON.parse(String(metric!.full_message)).value, 4);
  // The span was committed after the metric point and GELF replays oldest first: had the
  // traces-and-logs exporter been handed the point, it would have arrived before the span.
  const [first] = await graylog.waitFor(1);
  assert.equal(first!._kind, 'span');
  assert.equal(graylog.messages.length, 1);
  assert.equal(graylogMetrics.messages.length, 1);
});
