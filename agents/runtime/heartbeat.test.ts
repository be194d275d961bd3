// The agent heartbeat: a log record with the agent's own counters every heartbeat_interval,
// exported like any event but never counted as a received event; 0 turns it off.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { tempDir } from '../../test/env.js';
import { parseAgentConfig, runtimeConfigShape } from './config.js';
import { AgentRuntime } from './runtime.js';
import { testSpan } from './events.fixture.js';
import { attrs, startOtlpSink } from './otlp-sink.fixture.js';

const schema = z.strictObject(runtimeConfigShape({ bufferPath: '/nonexistent/buffer.db', metricsAddress: '127.0.0.1:0' }));

function config(dir: string, endpoint: string, heartbeat: string) {
  return parseAgentConfig('test.yaml', {
    project: 'shop',
    host_name: 'web-1',
    heartbeat_interval: heartbeat,
    exporter: { endpoint },
    batch: { max_events: 1, timeout: '20ms' },
    buffer: { path: join(dir, 'buffer.db'), persist_interval: '10ms' },
  }, schema);
}

test('an agent sends a heartbeat with its counters every heartbeat_interval', async (t) => {
  const sink = await startOtlpSink(t);
  const runtime = new AgentRuntime({ source: 'php_agent', config: config(tempDir(t), sink.url, '150ms'), scope: { name: 'bitville.test', version: '1' } });
  await runtime.start();
  t.after(() => runtime.stop());
  runtime.submit(testSpan(1));
  runtime.submit(testSpan(2));
  await sink.until(() => sink.spans().length === 2);
  const heartbeats = () => sink.logRecords().filter((l) => l.eventName === 'bitville.heartbeat');
  // The first heartbeat may predate the spans' export; wait for one that counts them (exported
  // heartbeats count as exported events too, so later ones count more).
  const counted = () => heartbeats().find((h) => (attrs(h.attributes)['bitville.agent.events_exported'] as number) >= 2);
  await sink.until(() => counted() !== undefined);
  const beat = counted()!;
  const a = attrs(beat.attributes);
  assert.equal(a['bitville.kind'], 'heartbeat');
  assert.equal(a['bitville.agent.events_received'], 2, 'heartbeats are not counted as received events');
  assert.equal(a['bitville.agent.events_dropped'], 0);
  assert.equal(a['bitville.heartbeat.interval_s'], 0.15);
  assert.equal(typeof a['bitville.agent.buffer_disk_fill'], 'number');
  assert.equal(beat.severityNumber, 9);
  const request = sink.requests.find((r) => r.logs)!;
  assert.deepEqual(attrs(request.logs!.resourceLogs[0]!.resource!.attributes), { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent' });
  const text = await (await fetch(runtime.metricsUrl)).text();
  assert.match(text, /^bitville_agent_events_received_total\{agent="php_agent"\} 2$/m);
});

test('heartbeat_interval 0 sends none', async (t) => {
  const sink = await startOtlpSink(t);
  const runtime = new AgentRuntime({ source: 'pg_agent', config: config(tempDir(t), sink.url, '0s'), scope: { name: 'bitville.test', version: '1' } });
  await runtime.start();
  t.after(() => runtime.stop());
  runtime.submit(testSpan(1));
  await sink.until(() => sink.spans().length === 1);
  // A public heartbeat() call is how a timer would queue one; with the interval at 0 no timer
  // exists, so after the span's export the sink has seen no log at all.
  await runtime.drained();
  assert.equal(sink.logRecords().length, 0);
});
