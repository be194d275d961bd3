// Each transport through the exporter's export(), against loopback receivers that parse
// as Graylog does, and (UDP) against graygelf, a GELF server written by someone else.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import type { StoredRecord } from '../../collector/core/api.js';
import { GelfExporter } from './exporter.js';
import { TRUNCATION_MARKER } from './serializer.js';
import { exporterContext, gelfConfig, logRecord, spanRecord, tempDir } from './exporter.fixture.js';
import { HttpReceiver, TcpReceiver, TEST_CERT_FILE, UdpReceiver } from './receivers.fixture.js';
import type { TestContext } from 'node:test';

async function startExporter(t: TestContext, config: Record<string, unknown>) {
  const ctx = exporterContext(tempDir(t));
  const exporter = new GelfExporter(gelfConfig(config), ctx.context);
  await exporter.start();
  t.after(() => exporter.shutdown());
  return { exporter, ...ctx };
}

const records = (n: number, from = 1) => Array.from({ length: n }, (_, i) => (i % 3 === 2 ? logRecord(from + i) : spanRecord(from + i)));

test('TCP: a batch arrives complete, null-framed, in order, over one connection', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, { endpoint: `tcp://127.0.0.1:${receiver.port}` });
  for (let batch = 0; batch < 4; batch++) {
    const result = await exporter.export(records(500, batch * 500 + 1));
    assert.deepEqual(result, { kind: 'success' });
  }
  const got = await receiver.waitFor(2000);
  assert.deepEqual(got.map((m) => m._record_id), Array.from({ length: 2000 }, (_, i) => i + 1));
  assert.equal(receiver.connections, 1, 'one persistent connection');
  assert.deepEqual(receiver.invalid, []);
});

test('TCP: reconnects after the receiver drops the connection', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, { endpoint: `tcp://127.0.0.1:${receiver.port}` });
  assert.equal((await exporter.export(records(2))).kind, 'success');
  await receiver.waitFor(2);
  // Graylog restarts: every connection dropped, the port comes back.
  const port = receiver.port;
  await receiver.close();
  await receiver.listen({ port });
  // The exporter noticed the FIN; the next batch goes over a new connection.
  const result = await exporter.export(records(2, 3));
  assert.equal(result.kind, 'success');
  await receiver.waitFor(4);
  assert.equal(receiver.connections, 2);
});

test('TCP: a refused connection is a retryable failure that claims nothing', async (t) => {
  const receiver = await TcpReceiver.start();
  const port = receiver.port;
  await receiver.close();
  const { exporter } = await startExporter(t, { endpoint: `tcp://127.0.0.1:${port}`, retry_delay: '250ms' });
  const result = await exporter.export(records(3));
  assert.equal(result.kind, 'retryable');
  assert.equal(result.kind === 'retryable' && result.retryAfterMs, 250);
  assert.match(result.kind === 'retryable' ? result.error.message : '', /ECONNREFUSED/);
});

test('TLS: messages arrive over a verified TLS connection', async (t) => {
  const receiver = await TcpReceiver.start({ tls: true });
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, {
    endpoint: `tls://localhost:${receiver.port}`,
    tls: { ca_file: TEST_CERT_FILE },
  });
  assert.deepEqual(await exporter.export(records(10)), { kind: 'success' });
  const got = await receiver.waitFor(10);
  assert.equal(got[0]!.short_message, 'php_agent - shop');
});

test('TLS: an untrusted certificate is a failure, not a silent send', async (t) => {
  const receiver = await TcpReceiver.start({ tls: true });
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, { endpoint: `tls://localhost:${receiver.port}` });
  const result = await exporter.export(records(1));
  assert.equal(result.kind, 'retryable');
  assert.equal(receiver.messages.length, 0);
});

