// A batch of records -> its GELF messages, with the records that cannot be sent. Pure; run
// inline by the exporter (UDP, HTTP), or on the encoder thread (TCP, TLS: encoder-thread.ts).
import type { StoredRecord } from '../../collector/core/api.js';
import { fitTo, serialize, toGelf, type SerializerOptions } from './serializer.js';

export interface EncodedBatch {
  /** The JSON text of each message that can be sent, in record order. */
  messages: string[];
  /** Their UTF-8 bytes in all. */
  bytes: number;
  /** Records that can never be sent, and why. */
  rejected: { id: number; reason: string }[];
}

export function encodeBatch(batch: readonly StoredRecord[], options: SerializerOptions, maxMessageBytes: number): EncodedBatch {
  const out: EncodedBatch = { messages: [], bytes: 0, rejected: [] };
  for (const record of batch) {
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
