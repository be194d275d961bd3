// The gelf exporter inside a real collector process: the OpenTelemetry JS SDK sends spans
// and logs over OTLP/HTTP, the collector stores them and forwards them to a loopback GELF
// receiver. Covers the mapping, an outage with the persisted breaker, kill -9 mid-replay, and a
// peer that accepts and drops every connection (nothing may count as sent).
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { test } from 'node:test';
import { TcpReceiver } from '../plugins/gelf/receivers.fixture.js';
import { eventually, readStore, startCollector } from './collector.js';
import { tempDir } from './env.js';

const gelfPipelines = {
  service: { pipelines: { traces: { exporters: ['gelf'] }, logs: { exporters: ['gelf'] } } },
};

/** The breaker state the collector saved in its store file ('open', 'closed', ...). */
function savedBreaker(dbPath: string): string | undefined {
  const db = new Database(dbPath, { readonly: true });
  try {
    const row = db.prepare("SELECT value FROM component_state WHERE component = 'gelf' AND key = 'breaker'").get() as { value: string } | undefined;
    return row && JSON.parse(row.value).state;
  } finally {
    db.close();
  }
}

/** Posts `count` spans as OTLP/HTTP JSON (ids `n` in attribute `seq`), oldest first. */
async function postSpans(otlpUrl: string, from: number, count: number): Promise<void> {
  const base = 1_764_064_800_000_000_000n;
  const spans = Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const start = base + BigInt(seq) * 1_000_000n;
    return {
      traceId: seq.toString(16).padStart(32, '0'),
      spanId: seq.toString(16).padStart(16, '0'),
      name: `GET /item/${seq}`,
      kind: 2,
      startTimeUnixNano: start.toString(),
      endTimeUnixNano: (start + 5_000_000n).toString(),
      attributes: [{ key: 'seq', value: { intValue: String(seq) } }],
    };
  });
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'shop' } }] },
        scopeSpans: [{ scope: { name: 'load' }, spans }],
      },
    ],
  };
  const response = await fetch(`${otlpUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.text());
}

test('SDK spans and logs arrive in Graylog form: the mapping, end to end', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const collector = await startCollector(t, {
    config: { exporters: { gelf: { endpoint: `tcp://127.0.0.1:${receiver.port}` } }, ...gelfPipelines },
  });
  const resource = resourceFromAttributes({ 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent' });
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${collector.otlpUrl}/v1/traces` }))],
  });
  const tracer = tracerProvider.getTracer('checkout', '1.2.3');
  const request = tracer.startSpan('GET /cart', {
    kind: SpanKind.SERVER,
    startTime: new Date('2026-11-25T10:00:00.000Z'),
    attributes: {
      'http.request.method': 'GET',
      'url.full': 'https://shop.example/cart?id=7',
      'http.response.status_code': 500,
      'bitville.correlation_id': '4bf92f3577b34da6a3ce929d0e0e4736',
      'cache.hit': false,
      'db.tables': ['cart', 'item'],
    },
  });
  request.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
  const query = tracer.startSpan(
    'SELECT cart',
    { kind: SpanKind.CLIENT, startTime: new Date('2026-11-25T10:00:00.200Z'), attributes: { 'db.system.name': 'postgresql' } },
    trace.setSpan(context.active(), request),
  );
  query.end(new Date('2026-11-25T10:00:00.300Z'));
  request.end(new Date('2026-11-25T10:00:00.750Z'));
  await tracerProvider.forceFlush();
  await tracerProvider.shutdown();

  const loggerProvider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'shop', 'bitville.source': 'pg_agent' }),
    processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${collector.otlpUrl}/v1/logs` }) })],
  });
  loggerProvider.getLogger('pg').emit({
    timestamp: new Date('2026-11-25T10:00:01.500Z'),
    severityNumber: SeverityNumber.WARN,
    severityText: 'WARN',
    body: 'duration: 812 ms  statement: SELECT * FROM cart',
    attributes: { 'db.system.name': 'postgresql', id: 'pg-7' },
  });
  await loggerProvider.forceFlush();
  await loggerProvider.shutdown();

  const messages = await receiver.waitFor(3);
  const rows = readStore(collector.dbPath);
  const byName = (name: string) => messages.find((m) => m._name === name)!;
  const pc = request.spanContext();

  const span = byName('GET /cart');
  const spanRow = rows.find((r) => r.record.name === 'GET /cart')!;
  assert.deepEqual(
    {
      version: span.version,
      host: span.host,
      short_message: span.short_message,
      timestamp: span.timestamp,
      level: span.level,
      _correlation_id: span._correlation_id,
      _project: span._project,
      _source: span._source,
      _duration_ms: span._duration_ms,
      _timestamp: span._timestamp,
      _url: span._url,
      _method: span._method,
      _status_code: span._status_code,
      _kind: span._kind,
      _record_id: span._record_id,
      _trace_id: span._trace_id,
      _span_id: span._span_id,
      _span_kind: span._span_kind,
      _span_status: span._span_status,
      _span_status_message: span._span_status_message,
      _scope_name: span._scope_name,
      _scope_version: span._scope_version,
      _service_name: span._service_name,
      _host_name: span._host_name,
      _cache_hit: span._cache_hit,
      _db_tables: span._db_tables,
    },
    {
      version: '1.1',
      host: 'web-1',
      short_message: 'php_agent - shop',
      timestamp: 1795600800,
      level: 3,
      _correlation_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      _project: 'shop',
      _source: 'php_agent',
      _duration_ms: 750,
      _timestamp: '2026-11-25T10:00:00.000000000Z',
      _url: 'https://shop.example/cart?id=7',
      _method: 'GET',
      _status_code: 500,
      _kind: 'span',
      _record_id: spanRow.id,
      _trace_id: pc.traceId,
      _span_id: pc.spanId,
      _span_kind: 'SERVER',
      _span_status: 'ERROR',
      _span_status_message: 'boom',
      _scope_name: 'checkout',
      _scope_version: '1.2.3',
      _service_name: 'shop',
      _host_name: 'web-1',
      _cache_hit: 'false',
      _db_tables: '["cart","item"]',
    },
  );
  assert.deepEqual(JSON.parse(span.full_message as string), { ...spanRow.record, id: spanRow.id, receivedAtMs: JSON.parse(span.full_message as string).receivedAtMs });

  const child = byName('SELECT cart');
  assert.equal(child._parent_span_id, pc.spanId);
  assert.equal(child._correlation_id, pc.traceId, 'the trace id is the correlation id without the attribute');
  assert.equal(child._duration_ms, 100);
  assert.equal(child.level, 6);
  assert.equal(child._db_system_name, 'postgresql');
  assert.equal('_url' in child || '_method' in child || '_status_code' in child, false);

  const log = messages.find((m) => m._kind === 'log')!;
  assert.equal(log.short_message, 'pg_agent - shop');
  assert.equal(log.level, 4);
  assert.equal(log.timestamp, 1795600801.5);
  assert.equal(log._body, 'duration: 812 ms  statement: SELECT * FROM cart');
  assert.equal(log._severity_text, 'WARN');
  assert.equal(log._attr_id, 'pg-7', 'an attribute named id does not become the reserved _id');
  assert.equal('_id' in log, false);

  // Every field name is one Graylog keeps; every value a string or a number.
  for (const m of messages) {
    for (const [key, value] of Object.entries(m)) {
      if (['version', 'host', 'short_message', 'full_message', 'timestamp', 'level'].includes(key)) continue;
      assert.match(key, /^_[A-Za-z0-9_-]+$/);
      assert.ok(typeof value === 'string' || typeof value === 'number', `${key} is ${typeof value}`);
    }
  }
  // Forwarded records are flagged in the store.
  await eventually(() => (readStore(collector.dbPath).every((r) => r.forwarded_to_graylog !== 0) ? true : undefined));
});

