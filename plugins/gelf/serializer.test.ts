import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fieldName, fieldValue, fitTo, serialize, toGelf, truncate, validate, TRUNCATION_MARKER, type GelfMessage } from './serializer.js';
import { logRecord, spanRecord } from './exporter.fixture.js';
import { STORED_JSON, type StoredRecord } from '../../collector/core/api.js';

const options = { defaultHost: 'collector-host', maxFieldBytes: 32_000, maxFullMessageBytes: 256 * 1024 };

test('a PHP request span maps to the documented GELF message', () => {
  const record = spanRecord(1);
  const gelf = toGelf(record, options);
  assert.deepEqual(gelf, {
    version: '1.1',
    host: 'web-1',
    short_message: 'php_agent - shop',
    full_message: JSON.stringify(record),
    timestamp: 1714564800.124,
    level: 6,
    _service_name: 'shop',
    _host_name: 'web-1',
    _source: 'php_agent',
    _correlation_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    _http_request_method: 'GET',
    _url_full: 'https://shop.example/cart?id=7',
    _http_response_status_code: 200,
    _kind: 'span',
    _record_id: 1,
    _trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    _span_id: '00f067aa0ba902b7',
    _scope_name: 'bitville.php',
    _scope_version: '1.0.0',
    _name: 'GET /cart',
    _span_kind: 'SERVER',
    _span_status: 'UNSET',
    _url: 'https://shop.example/cart?id=7',
    _method: 'GET',
    _status_code: 200,
    _project: 'shop',
    _duration_ms: 612.5,
    _timestamp: '2024-05-01T12:00:00.124456789Z',
  });
  assert.equal(validate(gelf), undefined);
  assert.deepEqual(JSON.parse(gelf.full_message!), JSON.parse(JSON.stringify(record)), 'full_message is the complete record');
});

test('full_message built from the stored JSON text is the record as JSON, id and arrival time included', () => {
  const record = spanRecord(7);
  const { id: _id, receivedAtMs: _at, ...asStored } = record;
  const handedOut: StoredRecord = { ...record, [STORED_JSON]: JSON.stringify(asStored) };
  const parsed = JSON.parse((serialize(handedOut, options) as { json: string }).json);
  // As a store read gives it: the stored fields, then id and receivedAtMs.
  assert.equal(parsed.full_message, JSON.stringify({ ...asStored, id: record.id, receivedAtMs: record.receivedAtMs }));
  assert.deepEqual(JSON.parse(parsed.full_message), record);
});

test('an error span is level 3; older HTTP semconv names feed _url, _method and _status_code', () => {
  const gelf = toGelf(
    spanRecord(2, {
      status: { code: 2, message: 'boom' },
      attributes: { 'http.method': 'POST', 'http.url': 'http://old.example/x', 'http.status_code': 500 },
    } as Partial<StoredRecord>),
    options,
  );
  assert.equal(gelf.level, 3);
  assert.equal(gelf._url, 'http://old.example/x');
  assert.equal(gelf._method, 'POST');
  assert.equal(gelf._status_code, 500);
  assert.equal(gelf._span_status, 'ERROR');
  assert.equal(gelf._span_status_message, 'boom');
});

test('url.path and url.query make _url when url.full is absent', () => {
  const gelf = toGelf(spanRecord(3, { attributes: { 'url.path': '/cart', 'url.query': 'id=7' } } as Partial<StoredRecord>), options);
  assert.equal(gelf._url, '/cart?id=7');
  assert.equal('_method' in gelf, false, 'no _method without an HTTP method attribute');
});

test('log records: severity to syslog level, body, collector hostname when host.name is missing', () => {
  const levels: [number, number][] = [[0, 6], [1, 7], [5, 7], [9, 6], [13, 4], [17, 3], [21, 2]];
  for (const [severityNumber, level] of levels) {
    const gelf = toGelf(logRecord(1, { severityNumber } as Partial<StoredRecord>), options);
    assert.equal(gelf.level, level, `severity ${severityNumber}`);
  }
  const gelf = toGelf(logRecord(4, { body: { query: 'SELECT 1', ms: 3 } } as Partial<StoredRecord>), options);
  assert.equal(gelf.host, 'collector-host');
  assert.equal(gelf.short_message, 'pg_agent - shop');
  assert.equal(gelf._body, '{"query":"SELECT 1","ms":3}');
  assert.equal(gelf._severity_text, 'WARN');
  assert.equal('_duration_ms' in gelf, false, 'logs have no duration');
  assert.equal('_correlation_id' in gelf, false, 'no empty correlation id');
});

