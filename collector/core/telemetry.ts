// Self-telemetry: one pino logger (structured JSON) and one prom-client registry per collector
// process. Components get views of both, labelled with their id.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import client from 'prom-client';
import type { ComponentKind, ComponentMetrics, Counter, Gauge, Histogram } from './api.js';

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  // Plain JSON on stdout, one line per event; `time` as ISO text so logs read well unparsed.
  return pino({ level, base: { service: 'bitville' }, timestamp: pino.stdTimeFunctions.isoTime });
}

export class Telemetry {
  readonly registry = new client.Registry();

  constructor(readonly logger: Logger) {
    // prom-client's names already say what they are (process_cpu_seconds_total, nodejs_heap_...).
    client.collectDefaultMetrics({ register: this.registry, prefix: 'bitville_' });
  }

  /** Metrics for one component: the label is the component kind, the value its id. */
  forComponent(kind: ComponentKind | 'store', id: string): ComponentMetrics {
    return {
      counter: (name, help) => {
        // A series exists at 0 from the start, so a dashboard can rate it before the first event.
        const child = this.#metric(client.Counter, name, help, kind).labels(id);
        child.inc(0);
        return child as Counter;
      },
      gauge: (name, help, collect) => {
        const gauge = this.#metric(client.Gauge, name, help, kind);
        const child = gauge.labels(id);
        if (collect) this.#collectors.set(`${name}|${id}`, () => child.set(collect()));
        return child as Gauge;
      },
      histogram: (name, help, buckets) => this.#metric(client.Histogram, name, help, kind, buckets).labels(id) as Histogram,
    };
  }

  #collectors = new Map<string, () => void>();

  // One metric object per name; each component adds its own labelled series to it.
  #metric<M extends client.Counter | client.Gauge | client.Histogram>(
    Type: new (config: any) => M,
    name: string,
    help: string,
    label: string,
    buckets?: number[],
  ): M {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as M;
    const collectors = this.#collectors;
    const config: Record<string, unknown> = { name, help, labelNames: [label], registers: [this.registry] };
    if (buckets) config.buckets = buckets;
    if (Type === (client.Gauge as unknown)) {
      config.collect = () => {
        for (const [key, collect] of collectors) if (key.startsWith(`${name}|`)) collect();
      };
    }
    return new Type(config);
  }

  metricsText(): Promise<string> {
    return this.registry.metrics();
  }
}
