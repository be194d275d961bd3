// The encoder thread writes exactly what the inline serializer writes, batch by batch in the
// order asked, and starts a new thread when asked again after it was closed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { textOf, type StoredText } from '../../collector/core/api.js';
import { encodeBatch } from './batch-encoder.js';
import { EncoderThread } from './encoder-thread.js';
import { logRecord, spanRecord } from './exporter.fixture.js';
import { TCP_MAX_MESSAGE_BYTES } from './tcp.js';

const options = { defaultHost: 'collector-1', maxFieldBytes: 32_000, maxFullMessageBytes: 256 * 1024 };

/** The messages of a frame: null-terminated JSON texts. */
function messagesOf(frame: Uint8Array): string[] {
  const text = Buffer.from(frame).toString();
  assert.ok(text.endsWith('\0'), 'every message is null-terminated');
  return text.slice(0, -1).split('\0');
}

/** Stored texts as the store reads them (no parsed record beside them). */
function batch(from: number, n: number): StoredText[] {
  return Array.from({ length: n }, (_, i) => stored(i % 4 === 3 ? logRecord(from + i) : spanRecord(from + i)));
}

function stored(record: Parameters<typeof textOf>[0]): StoredText {
  const { record: _parsed, ...text } = textOf(record);
  return text;
}

test('the thread frames each batch as the inline serializer would, in the order the batches were asked for', async (t) => {
  const thread = new EncoderThread({ options, maxMessageBytes: TCP_MAX_MESSAGE_BYTES });
  t.after(() => thread.close());
  // full_message is the stored text, id and receivedAtMs added; characters of 2, 3 and 4 UTF-8 bytes frame as they measure.
  const first = stored(spanRecord(1, { name: 'from the store: Grüße, 東京, 🚀' }));
  const batches = [[first, ...batch(2, 9)], batch(11, 50), batch(61, 1)];
  const results = await Promise.all(batches.map((b) => thread.encode(b)));
  for (const [i, b] of batches.entries()) {
    const inline = encodeBatch(b, options, TCP_MAX_MESSAGE_BYTES);
    assert.equal(Buffer.from(results[i]!.frame).toString(), inline.messages.join('\0') + '\0');
    assert.equal(results[i]!.count, b.length);
    assert.equal(results[i]!.bytes, inline.bytes);
    assert.equal(results[i]!.frame.byteLength, inline.bytes + b.length, 'the frame is exactly the messages and their delimiters');
    assert.deepEqual(results[i]!.rejected, []);
  }
  const message = JSON.parse(messagesOf(results[0]!.frame)[0]!);
  assert.equal(message.full_message, `${first.json.slice(0, -1)},"id":1,"receivedAtMs":${first.receivedAtMs}}`);
  assert.equal(message._name, 'from the store: Grüße, 東京, 🚀');
});

test('a stored text that is not JSON is reported as unreadable; the rest of its batch is framed', async (t) => {
  const thread = new EncoderThread({ options, maxMessageBytes: TCP_MAX_MESSAGE_BYTES });
  t.after(() => thread.close());
  const [a, b, c] = batch(1, 3);
  const result = await thread.encode([a!, { ...b!, json: '{"kind":"span",' }, c!]);
  assert.equal(result.rejected.length, 1);
  assert.equal(result.rejected[0]!.id, 2);
  assert.match(result.rejected[0]!.reason, /^cannot read the stored record: /);
  assert.deepEqual(messagesOf(result.frame).map((m) => JSON.parse(m)._record_id), [1, 3]);
});

test('a record the serializer refuses is reported with its reason; the others are framed', async (t) => {
  const thread = new EncoderThread({ options, maxMessageBytes: TCP_MAX_MESSAGE_BYTES });
  t.after(() => thread.close());
  const blankHost = spanRecord(2, { resource: { 'service.name': 'shop', 'host.name': ' ' } });
  const result = await thread.encode([spanRecord(1), blankHost, spanRecord(3)].map(stored));
  assert.deepEqual(result.rejected, [{ id: 2, reason: 'host is empty' }]);
  assert.deepEqual(messagesOf(result.frame).map((m) => JSON.parse(m)._record_id), [1, 3]);
});

test('after close, the next batch starts a new thread', async () => {
  const thread = new EncoderThread({ options, maxMessageBytes: TCP_MAX_MESSAGE_BYTES });
  assert.equal((await thread.encode(batch(1, 3))).count, 3);
  await thread.close();
  assert.equal((await thread.encode(batch(4, 2))).count, 2);
  await thread.close();
});
