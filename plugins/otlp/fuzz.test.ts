// Property-based fuzzing of both OTLP decoders (protobuf and JSON) through the real HTTP
// endpoint of a real collector: whatever arrives, the answer is 200, 400 or 413, never a 5xx,
// and what gets stored is well formed (checked in the SQLite store and through a read).
// Bounded in time; a failure prints fast-check's seed and path to replay it.
import Database from 'better-sqlite3';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { opentelemetry } from '../../proto/generated/otlp.js';
import { startCollector } from '../../test/collector.js';

const { ExportTraceServiceRequest, ExportTraceServiceResponse } = opentelemetry.proto.collector.trace.v1;
const { ExportLogsServiceRequest, ExportLogsServiceResponse } = opentelemetry.proto.collector.logs.v1;

const TIME_LIMIT_MS = 12_000;
const MAX_DEPTH = 32;

// ---- values: mostly plausible, with the poison of docs/faults.md mixed in ----
const nasty = fc.constantFrom('', 'a\u0000b', '\ud800', 'x\udfffy', '\u0000', 'é', '__proto__', 'constructor', 'x'.repeat(300));
const text = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 8 }), nasty);
const int64Text = fc.oneof(
  fc.constantFrom('0', '1', '-1', '9223372036854775807', '9223372036854775808', '18446744073709551615', '99999999999999999999999', '1e20', '0x10', ' 1', ''),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
);
const int64Json = fc.oneof(int64Text, fc.constantFrom(1e20, -5, 1.5, 0, 2 ** 53, 1764064800000000000), fc.constant(null), fc.constant({}), fc.boolean());
const hexChars = fc.constantFrom(...'0123456789abcdefABCDEF');
const hexId = (bytes: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: hexChars, minLength: bytes * 2, maxLength: bytes * 2 }) },
    fc.string({ unit: hexChars, maxLength: bytes * 2 + 2 }),
    fc.constant('0'.repeat(bytes * 2)),
    text,
    fc.constant(null),
    fc.integer(),
  );
const garbage = fc.oneof(fc.constant(null), fc.integer(), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant([]), fc.constant({}), fc.constant([null]));

/** An AnyValue in OTLP/JSON, nested up to `depth` levels (past MAX_DEPTH now and then). */
function anyValueJson(depth: number): fc.Arbitrary<unknown> {
  const leaves = [
    fc.record({ stringValue: text }),
    fc.record({ intValue: int64Json }),
    fc.record({ doubleValue: fc.oneof(fc.double(), fc.constantFrom('NaN', 'Infinity', '-Infinity', 'x')) }),
    fc.record({ boolValue: fc.oneof(fc.boolean(), garbage) }),
    fc.record({ bytesValue: fc.oneof(fc.base64String({ maxLength: 12 }), garbage) }),
    garbage,
  ];
  if (depth <= 1) return fc.oneof(...leaves);
  const inner = anyValueJson(depth - 1);
  return fc.oneof(
    ...leaves,
    fc.record({ arrayValue: fc.oneof(fc.record({ values: fc.array(inner, { maxLength: 2 }) }), garbage) }),
    fc.record({ kvlistValue: fc.record({ values: fc.array(fc.record({ key: text, value: inner }), { maxLength: 2 }) }) }),
  );
}
/** A chain of exactly `depth` levels, to probe both sides of the cap. */
const chain = fc.integer({ min: 1, max: 45 }).map((depth) => {
  let v: unknown = { stringValue: 'leaf' };
  for (let d = 1; d < depth; d++) v = d % 2 ? { arrayValue: { values: [v] } } : { kvlistValue: { values: [{ key: 'k', value: v }] } };
  return v;
});
const value = fc.oneof({ weight: 3, arbitrary: anyValueJson(4) }, chain);
const attributesJson = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.oneof({ weight: 5, arbitrary: fc.record({ key: fc.oneof(text, fc.constant('bitville.correlation_id')), value }) }, garbage), { maxLength: 3 }) },
  garbage,
);
const optional = { requiredKeys: [] as never[] };

