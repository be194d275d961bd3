// The faults of docs/faults.md that reach the OTLP receiver, against a real collector process:
// poison values refused per record, deep nesting, slow senders, overload.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { opentelemetry, google } from '../../proto/generated/otlp.js';
import { eventually, readStore, startCollector } from '../../test/collector.js';

const { ExportTraceServiceRequest, ExportTraceServiceResponse } = opentelemetry.proto.collector.trace.v1;
const { ExportLogsServiceRequest, ExportLogsServiceResponse } = opentelemetry.proto.collector.logs.v1;

const json = { 'content-type': 'application/json' };
const pb = { 'content-type': 'application/x-protobuf' };

async function post(url: string, body: Buffer | Uint8Array | string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', body, headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, bytes, text: bytes.toString() };
}

let nextSpan = 1;
function span(fields: Record<string, unknown> = {}) {
  const n = nextSpan++;
  return { traceId: 'ab'.repeat(16), spanId: n.toString(16).padStart(16, '0'), name: `s${n}`, startTimeUnixNano: '1764064800000000000', endTimeUnixNano: '1764064800100000000', ...fields };
}
const spans = (list: object[], resourceAttributes: object[] = []) => ({ resourceSpans: [{ resource: { attributes: resourceAttributes }, scopeSpans: [{ spans: list }] }] });

/** An attribute value nested `depth` levels deep (1 = a plain string), alternating arrays and kvlists. */
function nested(depth: number): object {
  let v: object = { stringValue: 'leaf' };
  for (let d = 1; d < depth; d++) v = d % 2 ? { arrayValue: { values: [v] } } : { kvlistValue: { values: [{ key: 'k', value: v }] } };
  return v;
}