test('summary records: bitville.* attributes lose their prefix (_db_time_ms, _db_query_count, _n_plus_one)', () => {
  const summary = {
    id: 9,
    receivedAtMs: 1_714_564_801_000,
    kind: 'summary',
    resource: { 'service.name': 'shop' },
    scope: { name: 'bitville.correlate', version: '', attributes: {} },
    attributes: {
      'bitville.db_time_ms': 412.25,
      'bitville.db_query_count': 37,
      'bitville.n_plus_one': true,
      'bitville.slowest_queries': ['SELECT 1', 'SELECT 2'],
      'http.request.method': 'GET',
    },
    traceId: 'ab'.repeat(16),
    spanId: '',
    correlationId: 'ab'.repeat(16),
    name: 'request summary',
    timeUnixNano: '1714564800000000000',
    durationMs: 700,
  } as StoredRecord;
  const gelf = toGelf(summary, options);
  assert.equal(gelf._db_time_ms, 412.25);
  assert.equal(gelf._db_query_count, 37);
  assert.equal(gelf._n_plus_one, 'true');
  assert.equal(gelf._slowest_queries, '["SELECT 1","SELECT 2"]');
  assert.equal(gelf._kind, 'summary');
  assert.equal(gelf.short_message, 'otlp - shop');
  assert.equal(gelf._duration_ms, 700);
  assert.equal(validate(gelf), undefined);
});

test('field names are made valid for Graylog', () => {
  assert.equal(fieldName('http.request.method'), '_http_request_method');
  assert.equal(fieldName('bitville.db_time_ms'), '_db_time_ms');
  assert.equal(fieldName('id'), '_attr_id', '_id is reserved');
  assert.equal(fieldName('bitville.id'), '_attr_id');
  assert.equal(fieldName(''), '_attr_');
  assert.equal(fieldName('weird key/ä€!'), '_weird_key____');
  assert.equal(fieldName('a-b_C9'), '_a-b_C9');
});

test('values: strings and numbers kept, booleans as text, arrays and maps as JSON, null omitted', () => {
  assert.equal(fieldValue('x'), 'x');
  assert.equal(fieldValue(1.5), 1.5);
  assert.equal(fieldValue(Number.NaN), 'NaN');
  assert.equal(fieldValue(false), 'false');
  assert.equal(fieldValue([1, 'a']), '[1,"a"]');
  assert.equal(fieldValue({ k: true }), '{"k":true}');
  assert.equal(fieldValue(null), undefined);
  const gelf = toGelf(spanRecord(1, { attributes: { gone: null, id: 'x' } } as Partial<StoredRecord>), options);
  assert.equal('_gone' in gelf, false);
  assert.equal(gelf._attr_id, 'x');
});

test('over-long values are cut at the byte limit on a character boundary, with a marker', () => {
  const long = 'é'.repeat(100); // 200 bytes
  const cut = truncate(long, 50);
  assert.ok(Buffer.byteLength(cut) <= 50);
  assert.ok(cut.endsWith(TRUNCATION_MARKER));
  assert.ok(!cut.includes('\ufffd'), 'no split character');
  assert.equal(truncate('short', 50), 'short');
  const gelf = toGelf(spanRecord(1, { attributes: { 'db.query.text': 'x'.repeat(5000) } } as Partial<StoredRecord>), {
    ...options,
    maxFieldBytes: 100,
    maxFullMessageBytes: 300,
  });
  assert.equal(Buffer.byteLength(gelf._db_query_text as string), 100);
  assert.ok((gelf._db_query_text as string).endsWith(TRUNCATION_MARKER));
  assert.ok(Buffer.byteLength(gelf.full_message!) <= 300);
});

test('attribute collisions: record beats scope beats resource; fixed fields beat attributes', () => {
  const gelf = toGelf(
    spanRecord(1, {
      resource: { 'service.name': 'shop', color: 'resource', project: 'evil' },
      scope: { name: 's', version: '', attributes: { color: 'scope' } },
      attributes: { color: 'record' },
    } as Partial<StoredRecord>),
    options,
  );
  assert.equal(gelf._color, 'record');
  assert.equal(gelf._project, 'shop');
});