const spanJson = fc.record(
  {
    traceId: hexId(16),
    spanId: hexId(8),
    parentSpanId: hexId(8),
    name: text,
    kind: fc.oneof(fc.integer({ min: -1, max: 7 }), fc.constantFrom('SPAN_KIND_SERVER', 'nope'), garbage),
    startTimeUnixNano: int64Json,
    endTimeUnixNano: int64Json,
    attributes: attributesJson,
    events: fc.oneof(fc.array(fc.oneof(fc.record({ timeUnixNano: int64Json, name: text, attributes: attributesJson }, optional), garbage), { maxLength: 2 }), garbage),
    links: fc.oneof(fc.array(fc.oneof(fc.record({ traceId: hexId(16), spanId: hexId(8), attributes: attributesJson }, optional), garbage), { maxLength: 2 }), garbage),
    status: fc.oneof(fc.record({ code: fc.oneof(fc.integer({ min: -1, max: 3 }), garbage), message: text }, optional), garbage),
    flags: fc.oneof(fc.integer(), fc.double(), garbage),
  },
  optional,
);
const logJson = fc.record(
  {
    timeUnixNano: int64Json,
    observedTimeUnixNano: int64Json,
    traceId: hexId(16),
    spanId: hexId(8),
    severityNumber: fc.oneof(fc.integer({ min: -1, max: 30 }), garbage),
    severityText: text,
    body: value,
    attributes: attributesJson,
    eventName: text,
    flags: fc.oneof(fc.integer(), garbage),
  },
  optional,
);
const listOf = <T>(item: fc.Arbitrary<T>, max: number) => fc.oneof({ weight: 9, arbitrary: fc.array(item, { maxLength: max }) }, garbage);
const tracesJson = fc.record(
  {
    resourceSpans: listOf(
      fc.oneof(fc.record({ resource: fc.oneof(fc.record({ attributes: attributesJson }, optional), garbage), scopeSpans: listOf(fc.oneof(fc.record({ scope: fc.oneof(fc.record({ name: text, attributes: attributesJson }, optional), garbage), spans: listOf(fc.oneof({ weight: 5, arbitrary: spanJson }, garbage), 4) }, optional), garbage), 2) }, optional), garbage),
      2,
    ),
  },
  optional,
);
const logsJson = fc.record(
  {
    resourceLogs: listOf(
      fc.oneof(fc.record({ resource: fc.oneof(fc.record({ attributes: attributesJson }, optional), garbage), scopeLogs: listOf(fc.oneof(fc.record({ logRecords: listOf(fc.oneof({ weight: 5, arbitrary: logJson }, garbage), 4) }, optional), garbage), 2) }, optional), garbage),
      2,
    ),
  },
  optional,
);

// ---- protobuf: messages protobufjs can encode, with the same poison, then maybe mangled ----
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 1764064800000000000n));
const long = u64.map((n) => ({ low: Number(n & 0xffffffffn) | 0, high: Number(n >> 32n) | 0, unsigned: true }));
const idBytes = (bytes: number) => fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ minLength: bytes, maxLength: bytes }) }, fc.uint8Array({ maxLength: bytes + 2 }));
function anyValuePb(depth: number): fc.Arbitrary<object> {
  const leaves = [
    fc.record({ stringValue: text }),
    fc.record({ intValue: u64.map((n) => ({ low: Number(n & 0xffffffffn) | 0, high: Number(n >> 32n) | 0, unsigned: false })) }),
    fc.record({ doubleValue: fc.double() }),
    fc.record({ boolValue: fc.boolean() }),
    fc.record({ bytesValue: fc.uint8Array({ maxLength: 8 }) }),
  ];
  if (depth <= 1) return fc.oneof(...leaves);
  const inner = anyValuePb(depth - 1);
  return fc.oneof(...leaves, fc.record({ arrayValue: fc.record({ values: fc.array(inner, { maxLength: 2 }) }) }), fc.record({ kvlistValue: fc.record({ values: fc.array(fc.record({ key: text, value: inner }), { maxLength: 2 }) }) }));
}
const pbChain = fc.integer({ min: 1, max: 40 }).map((depth) => {
  let v: object = { stringValue: 'leaf' };
  for (let d = 1; d < depth; d++) v = { arrayValue: { values: [v] } };
  return v;
});
const attributesPb = fc.array(fc.record({ key: fc.oneof(text, fc.constant('bitville.correlation_id')), value: fc.oneof(anyValuePb(3), pbChain) }), { maxLength: 3 });
const spanPb = fc.record(
  {
    traceId: idBytes(16),
    spanId: idBytes(8),
    name: text,
    kind: fc.integer({ min: -1, max: 9 }),
    startTimeUnixNano: long,
    endTimeUnixNano: long,
    attributes: attributesPb,
    events: fc.array(fc.record({ timeUnixNano: long, name: text }, optional), { maxLength: 2 }),
  },
  optional,
);
const logPb = fc.record({ timeUnixNano: long, observedTimeUnixNano: long, traceId: idBytes(16), body: fc.oneof(anyValuePb(3), pbChain), severityText: text }, optional);
const tracesPb = fc.array(spanPb, { maxLength: 4 }).map((spans) => ExportTraceServiceRequest.encode({ resourceSpans: [{ scopeSpans: [{ spans: spans as never }] }] }).finish());
const logsPb = fc.array(logPb, { maxLength: 4 }).map((logRecords) => ExportLogsServiceRequest.encode({ resourceLogs: [{ scopeLogs: [{ logRecords: logRecords as never }] }] }).finish());