for (const workers of [0, 1]) test(`values the store cannot hold are refused per record in partial_success; the rest is stored and answered 200 (decode_workers: ${workers})`, async (t) => {
  // correlate serves /api/requests, which must still read everything that was stored.
  const c = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { decode_workers: workers } } } }, processors: { correlate: {} }, service: { pipelines: { traces: { processors: ['correlate'] } } } } });
  const traces = `${c.otlpUrl}/v1/traces`;
  const body = spans([
    span({ name: 'good' }),
    span({ startTimeUnixNano: 1e20 }), // a JSON number past 2^64
    span({ endTimeUnixNano: '18446744073709551615' }), // 2^64-1: fits fixed64, not the store
    span({ startTimeUnixNano: '-1' }),
    span({ events: [{ timeUnixNano: 1e20, name: 'e' }] }),
    span({ events: [null] }),
    span({ name: 'nul\u0000in name', attributes: [{ key: 'bitville.correlation_id', value: { stringValue: 'req\u0000x' } }] }),
    span({ attributes: [{ key: 'deep', value: { stringValue: 'DEEP' } }] }), // replaced below by 10,000 levels
    span({ name: 'depth 32', attributes: [{ key: 'deep', value: nested(32) }] }),
    span({ attributes: [{ key: 'deep', value: nested(33) }] }),
    span({ attributes: [{ key: 'wide', value: { intValue: '99999999999999999999' } }] }),
    span({ spanId: 'abc' }),
    span({ attributes: [{ key: 'bitville.correlation_id', value: { stringValue: 'x'.repeat(300) } }] }),
    span({ name: 'odd values', attributes: [{ key: '__proto__', value: { stringValue: 'kept' } }, { key: 'nan', value: { doubleValue: 'NaN' } }, { key: 'lone', value: { stringValue: '\ud800' } }] }),
  ]);
  // Written as text: JSON.stringify itself runs out of stack on 10,000 levels.
  const deep = `${'{"arrayValue":{"values":['.repeat(10_000)}{"stringValue":"x"}${']}}'.repeat(10_000)}`;
  const res = await post(traces, JSON.stringify(body).replace('{"stringValue":"DEEP"}', deep), json);
  assert.equal(res.status, 200);
  const answer = JSON.parse(res.text);
  assert.equal(answer.partialSuccess.rejectedSpans, 10);
  assert.match(answer.partialSuccess.errorMessage, /startTimeUnixNano 100000000000000000000 is outside the 64-bit signed range the store can hold/);

  const rows = readStore(c.dbPath);
  assert.deepEqual(
    rows.map((r) => r.record.name),
    ['good', 'nul\uFFFDin name', 'depth 32', 'odd values'],
  );
  assert.equal(rows[1]!.correlation_id, 'req\uFFFDx', 'NUL in an indexed column is replaced, not stored');
  const odd = rows[3]!.record.attributes;
  assert.equal(Object.getOwnPropertyDescriptor(odd, '__proto__')?.value, 'kept');
  assert.equal(odd.nan, 'NaN');
  assert.equal(odd.lone, '\uFFFD');

  // Each reason on its own, as a sender would see it.
  const reasons: [object, RegExp][] = [
    [span({ endTimeUnixNano: '18446744073709551615' }), /endTimeUnixNano 18446744073709551615 is outside/],
    [span({ startTimeUnixNano: '-1' }), /startTimeUnixNano -1 is negative/],
    [span({ events: [null] }), /an entry of events is not an object/],
    [span({ attributes: 'not a list' }), /attributes must be an array/],
    [span({ attributes: [{ key: 'a', value: { arrayValue: { values: 7 } } }] }), /arrayValue.values must be an array/],
    [span({ attributes: [{ key: 'deep', value: nested(33) }] }), /nested deeper than 32 levels/],
    [span({ attributes: [{ key: 'bitville.correlation_id', value: { stringValue: 'x'.repeat(300) } }] }), /bitville.correlation_id is 300 characters long \(at most 256\)/],
  ];
  for (const [bad, reason] of reasons) {
    const one = await post(traces, JSON.stringify(spans([bad])), json);
    assert.equal(one.status, 200);
    assert.match(JSON.parse(one.text).partialSuccess.errorMessage, reason);
  }

  // A resource nested too deep fails the spans under it, and only those.
  const deepResource = {
    resourceSpans: [
      { resource: { attributes: [{ key: 'deep', value: nested(40) }] }, scopeSpans: [{ spans: [span(), span()] }] },
      { scopeSpans: [{ spans: [span({ name: 'beside' })] }] },
    ],
  };
  const partial = await post(traces, JSON.stringify(deepResource), json);
  assert.equal(partial.status, 200);
  assert.equal(JSON.parse(partial.text).partialSuccess.rejectedSpans, 2);
  assert.equal(readStore(c.dbPath).at(-1)!.record.name, 'beside');

  // Protobuf: fixed64 times of 2^63 and 2^64-1, beside good records.
  const two63 = { low: 0, high: 0x80000000 | 0, unsigned: true };
  const pbTraces = ExportTraceServiceRequest.encode({
    resourceSpans: [{ scopeSpans: [{ spans: [
      { traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 1), name: 'pb good', startTimeUnixNano: 1, endTimeUnixNano: 2 },
      { traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 'pb poison', startTimeUnixNano: two63 as never, endTimeUnixNano: two63 as never },
    ] }] }],
  }).finish();
  const pbRes = await post(traces, pbTraces, pb);
  assert.equal(pbRes.status, 200);
  const pbAnswer = ExportTraceServiceResponse.decode(pbRes.bytes).partialSuccess!;
  assert.equal(Number(pbAnswer.rejectedSpans), 1);
  assert.match(pbAnswer.errorMessage ?? "", /startTimeUnixNano 9223372036854775808 is outside/);

  const maxU64 = { low: -1, high: -1, unsigned: true };
  const pbLogs = ExportLogsServiceRequest.encode({
    resourceLogs: [{ scopeLogs: [{ logRecords: [
      { timeUnixNano: 5, body: { stringValue: 'log good' } },
      { timeUnixNano: maxU64 as never, body: { stringValue: 'log poison' } },
      { observedTimeUnixNano: maxU64 as never, body: { stringValue: 'log poison 2' } },
    ] }] }],
  }).finish();
  const logRes = await post(`${c.otlpUrl}/v1/logs`, pbLogs, pb);
  assert.equal(logRes.status, 200);
  assert.equal(Number(ExportLogsServiceResponse.decode(logRes.bytes).partialSuccess!.rejectedLogRecords), 2);

  const all = readStore(c.dbPath);
  assert.deepEqual(all.slice(-2).map((r) => r.record.name ?? r.record.body), ['pb good', 'log good']);
  // Nothing stored breaks a read.
  const api = await fetch(`${c.adminUrl}/api/requests?since=30d`);
  assert.equal(api.status, 200);
});

test('nesting the protobuf decoder cannot follow is a 400 with a reason, not a 500', async (t) => {
  const c = await startCollector(t);
  // Built by hand: the encoder itself refuses to write this.
  const field = (tag: number, body: Buffer) => {
    const len: number[] = [];
    for (let n = body.length; ; n >>>= 7) {
      if (n < 128) { len.push(n); break; }
      len.push((n & 127) | 128);
    }
    return Buffer.concat([Buffer.from([tag]), Buffer.from(len), body]);
  };
  let value = field(0x0a, Buffer.from('x'));
  for (let i = 0; i < 10_000; i++) value = field(0x2a, field(0x0a, value)); // AnyValue.arrayValue.values[0]
  const kv = Buffer.concat([field(0x0a, Buffer.from('deep')), field(0x12, value)]);
  const spanBytes = Buffer.concat([field(0x0a, Buffer.alloc(16, 1)), field(0x12, Buffer.alloc(8, 2)), field(0x4a, kv)]);
  const res = await post(`${c.otlpUrl}/v1/traces`, field(0x0a, field(0x12, field(0x12, spanBytes))), pb);
  assert.equal(res.status, 400);
  assert.match(google.rpc.Status.decode(res.bytes).message, /malformed protobuf traces request: nested too deep \(attribute values may nest at most 32 levels\)/);
  assert.equal(readStore(c.dbPath).length, 0);
});