test('outage: breaker opens after 5 failures, no attempt until half-open, state survives a restart, backlog replays oldest first', async (t) => {
  const RESET_MS = 4000;
  const dir = tempDir(t);
  const receiver = await TcpReceiver.start();
  const port = receiver.port;
  await receiver.close(); // Graylog is down
  t.after(() => receiver.close());
  const config = {
    exporters: {
      gelf: { endpoint: `tcp://127.0.0.1:${port}`, retry_delay: '20ms', circuit_breaker: { failure_threshold: 5, reset_timeout: `${RESET_MS}ms` } },
    },
    ...gelfPipelines,
  };
  const first = await startCollector(t, { dir, config });
  await postSpans(first.otlpUrl, 1, 100);
  const opened = await first.waitForLog((l) => /circuit breaker opened/.test(l.msg));
  const openedAt = Date.now();
  assert.equal(opened.failure_threshold, 5);
  // Saved at the transition, on a write of its own that lands a few milliseconds after the log line.
  await eventually(() => (savedBreaker(first.dbPath) === 'open' ? true : undefined), 5000, 'the open breaker saved in the store');
  const metrics = await (await fetch(`${first.adminUrl}/metrics`)).text();
  assert.match(metrics, /bitville_gelf_circuit_breaker_state\{exporter="gelf"\} 1/);
  assert.match(metrics, /bitville_gelf_send_failures\{exporter="gelf"\} 5/, 'five failed sends opened the breaker');

  // Graylog comes back while the breaker is open: it must see no connection before the
  // half-open time, not even across a collector restart.
  await receiver.listen({ port });
  let firstConnectionAt = 0;
  receiver.once('connection', () => (firstConnectionAt = Date.now()));
  await postSpans(first.otlpUrl, 101, 100); // more commits wake the queue; still no attempt
  assert.equal(await first.stop(), 0);
  assert.equal(savedBreaker(first.dbPath), 'open', 'the saved state survives the restart');
  const second = await startCollector(t, { dir, config });
  await second.waitForLog((l) => l.msg === 'GELF circuit breaker state restored' && l.breaker === 'open');
  await postSpans(second.otlpUrl, 201, 100);
  // On a loaded machine the restart can outlast the open period; the first connection's time,
  // checked below, is what proves no attempt was made before the half-open time.
  if (Date.now() - openedAt < RESET_MS - 100) assert.equal(receiver.connections, 0, 'no connection attempt while open');
  const stillOpen = await (await fetch(`${second.adminUrl}/metrics`)).text();
  assert.doesNotMatch(stillOpen, /bitville_gelf_send_failures\{exporter="gelf"\} [1-9]/, 'no send tried after the restart');

  const all = await receiver.waitFor(300, RESET_MS + 15_000);
  assert.ok(firstConnectionAt - openedAt >= RESET_MS - 50, `first connection ${firstConnectionAt - openedAt} ms after opening`);
  const rows = readStore(second.dbPath);
  assert.deepEqual(all.map((m) => m._record_id), rows.map((r) => r.id), 'every record, once, oldest first');
  assert.deepEqual(all.map((m) => m._seq), Array.from({ length: 300 }, (_, i) => i + 1));
  await second.waitForLog((l) => /circuit breaker closed/.test(l.msg));
  await eventually(() => (readStore(second.dbPath).every((r) => r.forwarded_to_graylog !== 0) ? true : undefined));
  await eventually(() => (savedBreaker(second.dbPath) === 'closed' ? true : undefined), 5000, 'the closed breaker saved in the store');
});