/** Bytes mangled: truncated, a byte flipped, bytes inserted. */
const mangle = (bytes: fc.Arbitrary<Uint8Array>) =>
  fc.tuple(bytes, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('keep', 'cut', 'flip', 'insert')).map(([b, at, byte, how]) => {
    const buf = Buffer.from(b);
    const i = buf.length ? at % buf.length : 0;
    if (how === 'cut') return buf.subarray(0, i);
    if (how === 'flip' && buf.length) buf[i] = byte;
    if (how === 'insert') return Buffer.concat([buf.subarray(0, i), Buffer.from([byte]), buf.subarray(i)]);
    return buf;
  });

interface Case {
  signal: 'traces' | 'logs';
  protobuf: boolean;
  body: Buffer;
  encoding: 'identity' | 'gzip' | 'lying-gzip';
}
const encoding = fc.constantFrom<Case['encoding']>('identity', 'identity', 'identity', 'gzip', 'lying-gzip');
const cases: fc.Arbitrary<Case> = fc.oneof(
  fc.record({ signal: fc.constant('traces' as const), protobuf: fc.constant(false), body: fc.oneof({ weight: 4, arbitrary: tracesJson.map((o) => Buffer.from(JSON.stringify(o))) }, mangle(tracesJson.map((o) => Buffer.from(JSON.stringify(o))))), encoding }),
  fc.record({ signal: fc.constant('logs' as const), protobuf: fc.constant(false), body: fc.oneof({ weight: 4, arbitrary: logsJson.map((o) => Buffer.from(JSON.stringify(o))) }, mangle(logsJson.map((o) => Buffer.from(JSON.stringify(o))))), encoding }),
  fc.record({ signal: fc.constant('traces' as const), protobuf: fc.constant(true), body: fc.oneof(tracesPb.map((b) => Buffer.from(b)), mangle(tracesPb)), encoding }),
  fc.record({ signal: fc.constant('logs' as const), protobuf: fc.constant(true), body: fc.oneof(logsPb.map((b) => Buffer.from(b)), mangle(logsPb)), encoding }),
  fc.record({ signal: fc.constantFrom('traces' as const, 'logs' as const), protobuf: fc.boolean(), body: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), encoding }),
);

