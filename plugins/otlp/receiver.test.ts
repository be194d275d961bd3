// The OTLP/HTTP receiver's answers to bad input, overload and auth, against a real collector
// process: the right status and reason, nothing stored, and the process still serving.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { gzipSync, deflateSync } from 'node:zlib';
import { opentelemetry, google } from '../../proto/generated/otlp.js';
import { eventually, readStore, startCollector } from '../../test/collector.js';

const { ExportTraceServiceRequest, ExportTraceServiceResponse } = opentelemetry.proto.collector.trace.v1;

function jsonSpans(...spans: Record<string, unknown>[]) {
  return { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'shop' } }] }, scopeSpans: [{ spans }] }] };
}
const goodSpan = (n = 1) => ({
  traceId: '5B8EFFF798038103D269B633813FC60C', // upper case is accepted
  spanId: `eee19b7ec3c1b17${n}`,
  name: `span ${n}`,
  kind: 2,
  startTimeUnixNano: 1764064800000000000, // 64-bit as a JSON number
  endTimeUnixNano: '1764064800500000000', // and as a string
  attributes: [{ key: 'big', value: { intValue: '9007199254740993' } }],
  someFutureField: { ignored: true }, // unknown fields are ignored
});

async function post(url: string, body: Buffer | string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', body, headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, bytes, text: bytes.toString() };
}

test('bad requests get 400/413/415 with a reason, nothing is stored, and the collector keeps serving', async (t) => {
  // Decoding on a worker thread here, so errors and records are known to cross the thread boundary.
  const c = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { max_request_body_size: '64KiB', decode_workers: 1 } } } } } });
  const traces = `${c.otlpUrl}/v1/traces`;
  const pb = { 'content-type': 'application/x-protobuf' };
  const json = { 'content-type': 'application/json' };

  const badProto = await post(traces, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), pb);
  assert.equal(badProto.status, 400);
  const status = google.rpc.Status.decode(badProto.bytes);
  assert.equal(status.code, 3);
  assert.match(status.message, /malformed protobuf traces request/);

  const badJson = await post(traces, '{"resourceSpans": [', json);
  assert.equal(badJson.status, 400);
  assert.match(JSON.parse(badJson.text).message, /malformed JSON traces request/);

  const wrongShape = await post(traces, JSON.stringify({ resourceSpans: { not: 'a list' } }), json);
  assert.equal(wrongShape.status, 400);
  assert.match(JSON.parse(wrongShape.text).message, /resourceSpans must be an array/);

  const wrongType = await post(traces, 'hello', { 'content-type': 'text/plain' });
  assert.equal(wrongType.status, 415);
  assert.match(JSON.parse(wrongType.text).message, /text\/plain.*not supported/);

  const brotli = await post(traces, JSON.stringify(jsonSpans(goodSpan())), { ...json, 'content-encoding': 'br' });
  assert.equal(brotli.status, 415);

  const oversized = await post(traces, Buffer.alloc(65 * 1024, 0x20), json);
  assert.equal(oversized.status, 413);
  assert.match(JSON.parse(oversized.text).message, /exceeds the limit of 65536 bytes/);

  // A gzip bomb: 40 KiB on the wire, 40 MiB inflated. Cut off at the limit.
  const bomb = gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x20));
  assert.ok(bomb.length < 64 * 1024);
  const bombed = await post(traces, bomb, { ...json, 'content-encoding': 'gzip' });
  assert.equal(bombed.status, 413);
  assert.match(JSON.parse(bombed.text).message, /decompressed body exceeds/);

  const wrongPath = await post(`${c.otlpUrl}/v1/metrics`, '{}', json);
  assert.equal(wrongPath.status, 404);

  assert.equal(readStore(c.dbPath).length, 0, 'nothing from a bad request is stored');

  // Still serving: compressed JSON and protobuf both land.
  const ok = await post(traces, deflateSync(JSON.stringify(jsonSpans(goodSpan(1)))), { ...json, 'content-encoding': 'deflate' });
  assert.equal(ok.status, 200);
  assert.deepEqual(JSON.parse(ok.text), {});
  const protoBody = ExportTraceServiceRequest.encode({
    resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'pb', startTimeUnixNano: 1, endTimeUnixNano: 2 }] }] }],
  }).finish();
  const okPb = await post(traces, gzipSync(protoBody), { ...pb, 'content-encoding': 'gzip' });
  assert.equal(okPb.status, 200);
  assert.equal(ExportTraceServiceResponse.decode(okPb.bytes).partialSuccess, null);

  const rows = readStore(c.dbPath);
  assert.deepEqual(rows.map((r) => r.record.name), ['span 1', 'pb']);
  assert.equal(rows[0]!.record.traceId, '5b8efff798038103d269b633813fc60c');
  assert.equal(rows[0]!.record.startTimeUnixNano, '1764064800000000000');
  assert.equal(rows[0]!.record.attributes.big, '9007199254740993', 'int64 past 2^53 kept exactly, as text');
  assert.equal(rows[1]!.record.traceId, '01'.repeat(16));
});