test('kill -9 in the middle of a replay loses nothing and marks nothing unsent', async (t) => {
  const TOTAL = 20_000;
  const dir = tempDir(t);
  const receiver = await TcpReceiver.start();
  const port = receiver.port;
  await receiver.close();
  t.after(() => receiver.close());
  const config = {
    exporters: { gelf: { endpoint: `tcp://127.0.0.1:${port}`, retry_delay: '20ms', circuit_breaker: { reset_timeout: '300ms' } } },
    ...gelfPipelines,
  };
  const first = await startCollector(t, { dir, config });
  for (let from = 1; from <= TOTAL; from += 2000) await postSpans(first.otlpUrl, from, 2000);

  // Graylog comes back but reads slowly: after 3000 messages it stops reading, so the
  // replay stalls on socket backpressure with batches in flight.
  const PAUSE_AFTER = 3000;
  await receiver.listen({ port });
  const paused = new Promise<import('node:net').Socket>((resolve) => {
    const onMessage = (_m: unknown, socket: import('node:net').Socket) => {
      if (receiver.messages.length < PAUSE_AFTER) return;
      receiver.off('message', onMessage);
      socket.pause();
      resolve(socket);
    };
    receiver.on('message', onMessage);
  });
  const socket = await paused;
  await first.kill();
  const markedAtKill = readStore(first.dbPath).filter((r) => r.forwarded_to_graylog !== 0).map((r) => r.id);
  assert.ok(markedAtKill.length < TOTAL, 'killed mid-replay');
  // What the killed process had flushed to the kernel still arrives.
  const closed = socket.destroyed ? Promise.resolve() : once(socket, 'close');
  socket.resume();
  await closed;
  const seen = new Set(receiver.messages.map((m) => m._record_id as number));
  const markedButUnseen = markedAtKill.filter((id) => !seen.has(id));
  assert.deepEqual(markedButUnseen, [], 'no record marked forwarded without having been sent');

  const second = await startCollector(t, { dir, config });
  const rows = await eventually(
    () => {
      const r = readStore(second.dbPath);
      return r.every((row) => row.forwarded_to_graylog !== 0) ? r : undefined;
    },
    60_000,
    'every record forwarded after the restart',
  ).catch((err) => {
    console.error(second.logs.slice(-20), receiver.messages.length, receiver.connections);
    throw err;
  });
  await eventually(() => (new Set(receiver.messages.map((m) => m._record_id)).size === TOTAL ? true : undefined), 10_000, 'all received');
  const received = new Set(receiver.messages.map((m) => m._record_id as number));
  assert.equal(rows.length, TOTAL);
  assert.deepEqual(rows.filter((r) => !received.has(r.id)).map((r) => r.id), [], 'nothing lost');
  const duplicates = receiver.messages.length - received.size;
  t.diagnostic(`killed with ${markedAtKill.length} marked, ${seen.size} received; ${duplicates} sent twice after the restart (at-least-once)`);
});

