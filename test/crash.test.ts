// Nothing acknowledged is lost across kill -9: every span whose request got its 2xx is in the
// store after a restart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { opentelemetry } from '../proto/generated/otlp.js';
import { readStore, startCollector } from './collector.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;

test('spans acknowledged right before SIGKILL are all in the store after a restart', async (t) => {
  const first = await startCollector(t);
  const batches = 40;
  const perBatch = 50;
  const send = async (b: number) => {
    const body = ExportTraceServiceRequest.encode({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: Array.from({ length: perBatch }, (_, i) => ({
                traceId: Buffer.alloc(16, b + 1),
                spanId: Buffer.from((b * perBatch + i + 1).toString(16).padStart(16, '0'), 'hex'),
                name: `b${b}`,
                startTimeUnixNano: 1,
                endTimeUnixNano: 2,
              })),
            },
          ],
        },
      ],
    }).finish();
    const res = await fetch(`${first.otlpUrl}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } });
    await res.arrayBuffer();
    return res.status;
  };
  // Eight senders at a time (under the receiver's in-flight bound); kill the moment the last
  // acknowledgement arrives.
  const statuses: number[] = [];
  for (let b = 0; b < batches; b += 8) statuses.push(...(await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => send(b + i)))));
  await first.kill();
  const acknowledged = statuses.filter((s) => s === 200).length * perBatch;
  assert.equal(acknowledged, batches * perBatch, `all requests acknowledged (statuses: ${[...new Set(statuses)]})`);

  const second = await startCollector(t, { dir: first.dir });
  const rows = readStore(second.dbPath);
  assert.equal(rows.length, acknowledged);
  assert.equal(new Set(rows.map((r) => r.record.spanId)).size, acknowledged);
  await second.stop();
});
