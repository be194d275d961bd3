// The admin HTTP server (default 127.0.0.1:8888): Prometheus /metrics, /healthz (the process
// is alive), /readyz (the pipeline is started and accepting data), and the pages and JSON that
// components contribute (the correlate processor's request pages, for one).
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type Express, type Request } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AdminRoute } from '../core/api.js';
import { BitvilleError } from '../common/errors.js';
import { parseHostPort } from '../common/schema.js';

export interface AdminOptions {
  address: string;
  metrics: () => Promise<string>;
  contentType: string;
  ready: () => boolean;
  logger: Logger;
  /** Required as `Authorization: Bearer <token>` on every route but the probes. */
  bearerToken?: string | undefined;
}

const PROBES = new Set(['/healthz', '/readyz']);
const digest = (text: string) => createHash('sha256').update(text).digest();

export class AdminServer {
  readonly app: Express = express();
  #server: Server | undefined;
  readonly #mounted = new Map<string, string>();

  constructor(private readonly options: AdminOptions) {
    const app = this.app;
    app.disable('x-powered-by');
    if (options.bearerToken !== undefined) {
      const expected = digest(`Bearer ${options.bearerToken}`);
      app.use((req, res, next) => {
        // Fixed-length digests compared in constant time: the timing says nothing about the token.
        if (PROBES.has(req.path) || timingSafeEqual(digest(req.headers.authorization ?? ''), expected)) return next();
        res.status(401).set('WWW-Authenticate', 'Bearer realm="bitville admin"').json({ error: 'missing or wrong bearer token', code: 'BV_UNAUTHORIZED' });
      });
    }
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
  }

  /** Serves a component's route; two components claiming one path is a start failure. */
  mount(componentId: string, route: AdminRoute): void {
    const owner = this.#mounted.get(route.path);
    if (owner !== undefined || ['/metrics', '/healthz', '/readyz'].includes(route.path)) {
      throw new BitvilleError('BV_START_FAILED', `${componentId} cannot serve ${route.path} on the admin server: ${owner ?? 'the admin server'} already does`);
    }
    this.#mounted.set(route.path, componentId);
    this.app.get(route.path, async (req, res) => {
      try {
        const out = await route.handle({ params: { ...(req.params as Record<string, string>) }, query: queryOf(req) });
        res.status(out.status ?? 200).type(out.contentType).send(out.body);
      } catch (err) {
        // A failing read (the store closing) answers 500 with a message, never a stack trace.
        this.options.logger.error({ err, component: componentId, path: req.path }, 'admin route failed');
        if (!res.headersSent) res.status(500).json({ error: `${componentId}: ${(err as Error).message}` });
      }
    });
  }

  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.options.address);
    const server = await new Promise<Server>((resolve, reject) => {
      // Express 5 hands a listen error to this callback rather than throwing.
      const s = this.app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
    }).catch((err: Error) => {
      throw new BitvilleError('BV_START_FAILED', `the admin server cannot listen on ${this.options.address}: ${err.message}`, { cause: err });
    });
    this.#server = server;
    const { port: bound } = server.address() as AddressInfo;
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

/** Query parameters as plain strings: a repeated parameter keeps its last value. */
function queryOf(req: Request): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.query)) {
    const last = Array.isArray(value) ? value.at(-1) : value;
    if (typeof last === 'string') out[key] = last;
  }
  return out;
}
