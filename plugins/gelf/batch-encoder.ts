// A batch of stored records -> its GELF messages, with the records that cannot be sent. Pure;
// run inline by the exporter (UDP, HTTP), or on the encoder thread (TCP, TLS: encoder-thread.ts).
import { parseStored, type StoredRecord, type StoredText } from '../../collector/core/api.js';
import { fitTo, serialize, toGelf, type SerializerOptions } from './serializer.js';

export interface EncodedBatch {
  /** The JSON text of each message that can be sent, in record order. */
  messages: string[];
  /** Their UTF-8 bytes in all. */
  bytes: number;
  /** Records that can never be sent, and why. */
  rejected: { id: number; reason: string }[];
}

export function encodeBatch(batch: readonly StoredText[], options: SerializerOptions, maxMessageBytes: number): EncodedBatch {
  const out: EncodedBatch = { messages: [], bytes: 0, rejected: [] };
  for (const text of batch) {
    let record: StoredRecord;
    try {
      record = parseStored(text);
    } catch (err) {
      out.rejected.push({ id: text.id, reason: `cannot read the stored record: ${(err as Error).message}` });
      continue;
    }
    const serialized = serialize(record, options);
    if ('error' in serialized) {
      out.rejected.push({ id: record.id, reason: serialized.error });
      continue;
    }
    let json: string | undefined = serialized.json;
    let size = serialized.bytes;
    if (size > maxMessageBytes) {
      // Too large for the transport (UDP: 128 chunks; HTTP: the body limit): cut full_message.
      // Rare, so the message is mapped again here rather than kept for every record.
      json = fitTo(toGelf(record, options), maxMessageBytes);
      if (json === undefined) {
        out.rejected.push({ id: record.id, reason: `too large for the transport (${maxMessageBytes} bytes) even with full_message cut to 64 bytes` });
        continue;
      }
      size = Buffer.byteLength(json);
    }
    out.messages.push(json);
    out.bytes += size;
  }
  return out;
}

/**
 * TCP's wire form of an encoded batch: each message as UTF-8 followed by the null byte that
 * frames it, in one buffer with an ArrayBuffer of its own (so a thread can transfer it). Each
 * message is written straight into it: joining the texts first and encoding the joined string
 * cost 10-15 µs per record more (flattening and copying a large string twice).
 */
export function frameOf({ messages, bytes }: EncodedBatch): Buffer {
  const frame = Buffer.allocUnsafeSlow(bytes + messages.length);
  let at = 0;
  for (const json of messages) {
    at += frame.write(json, at);
    frame[at++] = 0;
  }
  if (at !== frame.length) throw new Error(`the batch's frames took ${at} bytes, not the ${frame.length} measured`);
  return frame;
}