test('UDP: small messages whole, big ones chunked (1420 bytes) and gzip-compressed; our receiver and graygelf agree', async (t) => {
  const ours = await UdpReceiver.start();
  t.after(() => ours.close());
  const require = createRequire(import.meta.url);
  const GrayGelfServer = require('graygelf/server') as new () => {
    listen(port: number, address: string): { _udp: import('node:dgram').Socket };
    on(event: 'message', listener: (m: Record<string, unknown>) => void): void;
    close(): void;
  };
  const graygelf = new GrayGelfServer();
  const fromGraygelf: Record<string, unknown>[] = [];
  graygelf.on('message', (m) => fromGraygelf.push(m));
  const udp = graygelf.listen(0, '127.0.0.1')._udp;
  await once(udp, 'listening');
  t.after(() => graygelf.close());

  // Random text does not compress, so this message needs many chunks.
  const noise = Array.from({ length: 3000 }, () => Math.random().toString(36).slice(2)).join('');
  const batch = [spanRecord(1), spanRecord(2, { attributes: { 'db.query.text': noise.slice(0, 30_000) } } as Partial<StoredRecord>), logRecord(3)];
  for (const port of [ours.port, udp.address().port]) {
    const { exporter } = await startExporter(t, { endpoint: `udp://127.0.0.1:${port}` });
    assert.deepEqual(await exporter.export(batch), { kind: 'success' });
  }
  await ours.waitFor(3);
  assert.ok(ours.datagrams > 10, `the big message was chunked (${ours.datagrams} datagrams)`);
  const byId = (list: Record<string, unknown>[]) => list.map((m) => m._record_id).sort();
  assert.deepEqual(byId(ours.messages), [1, 2, 3]);
  await waitUntil(() => fromGraygelf.length === 3);
  assert.deepEqual(byId(fromGraygelf), [1, 2, 3]);
  assert.equal(fromGraygelf.find((m) => m._record_id === 2)!._db_query_text, noise.slice(0, 30_000));
});

test('UDP: zlib and no compression; a LAN chunk size', async (t) => {
  const receiver = await UdpReceiver.start();
  t.after(() => receiver.close());
  for (const compression of ['zlib', 'none'] as const) {
    const { exporter } = await startExporter(t, { endpoint: `udp://127.0.0.1:${receiver.port}`, compression, udp: { chunk_size: 8154 } });
    assert.equal((await exporter.export(records(5))).kind, 'success');
  }
  await receiver.waitFor(10);
  assert.deepEqual(receiver.invalid, []);
});

test('UDP: a message too large for 128 chunks is shrunk by cutting full_message, never dropped silently', async (t) => {
  const receiver = await UdpReceiver.start();
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, {
    endpoint: `udp://127.0.0.1:${receiver.port}`,
    compression: 'none',
    udp: { chunk_size: 512 },
    max_full_message_bytes: 1024 * 1024,
  });
  // 128 chunks of 500 bytes = 64000 bytes; full_message alone is over 100 kB here.
  const events = Array.from({ length: 400 }, (_, i) => ({ timeUnixNano: '1', name: `event ${i} ${'x'.repeat(200)}`, attributes: {} }));
  const result = await exporter.export([spanRecord(1, { events } as Partial<StoredRecord>)]);
  assert.deepEqual(result, { kind: 'success' });
  const [message] = await receiver.waitFor(1);
  assert.ok((message!.full_message as string).endsWith(TRUNCATION_MARKER));
  assert.equal(message!._record_id, 1);
});

test('HTTP: one POST /gelf per message on keep-alive, 2xx is success', async (t) => {
  const receiver = await HttpReceiver.start();
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, { endpoint: `http://127.0.0.1:${receiver.port}/gelf`, http: { max_in_flight: 1 } });
  assert.deepEqual(await exporter.export(records(20)), { kind: 'success' });
  assert.equal(receiver.requests, 20);
  assert.ok(receiver.paths.every((p) => p === '/gelf'));
  assert.deepEqual(receiver.messages.map((m) => m._record_id), Array.from({ length: 20 }, (_, i) => i + 1), 'in order with one in flight');
  assert.ok(receiver.headers.slice(1).every((h) => h.connection === 'keep-alive'));
});

test('HTTP: gzip bodies; HTTPS with a trusted CA; a non-2xx answer is a failure that claims nothing', async (t) => {
  const https = await HttpReceiver.start({ tls: true });
  t.after(() => https.close());
  const { exporter } = await startExporter(t, {
    endpoint: `https://localhost:${https.port}/gelf`,
    compression: 'gzip',
    tls: { ca_file: TEST_CERT_FILE },
  });
  assert.deepEqual(await exporter.export(records(8)), { kind: 'success' });
  assert.equal(https.messages.length, 8);
  assert.equal(https.headers[0]!['content-encoding'], 'gzip');

  https.status = 503;
  const result = await exporter.export(records(3, 100));
  assert.equal(result.kind, 'retryable');
  assert.match(result.kind === 'retryable' ? result.error.message : '', /503/);
});