test('a GELF peer that accepts and drops every connection: nothing marked sent, sent counter 0, breaker open after 5', async (t) => {
  // A load balancer with no healthy Graylog behind it: TCP accept, then close.
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  receiver.closeAfter = 0;
  const collector = await startCollector(t, {
    config: { exporters: { gelf: { endpoint: `tcp://127.0.0.1:${receiver.port}`, retry_delay: '20ms' } }, ...gelfPipelines },
  });
  await postSpans(collector.otlpUrl, 1, 600);
  await collector.waitForLog((l) => /circuit breaker opened/.test(l.msg));
  const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
  assert.doesNotMatch(metrics, /otelcol_exporter_sent_spans\{exporter="gelf"\} [1-9]/, 'nothing counted sent');
  assert.match(metrics, /bitville_gelf_send_failures\{exporter="gelf"\} 5/);
  assert.match(metrics, /bitville_gelf_circuit_breaker_state\{exporter="gelf"\} 1/);
  const rows = readStore(collector.dbPath);
  assert.equal(rows.length, 600);
  assert.deepEqual(rows.filter((r) => r.forwarded_to_graylog !== 0), [], 'nothing marked forwarded');
  assert.equal(receiver.messages.length, 0);
  assert.ok(receiver.connections >= 5);
});
