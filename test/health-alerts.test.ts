// The `health` processor end to end, with a real collector: stopping the GELF receiver for
// longer than breaker_open_for stores an `alert` record (firing) and, once Graylog is back, a
// `resolved` one, and both reach Graylog as `_kind: alert` with `level` the syslog severity.
// An agent whose heartbeats stop fires agent_silent, and resolves when it beats again.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { TcpReceiver } from '../plugins/gelf/receivers.fixture.js';
import { eventually, readStore, startCollector, type StoredRow } from './collector.js';

/** A loopback port free now: the health processor must be told the admin port before the collector starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function otlpLog(eventName: string, resource: Record<string, string>) {
  const nanos = `${Date.now()}000000`;
  return {
    resourceLogs: [
      {
        resource: { attributes: Object.entries(resource).map(([key, v]) => ({ key, value: { stringValue: v } })) },
        scopeLogs: [{ logRecords: [{ timeUnixNano: nanos, severityNumber: 9, body: { stringValue: eventName || 'hello' }, eventName }] }],
      },
    ],
  };
}

async function post(url: string, body: unknown): Promise<void> {
  const response = await fetch(`${url}/v1/logs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(response.status, 200, await response.text());
}

const alerts = (dbPath: string, name: string, state: string): StoredRow[] =>
  readStore(dbPath).filter((r) => r.record.eventName === 'bitville.alert' && r.record.attributes['bitville.alert.name'] === name && r.record.attributes['bitville.alert.state'] === state);

test('GELF receiver down past the threshold: an alert record fires, and resolves when it is back', async (t) => {
  const graylog = await TcpReceiver.start();
  const gelfPort = graylog.port;
  await graylog.close();
  const adminPort = await freePort();
  const collector = await startCollector(t, {
    config: {
      processors: {
        health: { metrics_endpoint: `127.0.0.1:${adminPort}`, interval: '100ms', breaker_open_for: '400ms', agent_silence: '600ms' },
      },
      exporters: {
        gelf: { endpoint: `tcp://127.0.0.1:${gelfPort}`, retry_delay: '50ms', confirm_window: '50ms', circuit_breaker: { failure_threshold: 1, reset_timeout: '300ms' } },
      },
      service: {
        pipelines: { logs: { processors: ['health'], exporters: ['gelf'] } },
        telemetry: { metrics: { address: `127.0.0.1:${adminPort}` } },
      },
    },
  });
  t.after(() => graylog.close());

  await post(collector.otlpUrl, otlpLog('', { 'service.name': 'shop' }));
  const [firing] = await eventually(() => {
    const found = alerts(collector.dbPath, 'gelf_breaker_open', 'firing');
    return found.length ? found : undefined;
  }, 20_000, 'a firing gelf_breaker_open alert in the store');
  assert.equal(firing!.kind, 'log');
  assert.equal(firing!.record.attributes['bitville.alert.subject'], 'gelf');
  assert.equal(firing!.record.attributes['bitville.alert.severity'], 'critical');
  assert.equal(firing!.record.attributes['bitville.kind'], 'alert');
  assert.equal(firing!.record.resource['bitville.source'], 'collector');
  assert.equal(firing!.record.severityNumber, 21);
  assert.match(firing!.record.body, /^FIRING gelf_breaker_open gelf: /);

  // Graylog comes back on the same port: the half-open probe succeeds, the breaker closes.
  await graylog.listen({ port: gelfPort });
  const [resolved] = await eventually(() => {
    const found = alerts(collector.dbPath, 'gelf_breaker_open', 'resolved');
    return found.length ? found : undefined;
  }, 20_000, 'a resolved gelf_breaker_open alert in the store');
  assert.ok(resolved!.id > firing!.id);
  assert.equal(resolved!.record.severityNumber, 9);
  assert.equal(typeof resolved!.record.attributes['bitville.alert.duration_s'], 'number');
  assert.equal(alerts(collector.dbPath, 'gelf_breaker_open', 'firing').length, 1, 'fired once for one outage');

  // Both reach Graylog, found by `kind:alert` (the stored records wait out the outage and replay).
  const gelf = await eventually(() => {
    const found = graylog.messages.filter((m) => m._kind === 'alert' && m._alert_name === 'gelf_breaker_open');
    return found.length >= 2 ? found : undefined;
  }, 20_000, 'both alert messages at the GELF receiver');
  const byState = Object.fromEntries(gelf.map((m) => [m._alert_state, m]));
  assert.equal(byState.firing!.level, 2, 'critical');
  assert.equal(byState.resolved!.level, 6, 'informational');
  assert.equal(byState.firing!._source, 'collector');
  assert.equal(byState.firing!._alert_subject, 'gelf');
  assert.equal(byState.firing!.short_message, 'collector - bitville');
});

test('an agent that stops sending heartbeats fires agent_silent, and resolves when it beats again', async (t) => {
  const adminPort = await freePort();
  const collector = await startCollector(t, {
    config: {
      processors: { health: { metrics_endpoint: `127.0.0.1:${adminPort}`, interval: '100ms', agent_silence: '500ms' } },
      service: { pipelines: { logs: { processors: ['health'] } }, telemetry: { metrics: { address: `127.0.0.1:${adminPort}` } } },
    },
  });
  const agent = { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent' };
  await post(collector.otlpUrl, otlpLog('bitville.heartbeat', agent));
  const [firing] = await eventually(() => {
    const found = alerts(collector.dbPath, 'agent_silent', 'firing');
    return found.length ? found : undefined;
  }, 10_000, 'a firing agent_silent alert');
  assert.equal(firing!.record.attributes['bitville.alert.subject'], 'php_agent/shop@web-1');
  assert.equal(alerts(collector.dbPath, 'agent_silent', 'resolved').length, 0);

  await post(collector.otlpUrl, otlpLog('bitville.heartbeat', agent));
  await eventually(() => (alerts(collector.dbPath, 'agent_silent', 'resolved').length === 1 ? true : undefined), 10_000, 'a resolved agent_silent alert');
  const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
  assert.match(metrics, /^bitville_health_heartbeats_total\{processor="health"\} 2$/m);
});
