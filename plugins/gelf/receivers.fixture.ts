// Test fixture: loopback GELF receivers, parsing what arrives the way Graylog's inputs do:
// TCP/TLS split on null bytes, UDP reassembles chunks and inflates gzip/zlib, HTTP takes
// one JSON document per POST (newline-separated documents in bulk mode). Each keeps the decoded messages in arrival order.
import { EventEmitter, once } from 'node:events';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync, inflateSync } from 'node:zlib';

/** Fixture certificate for `localhost` / 127.0.0.1 (self-signed; tests trust it explicitly). */
export const TEST_CERT_FILE = fileURLToPath(new URL('../../../plugins/gelf/testdata/server-cert.pem', import.meta.url));
export const TEST_KEY_FILE = fileURLToPath(new URL('../../../plugins/gelf/testdata/server-key.pem', import.meta.url));

export type Received = Record<string, unknown>;

abstract class Receiver extends EventEmitter {
  readonly messages: Received[] = [];
  /** Payloads that were not valid GELF JSON (Graylog would drop them). */
  readonly invalid: string[] = [];
  port = 0;

  /** `from` is the connection it came over (TCP), for tests that act on it. */
  protected accept(text: string, from?: unknown): void {
    try {
      const message = JSON.parse(text) as Received;
      this.messages.push(message);
      this.emit('message', message, from);
    } catch {
      this.invalid.push(text);
      this.emit('invalid', text);
    }
  }

  /** Resolves once `count` messages have arrived in total; rejects after `timeoutMs`. */
  async waitFor(count: number, timeoutMs = 10_000): Promise<Received[]> {
    if (this.messages.length >= count) return this.messages;
    const signal = AbortSignal.timeout(timeoutMs);
    while (this.messages.length < count) {
      await once(this, 'message', { signal }).catch(() => {
        throw new Error(`expected ${count} GELF messages, got ${this.messages.length} within ${timeoutMs} ms`);
      });
    }
    return this.messages;
  }

  abstract close(): Promise<void>;
}

/** GELF TCP (or TLS) input: null-byte framed JSON. Counts connections as they are accepted. */
export class TcpReceiver extends Receiver {
  connections = 0;
  /**
   * Each connection accepted while this is set takes this many messages, then is dropped and
   * the rest of what came with them is lost (a proxy or input failing mid-stream); 0 drops
   * every connection right after accept.
   */
  closeAfter: number | undefined;
  private server: NetServer | undefined;
  private readonly sockets = new Set<Socket>();

  static async start(options: { tls?: boolean; port?: number } = {}): Promise<TcpReceiver> {
    const receiver = new TcpReceiver();
    await receiver.listen(options);
    return receiver;
  }

  async listen(options: { tls?: boolean; port?: number } = {}): Promise<void> {
    const onConnection = (socket: Socket) => this.handle(socket);
    const server = options.tls
      ? createTlsServer({ cert: readFileSync(TEST_CERT_FILE), key: readFileSync(TEST_KEY_FILE) }, onConnection)
      : createNetServer(onConnection);
    server.listen(options.port ?? this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  private handle(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
    const limit = this.closeAfter;
    this.emit('connection', socket);
    if (limit === 0) return void socket.destroy();
    let taken = 0;
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      if (socket.destroyed) return;
      pending = pending.length ? Buffer.concat([pending, data]) : data;
      let start = 0;
      for (let nul = pending.indexOf(0, start); nul !== -1; nul = pending.indexOf(0, start)) {
        if (nul > start) {
          this.accept(pending.toString('utf8', start, nul), socket);
          if (limit !== undefined && ++taken >= limit) return void socket.destroy();
        }
        start = nul + 1;
      }
      pending = pending.subarray(start);
    });
  }

  /** Stops listening and drops every connection (Graylog going away). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** GELF UDP input: plain, gzip or zlib datagrams, and GELF chunks reassembled by message id. */
export class UdpReceiver extends Receiver {
  datagrams = 0;
  private socket: UdpSocket | undefined;
  private readonly chunks = new Map<string, { count: number; parts: (Buffer | undefined)[]; seen: number }>();

  static async start(): Promise<UdpReceiver> {
    const receiver = new UdpReceiver();
    const socket = createSocket('udp4');
    socket.on('message', (datagram) => receiver.datagram(datagram));
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    socket.setRecvBufferSize(8 * 1024 * 1024);
    receiver.port = socket.address().port;
    receiver.socket = socket;
    return receiver;
  }

  private datagram(datagram: Buffer): void {
    this.datagrams++;
    if (datagram[0] === 0x1e && datagram[1] === 0x0f) return this.chunk(datagram);
    this.payload(datagram);
  }

  private chunk(datagram: Buffer): void {
    const id = datagram.subarray(2, 10).toString('hex');
    const seq = datagram[10]!;
    const count = datagram[11]!;
    if (count < 1 || count > 128 || seq >= count) return this.invalid.push(`bad chunk header ${seq}/${count}`) as unknown as void;
    let entry = this.chunks.get(id);
    if (!entry) this.chunks.set(id, (entry = { count, parts: new Array(count), seen: 0 }));
    if (entry.parts[seq]) return;
    entry.parts[seq] = datagram.subarray(12);
    if (++entry.seen === entry.count) {
      this.chunks.delete(id);
      this.payload(Buffer.concat(entry.parts as Buffer[]));
    }
  }

  private payload(data: Buffer): void {
    try {
      if (data[0] === 0x1f && data[1] === 0x8b) data = gunzipSync(data);
      else if (data[0] === 0x78) data = inflateSync(data);
    } catch (err) {
      this.invalid.push(`cannot decompress: ${(err as Error).message}`);
      return;
    }
    this.accept(data.toString('utf8'));
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/**
 * GELF HTTP input: POST /gelf, one JSON document (optionally gzip) per request, 202 answer;
 * with `bulk`, newline-separated documents (Graylog 6 with bulk receiving enabled).
 */
export class HttpReceiver extends Receiver {
  requests = 0;
  /** Size of each request body as received (before gunzip). */
  readonly bodySizes: number[] = [];
  /** Status to answer with; set to 503 to play a refusing Graylog. */
  status = 202;
  readonly paths: string[] = [];
  readonly headers: Record<string, string | string[] | undefined>[] = [];
  private server: HttpServer | undefined;

  static async start(options: { tls?: boolean; bulk?: boolean } = {}): Promise<HttpReceiver> {
    const receiver = new HttpReceiver();
    const server = options.tls
      ? (await import('node:https')).createServer({ cert: readFileSync(TEST_CERT_FILE), key: readFileSync(TEST_KEY_FILE) })
      : createHttpServer();
    server.on('request', (req, res) => {
      receiver.requests++;
      receiver.paths.push(req.url ?? '');
      receiver.headers.push(req.headers);
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const status = receiver.status;
        res.writeHead(status).end();
        if (status < 200 || status >= 300) return;
        let body = Buffer.concat(parts);
        receiver.bodySizes.push(body.length);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const text = body.toString('utf8');
        for (const document of options.bulk ? text.split('\n') : [text]) receiver.accept(document);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    receiver.port = (server.address() as { port: number }).port;
    receiver.server = server;
    return receiver;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
