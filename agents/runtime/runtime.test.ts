import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { statSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { z } from 'zod';
import { tempDir } from '../../test/env.js';
import { loadAgentConfig, parseAgentConfig, runtimeConfigShape } from './config.js';
import type { BitvilleError } from '../../collector/common/errors.js';
import { AgentRuntime } from './runtime.js';
import { testSpan } from './events.fixture.js';
import { attrs, startOtlpSink } from './otlp-sink.fixture.js';
import { BufferInUseError } from './buffer.js';

const schema = z.strictObject(runtimeConfigShape({ bufferPath: '/nonexistent/buffer.db', metricsAddress: '127.0.0.1:0' }));

/** Short timings so behaviour shows within milliseconds; `extra` overlays the YAML-shaped config. */
function testConfig(dir: string, endpoint: string, extra: Record<string, unknown> = {}) {
  const raw = {
    project: 'shop',
    host_name: 'web-1',
    exporter: { endpoint, token: 'sekret', retry_backoff: ['20ms', '40ms'], breaker: { failures: 3, open_for: '200ms' } },
    batch: { max_events: 3, timeout: '50ms' },
    buffer: { path: join(dir, 'buffer.db'), persist_interval: '10ms' },
    ...extra,
  };
  return parseAgentConfig('test.yaml', raw, schema);
}

async function startRuntime(t: TestContext, config: ReturnType<typeof testConfig>) {
  const runtime = new AgentRuntime({ source: 'php_agent', config, scope: { name: 'bitville.test', version: '1' } });
  await runtime.start();
  t.after(() => runtime.stop());
  return runtime;
}

async function metric(url: string, line: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' ') || l.startsWith(line.replace(/}$/, ',') ));
  return found ? Number(found.split(' ').pop()) : NaN;
}

test('spans and logs arrive as gzip OTLP protobuf with resource, token and batching', async (t) => {
  const sink = await startOtlpSink(t);
  const runtime = await startRuntime(t, testConfig(tempDir(t), sink.url));
  for (let i = 0; i < 3; i++) runtime.submit(testSpan(i));
  runtime.submit({ type: 'log', log: { timeUnixNano: `${Date.now()}000000`, severityNumber: 9, severityText: 'INFO', body: 'hello', attributes: { a: 'b' } } });
  await sink.until(() => sink.spans().length === 3 && sink.logRecords().length === 1);
  const first = sink.requests.find((r) => r.signal === 'traces')!;
  assert.equal(first.headers.authorization, 'Bearer sekret');
  assert.equal(first.headers['content-encoding'], 'gzip');
  assert.equal(first.headers['content-type'], 'application/x-protobuf');
  assert.equal(first.traces!.resourceSpans[0]!.scopeSpans![0]!.spans!.length, 3, 'three spans in one batch');
  assert.deepEqual(attrs(first.traces!.resourceSpans[0]!.resource!.attributes), { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent' });
  const span = sink.spans()[0]!;
  assert.equal(span.kind, 2, 'SERVER');
  assert.equal(attrs(span.attributes)['test.n'], 0);
  assert.equal(sink.logRecords()[0]!.body!.stringValue, 'hello');
  await runtime.drained();
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_exported_total{signal="traces",agent="php_agent"}'), 3);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_received_total{agent="php_agent"}'), 4);
});

test('collector down, then back: every event arrives, Retry-After honoured, breaker opens and closes', async (t) => {
  const sink = await startOtlpSink(t);
  let refusals = 0;
  sink.respond((_req, res) => {
    if (refusals >= 5) return false;
    refusals++;
    res.writeHead(503, { 'retry-after': '0' }).end('busy');
    return true;
  });
  const runtime = await startRuntime(t, testConfig(tempDir(t), sink.url));
  for (let i = 0; i < 7; i++) runtime.submit(testSpan(i));
  await sink.until(() => sink.spans().length === 7);
  await runtime.drained();
  const numbers = sink.spans().map((s) => attrs(s.attributes)['test.n']);
  assert.deepEqual(numbers, [0, 1, 2, 3, 4, 5, 6], 'in order, no loss, no duplicates');
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_export_failures_total{signal="traces",kind="retryable",agent="php_agent"}'), 5);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_exporter_breaker_state{agent="php_agent"}'), 0);
});

