// The Export responses of the three OTLP signals, shared by OTLP/HTTP and OTLP/gRPC: the same
// message, with partial_success filled when some records were refused.
import type { Signal } from '../../collector/core/api.js';
import { opentelemetry, google } from '../../proto/generated/otlp.js';
import type { Flattened } from './decode.js';

const { ExportTraceServiceResponse } = opentelemetry.proto.collector.trace.v1;
const { ExportLogsServiceResponse } = opentelemetry.proto.collector.logs.v1;
const { ExportMetricsServiceResponse } = opentelemetry.proto.collector.metrics.v1;

/** The response object (OTLP/JSON shape, which protobufjs encodes as is); {} when all was taken. */
export function exportResponse(signal: Signal, flat: Flattened<unknown>): { partialSuccess?: Record<string, unknown> } {
  if (!flat.rejected) return {};
  const count = signal === 'traces' ? 'rejectedSpans' : signal === 'logs' ? 'rejectedLogRecords' : 'rejectedDataPoints';
  return { partialSuccess: { [count]: flat.rejected, errorMessage: flat.error } };
}

export function encodeExportResponse(signal: Signal, flat: Flattened<unknown>): Buffer {
  const Response = signal === 'traces' ? ExportTraceServiceResponse : signal === 'logs' ? ExportLogsServiceResponse : ExportMetricsServiceResponse;
  const bytes = Response.encode(exportResponse(signal, flat) as never).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** google.rpc.Status, with a google.rpc.RetryInfo in its details when a retry delay is given. */
export function encodeStatus(code: number, message: string, retryAfterMs?: number): Buffer {
  const details = [];
  if (retryAfterMs !== undefined) {
    const retry = google.rpc.RetryInfo.encode({
      retryDelay: { seconds: Math.floor(retryAfterMs / 1000), nanos: (retryAfterMs % 1000) * 1_000_000 },
    }).finish();
    details.push({ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: retry });
  }
  const bytes = google.rpc.Status.encode({ code, message, details }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
