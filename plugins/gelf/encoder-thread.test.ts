// The encoder thread writes exactly what the inline serializer writes, batch by batch in the
// order asked, and starts a new thread when asked again after it was closed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { STORED_JSON, type StoredRecord } from '../../collector/core/api.js';
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

function batch(from: number, n: number): StoredRecord[] {
  return Array.from({ length: n }, (_, i) => (i % 4 === 3 ? logRecord(from + i) : spanRecord(from + i)));
}

test('the thread frames each batch as the inline serializer would, in the order the batches were asked for', async (t) => {
  const thread = new EncoderThread({ options, maxMessageBytes: TCP_MAX_MESSAGE_BYTES });
  t.after(() => thread.close());
  // A record read from the store carries its stored text: full_message is that text.
  const stored = spanRecord(1, { name: 'from the store' });
  stored[STORED_JSON] = JSON.stringify({ ...stored, id: undefined, receivedAtMs: undefined });
  const batches = [[stored, ...batch(2, 9)], batch(11, 50), batch(61, 1)];
  const results = await Promise.all(batches.map((b) => thread.encode(b)));
  for (const [i, b] of batches.entries()) {
    const inline = encodeBatch(b, options, TCP_MAX_MESSAGE_BYTES);
    assert.equal(Buffer.from(results[i]!.frame).toString(), inline.messages.join('\0') + '\0');
    assert.equal(results[i]!.count, b.length);
    assert.equal(results[i]!.bytes, inline.bytes);
    assert.deepEqual(results[i]!.rejected, []);
  }
  assert.equal(JSON.parse(messagesOf(results[0]!.frame)[0]!).full_message, `${stored[STORED_JSON]!.slice(0, -1)},"id":1,"receivedAtMs":${stored.receivedAtMs}}`);
});

test('a record the serializer refuses is reported with its reason; the others are framed', async (t) => {
  const thread = new EncoderThread({ options, maxMessageBytes: TCP_MAX_MESSAGE_BYTES });
  t.after(() => thread.close());
  const blankHost = spanRecord(2, { resource: { 'service.name': 'shop', 'host.name': ' ' } });
  const result = await thread.encode([spanRecord(1), blankHost, spanRecord(3)]);
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