/** A raw connection that sends the headers of a POST and then its body one byte per tick. */
function trickle(port: number, everyMs: number, headersOnly = false) {
  const socket: Socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d) => (received += d.toString()));
  socket.on('error', () => {});
  const closed = new Promise<{ text: string; afterMs: number }>((resolve) => {
    const started = Date.now();
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ text: received, afterMs: Date.now() - started });
    });
  });
  if (headersOnly) socket.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\n');
  else socket.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n');
  const timer = setInterval(() => socket.writable && socket.write(headersOnly ? 'X' : ' '), everyMs);
  return closed;
}

test('trickling senders take no slot: a normal sender beside them is served at once, and they get 408 after the read timeout', async (t) => {
  const c = await startCollector(t, {
    config: { receivers: { otlp: { protocols: { http: { max_concurrent_requests: 1, max_queued_requests: 0, read_header_timeout: '1s', read_timeout: '2s' } } } } },
  });
  const port = Number(new URL(c.otlpUrl).port);
  let closed = 0;
  const bodies = Array.from({ length: 16 }, () => trickle(port, 100).finally(() => closed++));
  const header = trickle(port, 100, true);
  await eventually(async () => (/bitville_receiver_in_flight_requests\{receiver="otlp"\} 16\b/.test(await (await fetch(`${c.adminUrl}/metrics`)).text()) ? true : undefined), 5000, '16 uploads in progress');

  const t0 = Date.now();
  const normal = await post(`${c.otlpUrl}/v1/traces`, JSON.stringify(spans([span({ name: 'normal' })])), json);
  assert.equal(normal.status, 200);
  t.diagnostic(`the normal sender was answered in ${Date.now() - t0} ms beside 16 tricklers`);
  assert.equal(closed, 0, 'served while all 16 tricklers were still connected, holding what would have been every slot');

  for (const result of await Promise.all(bodies)) {
    assert.match(result.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(result.text, /did not arrive within 2000 ms/);
    assert.ok(result.afterMs >= 1900 && result.afterMs < 6000, `closed after ${result.afterMs} ms`);
  }
  const headerResult = await header;
  assert.match(headerResult.text, /^HTTP\/1\.1 408/);
  assert.ok(headerResult.afterMs >= 900 && headerResult.afterMs < 5000, `header trickler closed after ${headerResult.afterMs} ms`);

  const metrics = await (await fetch(`${c.adminUrl}/metrics`)).text();
  assert.match(metrics, /bitville_receiver_request_timeouts\{receiver="otlp"\} 17\b/);
  assert.match(metrics, /bitville_receiver_receiving_bytes\{receiver="otlp"\} 0\b/, 'their bytes are released');
  assert.deepEqual(readStore(c.dbPath).map((r) => r.record.name), ['normal']);
});

test('overload says so: with 2 slots and 64 senders some get 503 + Retry-After, and every 200 is stored', async (t) => {
  const c = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { max_concurrent_requests: 2 } } } } } });
  const statuses = new Map<number, number>();
  let acknowledged = 0;
  let overloaded = false;
  const deadline = Date.now() + 15_000;
  const sender = async (s: number) => {
    for (let batch = 0; !overloaded && Date.now() < deadline; batch++) {
      const list = Array.from({ length: 50 }, (_, i) => span({ spanId: (s * 1_000_000 + batch * 100 + i + 1).toString(16).padStart(16, '0') }));
      const res = await post(`${c.otlpUrl}/v1/traces`, JSON.stringify(spans(list)), json);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) acknowledged += list.length;
      if (res.status === 503) {
        assert.equal(res.headers.get('retry-after'), '1');
        assert.match(JSON.parse(res.text).message, /2 requests are being processed and 2 wait; retry later/);
        overloaded = true;
      }
    }
  };
  await Promise.all(Array.from({ length: 64 }, (_, s) => sender(s)));
  assert.ok(overloaded, `no 503 within 15 s: ${JSON.stringify([...statuses])}`);
  assert.deepEqual([...statuses.keys()].sort(), [200, 503].filter((s) => statuses.has(s)));
  assert.equal(readStore(c.dbPath).length, acknowledged, 'every acknowledged span is stored, nothing refused is');
  assert.equal((await post(`${c.otlpUrl}/v1/traces`, JSON.stringify(spans([span()])), json)).status, 200, 'recovers once the load is gone');
});
