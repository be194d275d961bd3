// Test support: a real OTLP/HTTP endpoint on loopback that decodes what agents send and answers
// what the test scripts (2xx by default), so retry, rejection and replay can be exercised.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { opentelemetry } from '../../proto/generated/otlp.js';

export interface ReceivedRequest {
  signal: 'traces' | 'logs';
  headers: IncomingMessage['headers'];
  traces?: opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
  logs?: opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest;
}

export type Responder = (req: ReceivedRequest, res: ServerResponse) => boolean | void;

export async function startOtlpSink(t: TestContext) {
  const requests: ReceivedRequest[] = [];
  let responder: Responder | undefined;
  const listeners: (() => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const signal = req.url === '/v1/logs' ? 'logs' : 'traces';
      const received: ReceivedRequest = { signal, headers: req.headers };
      if (signal === 'traces') received.traces = opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.decode(body);
      else received.logs = opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest.decode(body);
      if (responder?.(received, res)) return;
      requests.push(received);
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      for (const l of listeners.splice(0)) l();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  const spans = () => requests.flatMap((r) => r.traces?.resourceSpans.flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? [])) ?? []);
  const logRecords = () => requests.flatMap((r) => r.logs?.resourceLogs.flatMap((rl) => (rl.scopeLogs ?? []).flatMap((sl) => sl.logRecords ?? [])) ?? []);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    spans,
    logRecords,
    /** Decide the answer per request: write a response and return true to refuse it (not recorded). */
    respond(r: Responder | undefined) {
      responder = r;
    },
    /** Resolves once `predicate` holds after some accepted request (checked now and after each). */
    async until(predicate: () => boolean): Promise<void> {
      while (!predicate()) await new Promise<void>((resolve) => listeners.push(resolve));
    },
  };
}

/** Attribute list to a plain object (for assertions). */
export function attrs(list: opentelemetry.proto.common.v1.IKeyValue[] | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key!] = v.stringValue ?? v.boolValue ?? (v.intValue != null ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.arrayValue;
  }
  return out;
}