test('the breaker opens after consecutive failures and shows on /metrics', async (t) => {
  const sink = await startOtlpSink(t);
  let failures = 0;
  let markOpened!: () => void;
  const opened = new Promise<void>((resolve) => (markOpened = resolve));
  sink.respond((_req, res) => {
    res.writeHead(500).end('broken');
    if (++failures === 3) markOpened();
    return true;
  });
  const config = testConfig(tempDir(t), sink.url, { exporter: { endpoint: sink.url, retry_backoff: ['1ms'], breaker: { failures: 3, open_for: '1h' } } });
  const runtime = await startRuntime(t, config);
  for (let i = 0; i < 3; i++) runtime.submit(testSpan(i));
  await opened;
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_exporter_breaker_state{agent="php_agent"}'), 1);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_buffered_events{tier="disk",agent="php_agent"}'), 3, 'kept for later');
});

test('a batch refused for one bad event: halves are re-sent, only that event is dropped, its neighbours arrive', async (t) => {
  const sink = await startOtlpSink(t);
  let refused = 0;
  // As a collector does with one invalid record: the whole request is answered 400.
  sink.respond((req, res) => {
    if (!req.traces!.resourceSpans.some((rs) => rs.scopeSpans!.some((ss) => ss.spans!.some((sp) => attrs(sp.attributes)['poison'] === 1)))) return false;
    refused++;
    res.writeHead(400).end('invalid UTF-8 in span attribute');
    return true;
  });
  const runtime = await startRuntime(t, testConfig(tempDir(t), sink.url, { batch: { max_events: 100, timeout: '20ms' } }));
  for (let i = 0; i < 100; i++) runtime.submit(testSpan(i, i === 37 ? { poison: 1 } : {}));
  await sink.until(() => sink.spans().length === 99);
  await runtime.drained();
  const delivered = sink.spans().map((s) => attrs(s.attributes)['test.n'] as number);
  assert.deepEqual(delivered, Array.from({ length: 100 }, (_, i) => i).filter((i) => i !== 37), 'every neighbour, in order, once');
  assert.ok(refused <= 8, `about log2(100) refused requests, got ${refused}`);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_dropped_total{reason="rejected",agent="php_agent"}'), 1);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_export_batch_splits_total{signal="traces",agent="php_agent"}'), refused - 1);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_exported_total{signal="traces",agent="php_agent"}'), 99);
});

test('a 4xx that is not about the content (404) drops the batch as before, and the next batch goes on', async (t) => {
  const sink = await startOtlpSink(t);
  let first = true;
  sink.respond((_req, res) => {
    if (!first) return false;
    first = false;
    res.writeHead(404).end('no pipeline');
    return true;
  });
  const runtime = await startRuntime(t, testConfig(tempDir(t), sink.url));
  for (let i = 0; i < 6; i++) runtime.submit(testSpan(i));
  await sink.until(() => sink.spans().length === 3);
  await runtime.drained();
  assert.deepEqual(sink.spans().map((s) => attrs(s.attributes)['test.n']), [3, 4, 5]);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_dropped_total{reason="rejected",agent="php_agent"}'), 3);
});

test('a wrong token (401, 403) drops nothing: events are kept and retried, one error line, a gauge', async (t) => {
  const sink = await startOtlpSink(t);
  let refusals = 0;
  let fixed!: () => void;
  const tokenFixed = new Promise<void>((resolve) => (fixed = resolve));
  let accept = false;
  sink.respond((_req, res) => {
    if (accept) return false;
    res.writeHead(++refusals % 2 ? 401 : 403).end('bad token');
    if (refusals === 4) fixed();
    return true;
  });
  const lines: Record<string, any>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const config = testConfig(tempDir(t), sink.url, { exporter: { endpoint: sink.url, token: 'wrong', retry_backoff: ['5ms'], breaker: { failures: 1000, open_for: '1s' } } });
  const runtime = new AgentRuntime({ source: 'php_agent', config, scope: { name: 'bitville.test', version: '1' }, logger });
  await runtime.start();
  t.after(() => runtime.stop());
  for (let i = 0; i < 5; i++) runtime.submit(testSpan(i));
  await tokenFixed;
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_exporter_unauthorized{agent="php_agent"}'), 1);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_dropped_total{reason="rejected",agent="php_agent"}'), 0, 'nothing dropped (the series exists from the start, at 0)');
  assert.ok((await metric(runtime.metricsUrl, 'bitville_agent_export_failures_total{signal="traces",kind="unauthorized",agent="php_agent"}')) >= 4);
  const errors = lines.filter((l) => l.level === 50);
  assert.equal(errors.length, 1, 'one error line per minute however often it is refused');
  assert.match(errors[0]!.msg, /credentials.*check exporter\.token.*none dropped/);
  assert.equal(errors[0]!.status, 401);
  accept = true;
  await sink.until(() => sink.spans().length === 5);
  await runtime.drained();
  assert.deepEqual(sink.spans().map((s) => attrs(s.attributes)['test.n']), [0, 1, 2, 3, 4], 'all kept, in order');
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_exporter_unauthorized{agent="php_agent"}'), 0);
  assert.ok(lines.some((l) => l.level === 30 && /accepts this agent's credentials again/.test(l.msg)));
});

