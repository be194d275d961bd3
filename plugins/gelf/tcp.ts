// GELF over TCP (optionally TLS): one persistent connection, messages framed by a null byte.
// Graylog sends nothing back, so a write callback only says the kernel took the bytes: a peer
// that accepts and then drops the connection (a load balancer with no healthy Graylog behind
// it, a wedged input) would swallow them. A batch therefore counts as sent only once the
// connection has outlived it by the confirmation window; if the connection ends first, the
// send fails (UnconfirmedError) and the exporter offers the batch again, on a new connection.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { UnconfirmedError, withTimeout, type Encoded, type Transport } from './transport.js';

/** Graylog's GELF TCP input refuses frames over 2 MiB by default (its max_message_size). */
export const TCP_MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

export interface TcpOptions {
  host: string;
  port: number;
  /** TLS client options; undefined for plain TCP. */
  tls?: ConnectionOptions;
  connectTimeoutMs: number;
  writeTimeoutMs: number;
  /** Keepalive probe delay; 0 turns keepalive off. */
  keepaliveMs: number;
  /** How long the connection must stay open after a batch was flushed for the batch to count as sent. */
  confirmWindowMs: number;
}

/** A connection and what we know of its end. */
interface Connection {
  socket: Socket;
  /** Set once the peer closed it or it failed: the reason. */
  ended: Error | undefined;
  /** Sends in their confirmation window, told when the connection ends. */
  waiting: Set<(reason: Error) => void>;
}

/**
 * One batch's bytes: the messages' JSON texts, each followed by a null byte. A single buffer
 * is taken as already framed that way (the encoder thread's output) and written as it is.
 */
function framed(messages: Encoded[]): string | Buffer {
  if (messages.length === 1 && Buffer.isBuffer(messages[0])) return messages[0];
  return (messages as string[]).join('\0') + '\0';
}

export class TcpTransport implements Transport {
  readonly maxMessageBytes = TCP_MAX_MESSAGE_BYTES;
  private connection: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  /** The last write's turn: each write waits for the one before it. */
  private writes: Promise<void> = Promise.resolve();
  /** Writes called for and not yet finished: while any is, the connection is busy, not idle. */
  private writesPending = 0;

  constructor(private readonly options: TcpOptions) {}

  encode(json: string): Encoded {
    // JSON.stringify escapes U+0000, so the text never contains the frame delimiter.
    return json;
  }

  /**
   * Several sends may be outstanding (the exporter keeps batches in flight while their windows
   * run): writes go out one after the other in call order, and the windows overlap, so a
   * healthy connection pays the window once, not once per batch. A send whose `signal` was
   * aborted (an earlier batch failed) before its turn writes nothing.
   */
  async send(messages: Encoded[], signal?: AbortSignal): Promise<void> {
    if (messages.length === 0) return;
    // One write per batch (the frames joined into one string, encoded to UTF-8 once) is far
    // cheaper than one per message, and awaiting its callback before the next write is the
    // backpressure.
    // The frame is handed to its write and dropped here: a batch in its window holds no bytes.
    let frame: string | Buffer | undefined = framed(messages);
    const afterIdle = this.writesPending === 0;
    this.writesPending++;
    const written = this.writes.then(() => {
      const bytes = frame!;
      frame = undefined;
      return this.write(bytes, signal, afterIdle);
    });
    this.writes = written.then(
      () => void this.writesPending--,
      () => void this.writesPending--,
    );
    const conn = await written;
    // The peer's FIN or RST for these bytes arrives within a round trip of its close; the
    // window covers that and the time a proxy takes to give up on a missing backend.
    await new Promise<void>((resolve, reject) => {
      if (conn.ended) return reject(this.unconfirmed(conn.ended));
      const ended = (reason: Error) => {
        clearTimeout(timer);
        reject(this.unconfirmed(reason));
      };
      const timer = setTimeout(() => {
        conn.waiting.delete(ended);
        resolve();
      }, this.options.confirmWindowMs);
      conn.waiting.add(ended);
    });
  }