test('validation refuses what Graylog would drop; serialize never throws', () => {
  const good = toGelf(spanRecord(1), options);
  assert.match(validate({ ...good, short_message: ' ' }) ?? '', /short_message/);
  assert.match(validate({ ...good, '_bad key': 'x' } as GelfMessage) ?? '', /not valid/);
  assert.match(validate({ ...good, _id: 'x' } as GelfMessage) ?? '', /not valid/);
  assert.match(validate({ ...good, _flag: true } as unknown as GelfMessage) ?? '', /neither a string nor/);
  assert.match(validate({ ...good, level: 9 }) ?? '', /level/);
  const broken = { ...spanRecord(5), resource: undefined } as unknown as StoredRecord;
  const result = serialize(broken, options);
  assert.ok('error' in result && result.id === 5, 'a malformed record yields an error, not an exception');
  const ok = serialize(spanRecord(6), options);
  assert.ok('json' in ok && JSON.parse(ok.json).short_message === 'php_agent - shop');
});

test('fitTo cuts full_message until the JSON fits a transport limit, escapes and multi-byte text included', () => {
  const options = { defaultHost: 'collector-1', maxFieldBytes: 32_000, maxFullMessageBytes: 1024 * 1024 };
  // Quotes and newlines double in JSON; "é" is two UTF-8 bytes: the cut must account for both.
  const text = 'é"\n'.repeat(20_000);
  const message = toGelf(spanRecord(1, { attributes: { note: 'x' } } as Partial<StoredRecord>), options);
  message.full_message = text;
  for (const limit of [64 * 1024, 10_000, 2_000]) {
    const json = fitTo(message, limit)!;
    assert.ok(Buffer.byteLength(json) <= limit, `${Buffer.byteLength(json)} <= ${limit}`);
    const back = JSON.parse(json) as GelfMessage;
    assert.ok(back.full_message!.endsWith(TRUNCATION_MARKER));
    assert.equal(back._record_id, 1, 'every other field kept');
  }
  const small = toGelf(spanRecord(2), options);
  assert.equal(fitTo(small, 1_000_000), JSON.stringify(small), 'a message that fits is left alone');
  assert.equal(fitTo(small, 200), undefined, 'too large even with full_message at 64 bytes');
});

test('serialize writes the same JSON as the mapped message, escapes, multi-byte text and cuts included', () => {
  const small = { defaultHost: 'collector-host', maxFieldBytes: 64, maxFullMessageBytes: 400 };
  const records = [
    spanRecord(1),
    spanRecord(2, {
      resource: { 'host.name': 'wéb-"1"\n', 'service.name': 'shop', flag: true, list: [1, 'a'], ratio: Number.NaN },
      attributes: { 'db.query.text': 'SELECT "x"\t\u0000'.repeat(20), 'http.status_code': '404', id: 'mine', 'a.b': -0 },
      status: { code: 2, message: 'boom' },
    } as Partial<StoredRecord>),
    logRecord(3, { body: { query: 'SELECT 1', ms: 3 }, severityNumber: 17 } as Partial<StoredRecord>),
  ];
  for (const record of records) {
    for (const opts of [options, small]) {
      const result = serialize(record, opts);
      assert.ok('json' in result, `record ${record.id} serializes`);
      assert.equal(result.json, JSON.stringify(toGelf(record, opts)), 'the same text, field order included');
      assert.equal(result.bytes, Buffer.byteLength(result.json));
      assert.equal(validate(JSON.parse(result.json) as GelfMessage), undefined, 'valid for Graylog');
    }
  }
  const blank = serialize(spanRecord(4, { resource: { 'host.name': '  ', 'service.name': 'shop' } } as Partial<StoredRecord>), options);
  assert.deepEqual(blank, { id: 4, error: 'host is empty' });
  const timeless = serialize(spanRecord(5, { startTimeUnixNano: '', receivedAtMs: Number.NaN } as Partial<StoredRecord>), options);
  assert.deepEqual(timeless, { id: 5, error: 'timestamp is not a positive number' });
});
