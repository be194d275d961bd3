// The Prometheus alert rules in deploy/prometheus: promtool accepts them and their unit tests
// pass, every alert has a test that makes it fire, and every metric a rule reads is one a real
// collector or agent serves on /metrics (names checked against live scrapes, not a list).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { daemonConfig, startDaemon } from '../agents/php/harness.fixture.js';
import { startCollector } from './collector.js';
import { repoRoot, tempDir } from './env.js';
import { refusedPort } from './agent-check.fixture.js';
import { declaredNames } from './prometheus-text.fixture.js';

const DIR = join(repoRoot, 'deploy', 'prometheus');

function promtoolMissing(): string | undefined {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'promtool is not installed (Debian package prometheus; .ci/run extracts promtool alone from it)';
  }
}

function promtool(...args: string[]) {
  return spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' });
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rules: Rule[] = parse(readFileSync(join(DIR, 'bitville-alerts.yaml'), 'utf8')).groups.flatMap((g: { rules: Rule[] }) => g.rules);

test('promtool check rules accepts bitville-alerts.yaml, and check config the sample prometheus.yml', (t) => {
  const missing = promtoolMissing();
  if (missing) return t.skip(missing);
  const check = promtool('check', 'rules', 'bitville-alerts.yaml');
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  const config = promtool('check', 'config', 'prometheus.yml');
  assert.equal(config.status, 0, config.stdout + config.stderr);
});

test('promtool test rules: every rule unit test in bitville-alerts.test.yaml passes', (t) => {
  const missing = promtoolMissing();
  if (missing) return t.skip(missing);
  const run = promtool('test', 'rules', 'bitville-alerts.test.yaml');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /SUCCESS/);
});

test('every alert has a unit test in which it fires', () => {
  const tests = parse(readFileSync(join(DIR, 'bitville-alerts.test.yaml'), 'utf8')).tests as { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  const firing = new Set(tests.flatMap((c) => (c.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
  const alerts = rules.filter((r) => r.alert).map((r) => r.alert!);
  assert.deepEqual(alerts.filter((a) => !firing.has(a)), []);
  for (const name of [
    'BitvilleCollectorDown',
    'BitvilleAgentDown',
    'BitvilleAgentBufferFilling',
    'BitvilleAgentDroppingEvents',
    'BitvilleCollectorDroppingRecords',
    'BitvilleGelfBreakerOpen',
    'BitvilleExportQueueGrowing',
    'BitvilleStoreNearlyFull',
    'BitvilleRetentionNotRunning',
    'BitvilleStoreCannotCommit',
  ]) {
    assert.ok(alerts.includes(name), `${name} is defined`);
  }
});

test('every metric the rules read is served by a live collector or agent', async (t) => {
  const gelfPort = await refusedPort();
  const collector = await startCollector(t, {
    config: {
      processors: { correlate: {} },
      exporters: { gelf: { endpoint: `tcp://127.0.0.1:${gelfPort}` } },
      service: { pipelines: { traces: { processors: ['correlate'], exporters: ['gelf'] }, logs: { exporters: ['gelf'] } } },
    },
  });
  const dir = tempDir(t);
  const daemon = await startDaemon(t, { ...daemonConfig(dir, collector.otlpUrl), buffer: { path: join(dir, 'php-agent.db'), disk_limit: '64MiB' } });
  const collectorText = await (await fetch(`${collector.adminUrl}/metrics`)).text();
  const agentText = await (await fetch(daemon.metricsUrl)).text();
  const served = new Set([...declaredNames(collectorText), ...declaredNames(agentText), 'up']);

  const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record!));
  const used = new Set(rules.flatMap((r) => [...r.expr.matchAll(/\b[a-z_][a-z0-9_:]*(?=\s*[{[)\s/]|$)/g)].map((m) => m[0])));
  const metricNames = [...used].filter((n) => /^(bitville|otelcol)_/.test(n) || n === 'up' || recorded.has(n));
  assert.ok(metricNames.length >= 15, `found the metric names in the rules: ${metricNames.join(', ')}`);
  assert.deepEqual(metricNames.filter((n) => !served.has(n) && !recorded.has(n)), [], 'metrics read by a rule but not served');

  // The metrics added for the rules carry real values from the start.
  const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
  const lastRun = value(collectorText, 'bitville_store_limits_last_run_timestamp_seconds{store="sqlite"}');
  assert.ok(Math.abs(Date.now() / 1000 - lastRun) < 120, `retention ran at start (last run ${lastRun})`);
  assert.equal(value(collectorText, 'bitville_store_commit_failures_total{store="sqlite"}'), 0);
  assert.equal(value(agentText, 'bitville_agent_buffer_limit_bytes{tier="disk",agent="php_agent"}'), 64 * 1024 * 1024);
  assert.equal(value(agentText, 'bitville_agent_buffer_limit_bytes{tier="memory",agent="php_agent"}'), 10 * 1024 * 1024);
});
