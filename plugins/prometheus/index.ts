// The `prometheus` exporter: serves the latest value of every received metric series at
// GET /metrics for Prometheus to scrape (the OpenTelemetry Collector's component of the same
// name and config shape). It is fed from the store like every exporter, so a point is scraped
// only once it is committed; the series themselves live in memory, as in otelcol, and fill
// again from new points after a restart.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defineExporter, parseHostPort } from '../../collector/core/api.js';
import type { Exporter, ExporterContext, ExportResult, StoredRecord } from '../../collector/core/api.js';
import { SeriesTable } from './series.js';

export const factory = defineExporter({
  kind: 'exporter',
  type: 'prometheus',
  configSchema: (z, h) =>
    z.strictObject({
      /** Address of the scrape endpoint (GET /metrics). */
      endpoint: h.hostPort().default('127.0.0.1:8889'),
      /** Prefix for every metric name (`namespace_name`). */
      namespace: z.string().default(''),
      /** Labels added to every series. */
      const_labels: z.record(z.string(), z.string()).default({}),
      /** Add each sample's own timestamp to the exposition. */
      send_timestamps: z.boolean().default(false),
      /** Series without a new point for this long are no longer served. */
      metric_expiration: h.duration().default(5 * 60 * 1000),
      /** Unit and `_total` suffixes on names, as the OpenTelemetry-to-Prometheus rules add them. */
      add_metric_suffixes: z.boolean().default(true),
      /** Copy every resource attribute onto every series (they are in `target_info` anyway). */
      resource_to_telemetry_conversion: z.strictObject({ enabled: z.boolean().default(false) }).prefault({}),
    }),
  create: (config, ctx) => new PrometheusExporter(config, ctx),
});

export default factory;

type Config = {
  endpoint: string;
  namespace: string;
  const_labels: Record<string, string>;
  send_timestamps: boolean;
  metric_expiration: number;
  add_metric_suffixes: boolean;
  resource_to_telemetry_conversion: { enabled: boolean };
};

class PrometheusExporter implements Exporter {
  readonly batchSize = 2000;
  readonly #config: Config;
  readonly #ctx: ExporterContext;
  readonly #table: SeriesTable;
  readonly #server: Server;
  readonly #points: { inc(n?: number): void };
  readonly #conflicts: { inc(n?: number): void };
  readonly #scrapes: { inc(n?: number): void };
  #warnedConflict = new Set<string>();

  constructor(config: Config, ctx: ExporterContext) {
    this.#config = config;
    this.#ctx = ctx;
    this.#table = new SeriesTable({
      namespace: config.namespace,
      addMetricSuffixes: config.add_metric_suffixes,
      constLabels: config.const_labels,
      resourceToLabels: config.resource_to_telemetry_conversion.enabled,
      expirationMs: config.metric_expiration,
    });
    const m = ctx.metrics;
    this.#points = m.counter('bitville_exporter_prometheus_points', 'Metric points taken into the served series.');
    this.#conflicts = m.counter('bitville_exporter_prometheus_type_conflicts', 'Metric points dropped: their name is already served with another type.');
    this.#scrapes = m.counter('bitville_exporter_prometheus_scrapes', 'Scrapes of the exporter endpoint.');
    m.gauge('bitville_exporter_prometheus_series', 'Series served.', () => this.#table.seriesCount);
    if (!ctx.signals.includes('metrics') || ctx.signals.length > 1) {
      ctx.logger.warn({ signals: ctx.signals }, 'the prometheus exporter serves metrics only; put it in the metrics pipeline alone');
    }
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' || path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('the scrape endpoint is GET /metrics\n');
        return;
      }
      this.#scrapes.inc();
      this.#table.expire(Date.now());
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(this.#table.render(this.#config.send_timestamps));
    });
  }

  async start(): Promise<void> {
    const { host, port } = parseHostPort(this.#config.endpoint);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#ctx.logger.info({ url: `http://${shown}:${address.port}/metrics`, port: address.port }, 'Prometheus exporter listening');
  }

  async shutdown(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async export(batch: StoredRecord[]): Promise<ExportResult> {
    const now = Date.now();
    let taken = 0;
    for (const record of batch) {
      if (record.kind !== 'metric') continue;
      const result = this.#table.add(record, now);
      if (result === 'type_conflict') {
        this.#conflicts.inc();
        if (!this.#warnedConflict.has(record.name)) {
          this.#warnedConflict.add(record.name);
          this.#ctx.logger.warn({ metric: record.name, type: record.metricType }, 'metric dropped: its Prometheus name is already served with another type');
        }
      } else {
        taken++;
      }
    }
    this.#points.inc(taken);
    return { kind: 'success' };
  }
}
