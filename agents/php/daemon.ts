// The php-agent daemon: binds the Unix datagram socket agent.php sends to, validates each
// datagram, and hands the resulting spans to the shared agent runtime.
//
// Node has no Unix datagram sockets of its own; `unix-dgram` (native, small, widely used)
// provides them. Datagrams suit the PHP side: a send never waits for the daemon, and a full
// queue or a missing daemon fails at once instead of blocking the page.
import { createRequire } from 'node:module';
import { chmodSync, mkdirSync, unlinkSync, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { Counter } from 'prom-client';
import type { Logger } from 'pino';
import { AgentRuntime } from '../runtime/index.js';
import type { PhpAgentConfig } from './config.js';
import { parseDatagram, toSpan } from './event.js';

const require = createRequire(import.meta.url);

interface DgramSocket {
  on(event: 'message', listener: (data: Buffer) => void): this;
  on(event: 'error', listener: (err: Error & { code?: string }) => void): this;
  once(event: 'listening' | 'connect', listener: () => void): this;
  once(event: 'error', listener: (err: Error & { code?: string }) => void): this;
  removeAllListeners(event?: string): this;
  bind(path: string): void;
  connect(path: string): void;
  close(): void;
}
const unixDgram = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };

/** unix-dgram receives into a 64 KiB buffer: a datagram that fills it may have been cut. */
const RECEIVE_LIMIT = 65536;

export const VERSION = '0.1.0';

export class DaemonError extends Error {}

/** True when some process is receiving on the socket at `path` (a stale file is not). */
function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = unixDgram.createSocket('unix_dgram');
    probe.once('connect', () => {
      probe.close();
      resolve(true);
    });
    probe.once('error', () => {
      probe.close();
      resolve(false);
    });
    probe.connect(path);
  });
}

export class PhpAgentDaemon {
  readonly runtime: AgentRuntime;
  private socket: DgramSocket | undefined;
  private readonly lost: Counter;
  private readonly truncated: Counter;

  constructor(private readonly config: PhpAgentConfig, logger?: Logger) {
    this.runtime = new AgentRuntime({ source: 'php_agent', config, scope: { name: 'bitville.php-agent', version: VERSION }, ...(logger ? { logger } : {}) });
    this.lost = new Counter({
      name: 'bitville_php_agent_sends_lost_total',
      help: 'Slow requests agent.php could not deliver (daemon down, queue full, breaker open), as reported by its next successful send.',
      registers: [this.runtime.metrics.registry],
    });
    this.truncated = new Counter({
      name: 'bitville_php_agent_fields_truncated_total',
      help: 'String fields of accepted events cut to their bound, and profiles cut, cleaned or dropped (field="profile"), see docs/php-agent.md; by field.',
      labelNames: ['field'],
      registers: [this.runtime.metrics.registry],
    });
  }

  get logger(): Logger {
    return this.runtime.logger;
  }

  /** Binds the socket (refusing if another daemon holds it), then starts the runtime (which replays its disk buffer). */
  async start(): Promise<void> {
    const path = this.config.socket.path;
    mkdirSync(dirname(path), { recursive: true });
    if (lstatExists(path)) {
      if (await someoneListens(path)) throw new DaemonError(`another php-agent daemon is receiving on ${path}; stop it first or set socket.path`);
      unlinkSync(path);
    }
    await this.runtime.start();
    try {
      this.socket = await this.bind(path);
    } catch (err) {
      await this.runtime.stop();
      throw err;
    }
    chmodSync(path, this.config.socket.mode);
    this.logger.info({ socket: path, metrics: this.runtime.metricsUrl, exporter: this.config.exporter.endpoint }, 'php-agent listening');
  }

  private bind(path: string): Promise<DgramSocket> {
    return new Promise((resolve, reject) => {
      const socket = unixDgram.createSocket('unix_dgram');
      socket.once('error', (err) => reject(new DaemonError(`cannot bind ${path}: ${err.message}`)));
      socket.once('listening', () => {
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.logger.error({ err: err.message }, 'socket error'));
        socket.on('message', (data) => this.receive(data));
        resolve(socket);
      });
      socket.bind(path);
    });
  }

  /** One datagram: never throws; a bad one is counted and (rate-limited) logged. */
  receive(data: Buffer): void {
    if (data.length >= RECEIVE_LIMIT) return this.runtime.countMalformed('oversized', { bytes: data.length });
    const result = parseDatagram(data);
    if ('reason' in result) return this.runtime.countMalformed(result.reason, { detail: result.detail, sample: data.subarray(0, 120).toString('utf8') });
    if (result.event.lost > 0) this.lost.inc(result.event.lost);
    for (const field of result.truncated) this.truncated.inc({ field });
    this.runtime.submit({ type: 'span', span: toSpan(result.event) });
  }

  async stop(): Promise<void> {
    if (this.socket) {
      this.socket.close();
      this.socket = undefined;
      try {
        unlinkSync(this.config.socket.path);
      } catch {
        // already gone
      }
    }
    await this.runtime.stop();
  }
}

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