  /** Writes one batch's frames and waits until the kernel took them; the connection it went on. */
  private async write(frame: string | Buffer, signal: AbortSignal | undefined, afterIdle: boolean): Promise<Connection> {
    signal?.throwIfAborted();
    const conn = await this.connect(afterIdle);
    const { socket } = conn;
    const { writeTimeoutMs } = this.options;
    const flushed = new Promise<void>((resolve, reject) => {
      socket.write(frame, (err) => (err ? reject(err) : resolve()));
    });
    try {
      await withTimeout(flushed, writeTimeoutMs, `GELF ${this.kind} write not flushed within ${writeTimeoutMs} ms`, () => socket.destroy());
    } catch (err) {
      // Part of the batch may have reached the peer: report it as unconfirmed, so the
      // exporter counts the re-send as a possible duplicate.
      throw new UnconfirmedError(`GELF ${this.kind} write failed: ${(err as Error).message}`);
    }
    return conn;
  }

  async close(): Promise<void> {
    const conn = this.connection;
    this.connection = undefined;
    if (!conn || conn.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      conn.socket.once('close', () => resolve());
      conn.socket.end();
      // Graylog never closes its side first; do not wait for it long.
      setTimeout(() => conn.socket.destroy(), 1000).unref();
    });
  }

  private get kind(): string {
    return this.options.tls ? 'TLS' : 'TCP';
  }

  private unconfirmed(reason: Error): UnconfirmedError {
    return new UnconfirmedError(
      `GELF ${this.kind} connection to ${this.options.host}:${this.options.port} ended within the ${this.options.confirmWindowMs} ms confirmation window (${reason.message}); the batch is not counted as sent`,
    );
  }

  /**
   * The open connection, or a new one. Concurrent callers share one connect. `afterIdle`: no
   * write was under way when this one was asked for.
   */
  private async connect(afterIdle: boolean): Promise<Connection> {
    if (this.connection && afterIdle) {
      // Let one poll phase run first (two check phases surround it): a FIN that Graylog sent
      // while we were idle is then seen, and the batch goes to a new connection instead of
      // into a dead one. Back-to-back writes skip it: the previous write's flush came from a
      // poll phase just now, and a FIN arriving later fails every batch still in its window.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const conn = this.connection;
    if (conn && !conn.ended && conn.socket.writable) return conn;
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Connection> {
    const { host, port, tls, connectTimeoutMs, keepaliveMs } = this.options;
    const socket = tls ? tlsConnect({ ...tls, host, port }) : netConnect({ host, port });
    const ready = tls ? 'secureConnect' : 'connect';
    const connected = new Promise<void>((resolve, reject) => {
      socket.once(ready, resolve);
      socket.once('error', reject);
    });
    await withTimeout(connected, connectTimeoutMs, `GELF ${this.kind} connect to ${host}:${port} timed out after ${connectTimeoutMs} ms`, () =>
      socket.destroy(),
    ).catch((err: Error) => {
      socket.destroy();
      throw err;
    });
    socket.setNoDelay(true);
    if (keepaliveMs > 0) socket.setKeepAlive(true, keepaliveMs);
    const conn: Connection = { socket, ended: undefined, waiting: new Set() };
    const finish = (reason: Error) => {
      conn.ended ??= reason;
      for (const ended of conn.waiting) ended(conn.ended);
      conn.waiting.clear();
      if (this.connection === conn) this.connection = undefined;
    };
    // Errors surface through write callbacks and the end of the connection.
    socket.on('error', (err) => finish(err));
    // Graylog never writes; reading lets us notice its FIN at once.
    socket.on('data', () => {});
    socket.on('end', () => {
      finish(new Error('closed by the peer'));
      socket.destroy();
    });
    socket.on('close', () => finish(new Error('connection closed')));
    this.connection = conn;
    return conn;
  }
}
