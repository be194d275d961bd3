// The agent's own Prometheus registry and the small HTTP server that serves it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { parseHostPort } from '../../collector/common/schema.js';

export interface BufferLevels {
  memoryEvents: number;
  memoryBytes: number;
  diskEvents: number;
  diskBytes: number;
}

/** The configured bounds of the two tiers (buffer.memory_limit, buffer.disk_limit). */
export interface BufferLimits {
  memoryBytes: number;
  diskBytes: number;
}

export function agentMetrics(source: string, levels: () => BufferLevels, breakerState: () => number, limits?: BufferLimits) {
  const metrics = createMetrics(source, levels, breakerState, limits);
  // Every series whose labels are known up front exists at 0 from the start, so a dashboard or
  // an alert can rate it before the first event.
  for (const signal of ['traces', 'logs']) {
    metrics.exported.inc({ signal }, 0);
    metrics.batchSplits.inc({ signal }, 0);
    for (const kind of ['retryable', 'permanent', 'unauthorized']) metrics.exportFailures.inc({ signal, kind }, 0);
  }
  for (const reason of ['memory_full', 'disk_full', 'rejected']) metrics.dropped.inc({ reason }, 0);
  return metrics;
}

function createMetrics(source: string, levels: () => BufferLevels, breakerState: () => number, limits?: BufferLimits) {
  const registry = new Registry();
  registry.setDefaultLabels({ agent: source });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    received: new Counter({ name: 'bitville_agent_events_received_total', help: 'Events accepted from capture code.', registers }),
    malformed: new Counter({ name: 'bitville_agent_events_malformed_total', help: 'Inputs refused as malformed (bad datagram, bad event).', labelNames: ['reason'], registers }),
    exported: new Counter({ name: 'bitville_agent_events_exported_total', help: 'Events the collector acknowledged with a 2xx.', labelNames: ['signal'], registers }),
    dropped: new Counter({
      name: 'bitville_agent_events_dropped_total',
      help: 'Events lost: memory_full / disk_full (oldest dropped), rejected (permanent 4xx or partial success).',
      labelNames: ['reason'],
      registers,
    }),
    exportFailures: new Counter({
      name: 'bitville_agent_export_failures_total',
      help: 'Failed export requests, by kind (retryable, permanent, unauthorized).',
      labelNames: ['signal', 'kind'],
      registers,
    }),
    batchSplits: new Counter({
      name: 'bitville_agent_export_batch_splits_total',
      help: 'Batches refused as a whole (400, 413) and split in halves to isolate the bad events.',
      labelNames: ['signal'],
      registers,
    }),
    unauthorized: new Gauge({
      name: 'bitville_agent_exporter_unauthorized',
      help: '1 while the collector refuses the exporter\'s credentials (401/403; data is kept), else 0.',
      registers,
    }),
    buffered: new Gauge({
      name: 'bitville_agent_buffered_events',
      help: 'Events waiting for export, by tier (memory, disk).',
      labelNames: ['tier'],
      registers,
      collect() {
        const l = levels();
        this.set({ tier: 'memory' }, l.memoryEvents);
        this.set({ tier: 'disk' }, l.diskEvents);
      },
    }),
    bufferedBytes: new Gauge({
      name: 'bitville_agent_buffered_bytes',
      help: 'Serialized size of the events waiting for export, by tier (memory, disk).',
      labelNames: ['tier'],
      registers,
      collect() {
        const l = levels();
        this.set({ tier: 'memory' }, l.memoryBytes);
        this.set({ tier: 'disk' }, l.diskBytes);
      },
    }),
    // The bound beside the level, so "buffer over 80% full" is one division in an alert rule.
    bufferLimit: new Gauge({
      name: 'bitville_agent_buffer_limit_bytes',
      help: 'Configured bound of each tier (buffer.memory_limit, buffer.disk_limit); past it the oldest events are dropped.',
      labelNames: ['tier'],
      registers,
      collect() {
        if (!limits) return;
        this.set({ tier: 'memory' }, limits.memoryBytes);
        this.set({ tier: 'disk' }, limits.diskBytes);
      },
    }),
    breaker: new Gauge({
      name: 'bitville_agent_exporter_breaker_state',
      help: 'Export circuit breaker: 0 closed, 1 open, 2 half-open.',
      registers,
      collect() {
        this.set(breakerState());
      },
    }),
  };
}

export type AgentMetrics = ReturnType<typeof agentMetrics>;

/** Serves GET /metrics; resolves with the bound URL once listening. */
export async function serveMetrics(registry: Registry, address: string): Promise<{ server: Server; url: string }> {
  const { host, port } = parseHostPort(address);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { server, url: `http://${shownHost}:${bound.port}/metrics` };
}