test('HTTP bulk: newline-separated messages, one POST per body limit, 2xx acknowledges them all', async (t) => {
  const receiver = await HttpReceiver.start({ bulk: true });
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, {
    endpoint: `http://127.0.0.1:${receiver.port}/gelf`,
    http: { bulk: true, max_body_size: '8KiB', max_in_flight: 1 },
  });
  assert.deepEqual(await exporter.export(records(60)), { kind: 'success' });
  assert.deepEqual(receiver.messages.map((m) => m._record_id), Array.from({ length: 60 }, (_, i) => i + 1), 'all, in order');
  assert.deepEqual(receiver.invalid, []);
  assert.ok(receiver.requests > 1 && receiver.requests < 60, `${receiver.requests} requests for 60 messages`);
  assert.ok(receiver.bodySizes.every((n) => n <= 8 * 1024), `bodies within the limit: ${receiver.bodySizes.join(', ')}`);

  // A message larger than the body limit is cut to fit (full_message), not refused by Graylog.
  const events = Array.from({ length: 100 }, (_, i) => ({ timeUnixNano: '1', name: `event ${i} ${'x'.repeat(200)}`, attributes: {} }));
  assert.deepEqual(await exporter.export([spanRecord(61, { events } as Partial<StoredRecord>)]), { kind: 'success' });
  const big = receiver.messages.at(-1)!;
  assert.equal(big._record_id, 61);
  assert.ok((big.full_message as string).endsWith(TRUNCATION_MARKER));
  assert.ok(receiver.bodySizes.at(-1)! <= 8 * 1024);
});

test('HTTP bulk with gzip; a refused request fails the whole batch', async (t) => {
  const receiver = await HttpReceiver.start({ bulk: true });
  t.after(() => receiver.close());
  const { exporter, counters } = await startExporter(t, {
    endpoint: `http://127.0.0.1:${receiver.port}/gelf`,
    compression: 'gzip',
    http: { bulk: true },
  });
  assert.deepEqual(await exporter.export(records(200)), { kind: 'success' });
  assert.equal(receiver.messages.length, 200);
  assert.equal(receiver.headers[0]!['content-encoding'], 'gzip');
  assert.ok(receiver.requests < 20, `${receiver.requests} requests for 200 messages`);

  receiver.status = 503;
  const result = await exporter.export(records(10, 201));
  assert.equal(result.kind, 'retryable');
  assert.match(result.kind === 'retryable' ? result.error.message : '', /503/);
  assert.equal(counters.get('bitville_gelf_send_failures'), 1);
});

test('a record that cannot be serialized is reported rejected and logged; the rest are sent', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const { exporter, logs, counters } = await startExporter(t, { endpoint: `tcp://127.0.0.1:${receiver.port}` });
  const broken = { ...spanRecord(2), scope: undefined } as unknown as StoredRecord;
  const result = await exporter.export([spanRecord(1), broken, spanRecord(3)]);
  assert.equal(result.kind, 'success');
  assert.deepEqual(result.kind === 'success' && result.rejected?.map((r) => r.id), [2]);
  const got = await receiver.waitFor(2);
  assert.deepEqual(got.map((m) => m._record_id), [1, 3]);
  assert.ok(logs.some((l) => l.record_id === 2 && l.level === 40));
  assert.equal(counters.get('bitville_gelf_serialization_failures'), 1);
});

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('at start the exporter logs whether the endpoint answers, before any data', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const up = await startExporter(t, { endpoint: `tcp://127.0.0.1:${receiver.port}`, startup_check: true });
  const reachable = await new Promise<Record<string, unknown>>((resolve) => {
    const found = () => up.logs.find((l) => l.msg === 'GELF endpoint reachable');
    if (found()) return resolve(found()!);
    up.events.on('log', () => found() && resolve(found()!));
  });
  assert.equal(reachable.endpoint, `tcp://127.0.0.1:${receiver.port}`);

  // A port nothing listens on: the one the receiver had, once it is closed.
  const closed = await TcpReceiver.start();
  const port = closed.port;
  await closed.close();
  const down = await startExporter(t, { endpoint: `tcp://127.0.0.1:${port}`, startup_check: true });
  const unreachable = await new Promise<Record<string, unknown>>((resolve) => {
    const found = () => down.logs.find((l) => /GELF endpoint unreachable/.test(String(l.msg)));
    if (found()) return resolve(found()!);
    down.events.on('log', () => found() && resolve(found()!));
  });
  assert.match(String(unreachable.err), /ECONNREFUSED/);
});