// ---- what a stored record must look like ----
function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v !== null && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}
function assertClean(v: unknown, where: string): void {
  if (typeof v === 'string') {
    assert.ok(!v.includes('\u0000'), `${where}: NUL stored`);
    assert.ok((v as string & { isWellFormed(): boolean }).isWellFormed(), `${where}: unpaired surrogate stored`);
  } else if (Array.isArray(v)) v.forEach((x, i) => assertClean(x, `${where}[${i}]`));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) assertClean(k, where), assertClean(x, `${where}.${k}`);
  else if (typeof v === 'number') assert.ok(Number.isFinite(v), `${where}: non-finite number`);
}
function assertStorable(row: { kind: string; time_unix_nano: bigint; correlation_id: string | null; body: string }): void {
  const r = JSON.parse(row.body);
  assertClean(r, 'record');
  assert.match(r.traceId, row.kind === 'span' ? /^[0-9a-f]{32}$/ : /^([0-9a-f]{32})?$/);
  assert.match(r.spanId, row.kind === 'span' ? /^[0-9a-f]{16}$/ : /^([0-9a-f]{16})?$/);
  assert.ok(row.time_unix_nano >= 0n && row.time_unix_nano < 2n ** 63n);
  const times =
    row.kind === 'span' ? [r.startTimeUnixNano, r.endTimeUnixNano, ...r.events.map((e: { timeUnixNano: string }) => e.timeUnixNano)]
    : row.kind === 'log' ? [r.timeUnixNano, r.observedTimeUnixNano]
    : [r.timeUnixNano]; // a summary correlate made of stored spans
  for (const t of times) {
    assert.match(t, /^\d+$/);
    assert.ok(BigInt(t) < 2n ** 63n);
  }
  assert.ok((row.correlation_id ?? '').length <= 256);
  // attributes -> value: the value's own nesting is its depth minus the map around it.
  for (const attrs of [r.attributes, r.resource, r.scope.attributes]) assert.ok(depthOf(attrs) - 1 <= MAX_DEPTH, 'attribute nested past the cap');
}

test('fuzzed OTLP requests, protobuf and JSON, get 200, 400 or 413, never a 5xx, and store nothing malformed', async (t) => {
  // correlate serves /api/requests, which must still read everything that was stored; a short
  // window makes it summarize fuzzed requests during the run, so its summaries are checked too.
  const c = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { max_request_body_size: '64KiB' } } } }, processors: { correlate: { window: '1s' } }, service: { pipelines: { traces: { processors: ['correlate'] } } } } });
  const db = new Database(c.dbPath, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  t.after(() => db.close());
  // Summaries that correlate makes on its own timer are not the request's records.
  const count = db.prepare("SELECT count(*) AS n FROM records WHERE kind <> 'summary'").pluck();
  const statuses = new Map<number, number>();
  let runs = 0;

  await fc.assert(
    fc.asyncProperty(cases, async ({ signal, protobuf, body, encoding }) => {
      runs++;
      const before = count.get() as bigint;
      const headers: Record<string, string> = { 'content-type': protobuf ? 'application/x-protobuf' : 'application/json' };
      if (encoding !== 'identity') headers['content-encoding'] = 'gzip';
      const sent = encoding === 'gzip' ? gzipSync(body) : body;
      const res = await fetch(`${c.otlpUrl}/v1/${signal}`, { method: 'POST', body: sent, headers });
      const answer = Buffer.from(await res.arrayBuffer());
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok([200, 400, 413].includes(res.status), `answered ${res.status}: ${answer.toString().slice(0, 200)}`);
      const stored = Number((count.get() as bigint) - before);
      if (res.status !== 200) {
        assert.equal(stored, 0, 'a refused request stored records');
        return;
      }
      // A 200 answers in the request's encoding, with partial_success when records were refused.
      if (protobuf) (signal === 'traces' ? ExportTraceServiceResponse : ExportLogsServiceResponse).decode(answer);
      else JSON.parse(answer.toString());
    }),
    { numRuns: 1_000_000, interruptAfterTimeLimit: TIME_LIMIT_MS },
  );

  // correlate may still commit a summary while this reads: both queries look at the same rows.
  const lastId = db.prepare('SELECT max(id) FROM records').pluck().get() as bigint;
  const rows = db.prepare('SELECT kind, time_unix_nano, correlation_id, body FROM records WHERE id <= ?').all(lastId) as Parameters<typeof assertStorable>[0][];
  for (const row of rows) assertStorable(row);
  // Everything stored reads back through SQLite's JSON functions and the API.
  assert.equal(db.prepare("SELECT count(*) FROM records WHERE id <= ? AND json_valid(body) AND json_type(body, '$.attributes') = 'object'").pluck().get(lastId), BigInt(rows.length));
  assert.equal((await fetch(`${c.adminUrl}/api/requests?since=30d`)).status, 200);
  t.diagnostic(`${runs} requests, answers ${JSON.stringify(Object.fromEntries(statuses))}, ${rows.length} records stored`);
  assert.ok(runs >= 200, `only ${runs} requests in ${TIME_LIMIT_MS} ms`);
  assert.ok(statuses.get(200)! > 0 && statuses.get(400)! > 0, 'the inputs reach both the accepting and the refusing paths');
});
