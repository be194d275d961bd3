// The admin HTTP server (default 127.0.0.1:8888): Prometheus /metrics, /healthz (the process
// is alive), /readyz (the pipeline is started and accepting data), and with a store the
// request pages (`/`, `/requests/<id>`) and their JSON API (`/api/requests`, see web.ts).
import express, { type Express } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { parseHostPort } from '../common/schema.js';
import type { Store } from '../core/store.js';
import { mountRequestPages } from '../../plugins/correlate/web.js';

export interface AdminOptions {
  address: string;
  metrics: () => Promise<string>;
  contentType: string;
  ready: () => boolean;
  logger: Logger;
  /** Serves the request pages and API from this store. */
  store?: Store;
}

export class AdminServer {
  readonly app: Express = express();
  #server: Server | undefined;

  constructor(private readonly options: AdminOptions) {
    const app = this.app;
    app.disable('x-powered-by');
    app.get('/metrics', async (_req, res) => {
      res.type(options.contentType).send(await options.metrics());
    });
    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok' });
    });
    app.get('/readyz', (_req, res) => {
      const ready = options.ready();
      res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready' });
    });
    if (options.store) mountRequestPages(app, options.store);
  }

  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.options.address);
    await new Promise<void>((resolve, reject) => {
      const server = this.app.listen(port, host, () => resolve());
      server.once('error', reject);
      this.#server = server;
    });
    const { port: bound } = this.#server!.address() as AddressInfo;
    this.options.logger.info({ url: `http://${host}:${bound}`, port: bound }, 'admin server listening');
  }

  async shutdown(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }
}
