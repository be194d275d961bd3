// GELF over TCP (optionally TLS): one persistent connection, messages framed by a null byte.
// Graylog sends nothing back, so "sent" means "flushed to the kernel": the write callback.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { withTimeout, type Encoded, type Transport } from './transport.js';

export interface TcpOptions {
  host: string;
  port: number;
  /** TLS client options; undefined for plain TCP. */
  tls?: ConnectionOptions;
  connectTimeoutMs: number;
  writeTimeoutMs: number;
  /** Keepalive probe delay; 0 turns keepalive off. */
  keepaliveMs: number;
}

export class TcpTransport implements Transport {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;

  constructor(private readonly options: TcpOptions) {}

  encode(json: string): string {
    // JSON.stringify escapes U+0000, so the text never contains the frame delimiter.
    return json;
  }

  async send(messages: Encoded[]): Promise<void> {
    if (messages.length === 0) return;
    const socket = await this.connection();
    // One write per batch (the frames joined into one string, encoded to UTF-8 once) is far
    // cheaper than one per message, and awaiting its callback before the next batch is the
    // backpressure.
    const frame = (messages as string[]).join('\0') + '\0';
    const flushed = new Promise<void>((resolve, reject) => {
      socket.write(frame, (err) => (err ? reject(err) : resolve()));
    });
    await withTimeout(flushed, this.options.writeTimeoutMs, `GELF TCP write not flushed within ${this.options.writeTimeoutMs} ms`, () =>
      socket.destroy(),
    );
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      // Graylog never closes its side first; do not wait for it long.
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  /** The open connection, or a new one. Concurrent callers share one connect. */
  private async connection(): Promise<Socket> {
    if (this.socket) {
      // Let one poll phase run first (two check phases surround it): a FIN that Graylog sent
      // while we were idle is then seen, and the batch goes to a new connection instead of
      // into a dead one.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const socket = this.socket;
    if (socket && !socket.destroyed && socket.writable) return socket;
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Socket> {
    const { host, port, tls, connectTimeoutMs, keepaliveMs } = this.options;
    const socket = tls ? tlsConnect({ ...tls, host, port }) : netConnect({ host, port });
    const ready = tls ? 'secureConnect' : 'connect';
    const connected = new Promise<void>((resolve, reject) => {
      socket.once(ready, resolve);
      socket.once('error', reject);
    });
    await withTimeout(connected, connectTimeoutMs, `GELF ${tls ? 'TLS' : 'TCP'} connect to ${host}:${port} timed out after ${connectTimeoutMs} ms`, () =>
      socket.destroy(),
    ).catch((err: Error) => {
      socket.destroy();
      throw err;
    });
    socket.setNoDelay(true);
    if (keepaliveMs > 0) socket.setKeepAlive(true, keepaliveMs);
    // Errors surface through write callbacks; this listener only keeps them from being fatal.
    socket.on('error', () => {});
    // Graylog never writes; reading lets us notice its FIN and drop the dead connection
    // before the next batch instead of writing into it.
    socket.on('data', () => {});
    socket.on('end', () => socket.destroy());
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
    });
    this.socket = socket;
    return socket;
  }
}
