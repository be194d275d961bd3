// GELF over UDP: each message compressed (gzip by default) and, when larger than one
// datagram, split into GELF chunks: magic 0x1e 0x0f, 8-byte message id, sequence number,
// sequence count, then the payload; at most 128 chunks. Graylog drops a chunked message
// whose chunks do not all arrive within 5 s, and UDP gives no delivery guarantee at all:
// "sent" means every datagram was handed to the kernel.
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { randomBytes } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import type { Compression } from './config.js';
import type { Encoded, Transport } from './transport.js';

export const CHUNK_HEADER_BYTES = 12;
export const MAX_CHUNKS = 128;

export interface UdpOptions {
  host: string;
  port: number;
  /** Largest datagram, header included. */
  chunkSize: number;
  compression: Compression;
}

export class UdpTransport implements Transport {
  /**
   * 128 chunks of the configured size. Stated for the JSON before compression, so a message
   * fits whatever compression makes of it (compression never makes JSON of this size larger
   * than a few bytes, well within the room the last chunk leaves on average).
   */
  readonly maxMessageBytes: number;
  private socket: Promise<Socket> | undefined;
  /** Message ids: a random prefix per transport plus a counter, unique without a syscall each. */
  private readonly idPrefix = randomBytes(4);
  private idCounter = 0;

  constructor(private readonly options: UdpOptions) {
    // Room for the compression header and an incompressible payload's growth (deflate adds
    // 5 bytes per 16 KiB stored block, gzip 18 bytes in all).
    const room = MAX_CHUNKS * (options.chunkSize - CHUNK_HEADER_BYTES);
    this.maxMessageBytes = options.compression === 'none' ? room : Math.floor(room * 0.99) - 64;
  }

  encode(text: string): Encoded {
    const { compression, chunkSize } = this.options;
    const json = Buffer.from(text);
    const payload = compression === 'gzip' ? gzipSync(json) : compression === 'zlib' ? deflateSync(json) : json;
    if (payload.length <= chunkSize) return payload;
    const room = chunkSize - CHUNK_HEADER_BYTES;
    const count = Math.ceil(payload.length / room);
    // The exporter keeps messages within maxMessageBytes, so this is a bug, not bad input.
    if (count > MAX_CHUNKS) throw new Error(`a GELF message of ${json.length} bytes needs ${count} chunks (at most ${MAX_CHUNKS})`);
    const id = Buffer.alloc(8);
    this.idPrefix.copy(id, 0);
    id.writeUInt32BE(this.idCounter++ >>> 0, 4);
    if (this.idCounter > 0xffffffff) this.idCounter = 0;
    const chunks: Buffer[] = [];
    for (let seq = 0; seq < count; seq++) {
      const body = payload.subarray(seq * room, (seq + 1) * room);
      const chunk = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + body.length);
      chunk[0] = 0x1e;
      chunk[1] = 0x0f;
      id.copy(chunk, 2);
      chunk[10] = seq;
      chunk[11] = count;
      body.copy(chunk, CHUNK_HEADER_BYTES);
      chunks.push(chunk);
    }
    return chunks;
  }

  async send(messages: Encoded[]): Promise<void> {
    if (messages.length === 0) return;
    const socket = await this.connection();
    const sends: Promise<void>[] = [];
    for (const m of messages) {
      for (const datagram of Array.isArray(m) ? m : [m]) {
        sends.push(new Promise((resolve, reject) => socket.send(datagram, (err) => (err ? reject(err) : resolve()))));
      }
    }
    const results = await Promise.allSettled(sends);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // A connected UDP socket reports an earlier ICMP "port unreachable" as ECONNREFUSED
      // on a later send; start over with a fresh socket.
      await this.close();
      throw failed.reason;
    }
  }

  async close(): Promise<void> {
    const pending = this.socket;
    this.socket = undefined;
    if (!pending) return;
    const socket = await pending.catch(() => undefined);
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private connection(): Promise<Socket> {
    this.socket ??= this.open().catch((err) => {
      this.socket = undefined;
      throw err;
    });
    return this.socket;
  }

  private async open(): Promise<Socket> {
    const { address, family } = await lookup(this.options.host);
    const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
    socket.on('error', () => {}); // surfaced through send callbacks
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(this.options.port, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return socket;
  }
}
