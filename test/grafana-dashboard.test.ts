// deploy/grafana/bitville.json is built only from metrics that exist: every metric name in its
// PromQL (panels and variables) is declared by a live collector's or php-agent daemon's
// /metrics (histograms by their _bucket, _sum and _count series), and it covers what an
// operator needs to see.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { daemonConfig, startDaemon } from '../agents/php/harness.fixture.js';
import { startCollector } from './collector.js';
import { repoRoot, tempDir } from './env.js';
import { refusedPort } from './agent-check.fixture.js';
import { declaredNames } from './prometheus-text.fixture.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { uid: string };
  targets?: { expr: string; refId: string }[];
}
const dashboard = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'grafana', 'bitville.json'), 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; definition?: string }[] };
};

const exprs = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.flatMap((v) => (v.definition ? [v.definition] : [])),
];
/** Identifiers of this project's metrics (and `up`) in the PromQL; labels and functions are not metric names. */
const usedNames = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(?:bitville|otelcol)_[a-z0-9_]+\b|\bup(?=\{)/g)].map((m) => m[0])));

test('the dashboard is well formed: unique panel ids, every query on the datasource variable', () => {
  assert.equal(dashboard.uid, 'bitville-pipeline');
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
  for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
    assert.ok(p.targets && p.targets.length > 0, `${p.title} has queries`);
    assert.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the datasource variable`);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
    assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: unique refIds`);
  }
  // What an operator needs on one screen (issue 15): each topic by the metric that shows it.
  for (const name of [
    'otelcol_receiver_accepted_spans',
    'otelcol_receiver_refused_log_records',
    'otelcol_exporter_sent_log_records',
    'otelcol_exporter_send_failed_spans',
    'otelcol_exporter_queue_size',
    'bitville_gelf_circuit_breaker_state',
    'bitville_store_size_bytes',
    'bitville_store_max_size_bytes',
    'bitville_store_commit_failures_total',
    'bitville_processing_duration_seconds_bucket',
    'bitville_agent_buffered_bytes',
    'bitville_agent_buffer_limit_bytes',
    'bitville_agent_events_dropped_total',
  ]) {
    assert.ok(usedNames.has(name), `the dashboard shows ${name}`);
  }
  for (const q of [0.5, 0.95, 0.99]) assert.ok(exprs.some((e) => e.startsWith(`histogram_quantile(${q},`)), `p${q * 100} latency`);
});

test('every metric the dashboard reads is served by a live collector or php-agent daemon', async (t) => {
  const gelfPort = await refusedPort();
  const collector = await startCollector(t, {
    config: {
      // The health processor's own series are on the dashboard too; its scrape target does not matter here.
      processors: { health: { metrics_endpoint: `127.0.0.1:${gelfPort}` } },
      exporters: { gelf: { endpoint: `tcp://127.0.0.1:${gelfPort}` } },
      service: { pipelines: { traces: { exporters: ['gelf'] }, logs: { processors: ['health'], exporters: ['gelf'] } } },
    },
  });
  const dir = tempDir(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const served = new Set([
    ...declaredNames(await (await fetch(`${collector.adminUrl}/metrics`)).text()),
    ...declaredNames(await (await fetch(daemon.metricsUrl)).text()),
    'up',
  ]);
  assert.ok(usedNames.size >= 40, `metric names found in the dashboard: ${[...usedNames].join(', ')}`);
  assert.deepEqual([...usedNames].filter((n) => !served.has(n)), [], 'metrics on the dashboard that no live /metrics serves');
});
