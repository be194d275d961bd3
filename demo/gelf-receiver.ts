// The demo's GELF TCP receiver: a stand-in for Graylog that keeps what arrives (null-byte
// framed JSON, in arrival order) so the demo can print it and its test can look for it.
import { EventEmitter, once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';

export type Received = Record<string, unknown>;

export class GelfReceiver extends EventEmitter {
  readonly messages: Received[] = [];
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  static async start(): Promise<GelfReceiver> {
    const receiver = new GelfReceiver();
    const server = createServer((socket) => receiver.handle(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    receiver.port = (server.address() as { port: number }).port;
    receiver.server = server;
    return receiver;
  }

  /** Resolves once `count` messages have arrived in total; rejects after `timeoutMs`. */
  async waitFor(count: number, timeoutMs = 10_000): Promise<Received[]> {
    const signal = AbortSignal.timeout(timeoutMs);
    while (this.messages.length < count) {
      await once(this, 'message', { signal }).catch(() => {
        throw new Error(`expected ${count} GELF messages, got ${this.messages.length} within ${timeoutMs} ms`);
      });
    }
    return this.messages;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(socket: Socket): void {
    this.sockets.add(socket);
    let pending = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      const frames = (pending + text).split('\0');
      pending = frames.pop()!;
      for (const frame of frames) {
        if (frame === '') continue;
        try {
          const message = JSON.parse(frame) as Received;
          this.messages.push(message);
          this.emit('message', message);
        } catch {
          // Graylog drops what is not JSON; so does the demo.
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
  }
}
