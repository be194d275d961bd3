// The receiver's per-signal counters, shared by the HTTP and gRPC transports: one receiver id,
// so one series each, counting both transports together.
import type { ComponentMetrics, Counter, Signal } from '../../collector/core/api.js';

export interface SignalCounters {
  accepted: Record<Signal, Counter>;
  refused: Record<Signal, Counter>;
}

export function signalCounters(m: ComponentMetrics): SignalCounters {
  return {
    accepted: {
      traces: m.counter('otelcol_receiver_accepted_spans', 'Spans committed to storage.'),
      logs: m.counter('otelcol_receiver_accepted_log_records', 'Log records committed to storage.'),
      metrics: m.counter('otelcol_receiver_accepted_metric_points', 'Metric data points committed to storage.'),
    },
    refused: {
      traces: m.counter('otelcol_receiver_refused_spans', 'Spans refused (bad data, or rejected in partial_success).'),
      logs: m.counter('otelcol_receiver_refused_log_records', 'Log records refused (bad data, or rejected in partial_success).'),
      metrics: m.counter('otelcol_receiver_refused_metric_points', 'Metric data points refused (bad data, or rejected in partial_success).'),
    },
  };
}