test('strings that are not valid UTF-16 (lone surrogates) are sent as U+FFFD, never as invalid UTF-8', async (t) => {
  const sink = await startOtlpSink(t);
  const runtime = await startRuntime(t, testConfig(tempDir(t), sink.url, { batch: { max_events: 1, timeout: '10ms' } }));
  const event = testSpan(1, { 'url.full': 'http://shop.example/\ud800x\udfff', ok: 'caf\u00e9 \ud83d\ude00' });
  if (event.type === 'span') event.span.name = 'GET \udc00';
  runtime.submit(event);
  await sink.until(() => sink.spans().length === 1);
  const span = sink.spans()[0]!;
  assert.equal(span.name, 'GET \ufffd');
  assert.equal(attrs(span.attributes)['url.full'], 'http://shop.example/\ufffdx\ufffd');
  assert.equal(attrs(span.attributes)['ok'], 'caf\u00e9 \ud83d\ude00', 'valid pairs untouched');
});

test('kill -9 after events reached disk: a restart replays them all', async (t) => {
  const dir = tempDir(t);
  const down = await startOtlpSink(t);
  down.respond((_req, res) => (res.writeHead(503).end(), true));
  const raw = { project: 'shop', exporter: { endpoint: down.url, retry_backoff: ['1h'] }, batch: { max_events: 100, timeout: '10ms' }, buffer: { path: join(dir, 'buffer.db'), persist_interval: '10ms' }, metrics: { address: '127.0.0.1:0' } };
  const child = spawn(process.execPath, [fileURLToPath(new URL('./agent-process.fixture.js', import.meta.url)), JSON.stringify(raw), '50'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => child.kill('SIGKILL'));
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const metricsUrl = line.toString().trim();
  for (let i = 0; i < 200 && (await metric(metricsUrl, 'bitville_agent_buffered_events{tier="disk",agent="php_agent"}')) !== 50; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGKILL');
  await once(child, 'exit');

  const sink = await startOtlpSink(t);
  const runtime = await startRuntime(t, testConfig(dir, sink.url, { batch: { max_events: 100, timeout: '10ms' } }));
  await sink.until(() => sink.spans().length === 50);
  await runtime.drained();
  assert.deepEqual(sink.spans().map((s) => attrs(s.attributes)['test.n']), Array.from({ length: 50 }, (_, i) => i));
});

test('a full disk tier drops the oldest and counts them', async (t) => {
  const sink = await startOtlpSink(t);
  sink.respond((_req, res) => (res.writeHead(503).end(), true));
  const dir = tempDir(t);
  const runtime = await startRuntime(t, testConfig(dir, sink.url, { exporter: { endpoint: sink.url, retry_backoff: ['1h'] }, buffer: { path: join(dir, 'b.db'), disk_limit: '4KiB', persist_interval: '1ms' } }));
  for (let i = 0; i < 40; i++) runtime.submit(testSpan(i));
  const dropped = () => metric(runtime.metricsUrl, 'bitville_agent_events_dropped_total{reason="disk_full",agent="php_agent"}');
  for (let i = 0; i < 200 && !((await dropped()) > 0); i++) await new Promise((r) => setTimeout(r, 5));
  const diskBytes = await metric(runtime.metricsUrl, 'bitville_agent_buffered_bytes{tier="disk",agent="php_agent"}');
  const diskEvents = await metric(runtime.metricsUrl, 'bitville_agent_buffered_events{tier="disk",agent="php_agent"}');
  assert.ok(diskBytes <= 4096 && diskBytes > 0, `disk tier within its bound (${diskBytes})`);
  assert.equal((await dropped()) + diskEvents, 40, 'every event is either waiting or counted as dropped');
});

test('a second runtime on the same buffer file refuses to start', async (t) => {
  const dir = tempDir(t);
  await startRuntime(t, testConfig(dir, 'http://127.0.0.1:9'));
  const second = new AgentRuntime({ source: 'php_agent', config: testConfig(dir, 'http://127.0.0.1:9'), scope: { name: 't', version: '1' } });
  await assert.rejects(second.start(), BufferInUseError);
});

test('malformed events are counted, never thrown', async (t) => {
  const runtime = await startRuntime(t, testConfig(tempDir(t), 'http://127.0.0.1:9'));
  const bad = testSpan(1) as { type: 'span'; span: { traceId: string } };
  bad.span.traceId = 'xyz';
  runtime.submit(bad as never);
  runtime.submit({ type: 'nonsense' } as never);
  runtime.submit(null as never);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_malformed_total{reason="bad_id",agent="php_agent"}'), 1);
  assert.equal(await metric(runtime.metricsUrl, 'bitville_agent_events_malformed_total{reason="bad_type",agent="php_agent"}'), 2);
});

test('config errors name the file and the key', () => {
  assert.throws(() => parseAgentConfig('agent.yaml', { project: 'x', batch: { max_events: 0, colour: 1 } }, schema), (err: Error) => {
    assert.match(err.message, /agent\.yaml: batch\.max_events: /);
    assert.match(err.message, /agent\.yaml: batch\.colour: unknown key/);
    return true;
  });
  assert.throws(() => parseAgentConfig('agent.yaml', {}, schema), /agent\.yaml: project: /);
  process.env.BV_TEST_TOKEN = 'from-env';
  const config = parseAgentConfig('agent.yaml', { project: 'x', exporter: { token: '${env:BV_TEST_TOKEN}', timeout: '${env:BV_UNSET:-3s}' } }, schema);
  assert.equal(config.exporter.token, 'from-env');
  assert.equal(config.exporter.timeout, 3000);
  assert.equal(config.buffer.memory_limit, 10 * 1024 * 1024);
  assert.deepEqual(config.exporter.retry_backoff, [10_000, 30_000, 60_000, 300_000]);
  assert.ok(Object.isFrozen(config.exporter));
});

test('an agent config file with an unset ${env:X} names the file, the line and the variable', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, 'project: shop\nexporter:\n  token: ${env:BV_TEST_SURELY_UNSET}\n');
  delete process.env.BV_TEST_SURELY_UNSET;
  assert.throws(() => loadAgentConfig(file, schema), (err: BitvilleError) => {
    assert.equal(err.code, 'BV_CONFIG_INVALID');
    assert.equal(err.message, `${file}:3: exporter.token: environment variable BV_TEST_SURELY_UNSET is not set (write \${env:BV_TEST_SURELY_UNSET:-default} to give a default)`);
    return true;
  });
});

test('the buffer is private: buffer.db and its WAL 0600, a directory the runtime creates 0700', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'state', 'php-agent', 'buffer.db');
  const sink = await startOtlpSink(t);
  sink.respond((_req, res) => (res.writeHead(503).end(), true));
  const old = process.umask(0o022);
  t.after(() => process.umask(old));
  const runtime = await startRuntime(t, testConfig(dir, sink.url, { exporter: { endpoint: sink.url, retry_backoff: ['1h'] }, buffer: { path, persist_interval: '1ms' } }));
  runtime.submit(testSpan(1, { 'url.full': 'http://shop.example/account?card=4111' }));
  for (let i = 0; i < 200 && (await metric(runtime.metricsUrl, 'bitville_agent_buffered_events{tier="disk",agent="php_agent"}')) !== 1; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(statSync(path).mode & 0o777, 0o600, 'buffer.db');
  assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600, 'its WAL');
  assert.equal(statSync(join(dir, 'state', 'php-agent')).mode & 0o777, 0o700, 'the directory it created');
  assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700, 'and its parent');
});