test('records with bad ids are rejected through partial_success, the rest is stored', async (t) => {
  const c = await startCollector(t);
  const res = await post(
    `${c.otlpUrl}/v1/traces`,
    JSON.stringify(jsonSpans(goodSpan(1), { ...goodSpan(2), traceId: 'xyz' }, { ...goodSpan(3), spanId: '' })),
    { 'content-type': 'application/json' },
  );
  assert.equal(res.status, 200);
  const body = JSON.parse(res.text);
  assert.equal(body.partialSuccess.rejectedSpans, 2);
  assert.match(body.partialSuccess.errorMessage, /traceId "xyz" is not 32 hex digits/);
  assert.deepEqual(readStore(c.dbPath).map((r) => r.record.name), ['span 1']);
});

test('with a bearer token configured, requests without it get 401 and store nothing', async (t) => {
  const c = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { auth: { bearer_token: 's3cret' } } } } } } });
  const body = JSON.stringify(jsonSpans(goodSpan()));
  const none = await post(`${c.otlpUrl}/v1/traces`, body, { 'content-type': 'application/json' });
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');
  const wrong = await post(`${c.otlpUrl}/v1/traces`, body, { 'content-type': 'application/json', authorization: 'Bearer s3creT' });
  assert.equal(wrong.status, 401);
  assert.equal(readStore(c.dbPath).length, 0);
  const right = await post(`${c.otlpUrl}/v1/traces`, body, { 'content-type': 'application/json', authorization: 'Bearer s3cret' });
  assert.equal(right.status, 200);
  assert.equal(readStore(c.dbPath).length, 1);
});

test('past the bytes bound for bodies being received the receiver answers 503 with Retry-After, then recovers', async (t) => {
  const c = await startCollector(t, {
    config: { receivers: { otlp: { protocols: { http: { max_concurrent_requests: 1, max_receiving_bytes: 1000, retry_after: '2s' } } } } },
  });
  const body = Buffer.from(JSON.stringify(jsonSpans(goodSpan())).padEnd(600, ' '));
  // Hold one upload open mid-body: it holds 500 bytes of the 1000, but no processing slot.
  const held = request(`${c.otlpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } });
  const heldResponse = new Promise<number>((resolve, reject) => {
    held.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    held.on('error', reject);
  });
  held.write(body.subarray(0, 500));
  const metric = async (re: RegExp) => (re.test(await (await fetch(`${c.adminUrl}/metrics`)).text()) ? true : undefined);
  await eventually(() => metric(/bitville_receiver_receiving_bytes\{receiver="otlp"\} 500\b/), 5000, '500 bytes being received');

  const small = Buffer.from(JSON.stringify(jsonSpans(goodSpan(2))));
  assert.equal((await post(`${c.otlpUrl}/v1/traces`, small, { 'content-type': 'application/json' })).status, 200, 'a body that fits is served beside it');
  const refused = await post(`${c.otlpUrl}/v1/traces`, body, { 'content-type': 'application/json' });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '2');
  assert.match(JSON.parse(refused.text).message, /request bodies being received hold \d+ bytes, the most this receiver buffers at once; retry later/);

  held.end(body.subarray(500));
  assert.equal(await heldResponse, 200);
  const after = await post(`${c.otlpUrl}/v1/traces`, body, { 'content-type': 'application/json' });
  assert.equal(after.status, 200);
  assert.equal(readStore(c.dbPath).length, 3);
});

test('with TLS configured the receiver serves HTTPS', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const https = await import('node:https');
  const { tempDir } = await import('../../test/env.js');
  const dir = tempDir(t);
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  } catch {
    t.skip('openssl is not installed (apt-get install openssl) to make a test certificate');
    return;
  }
  const c = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { tls: { cert_file: cert, key_file: key } } } } } } });
  await c.waitForLog((l) => l.msg === 'OTLP/HTTP receiver listening' && String(l.url).startsWith('https://'));
  const body = JSON.stringify(jsonSpans(goodSpan()));
  const status = await new Promise<number>((resolve, reject) => {
    const req = https.request(
      `${c.otlpUrl.replace('http:', 'https:')}/v1/traces`,
      { method: 'POST', ca: readFileSync(cert), servername: 'localhost', checkServerIdentity: () => undefined, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(status, 200);
  assert.equal(readStore(c.dbPath).length, 1);
  await assert.rejects(fetch(`${c.otlpUrl}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }), 'plain HTTP is not served');
});
