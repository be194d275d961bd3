// The sample production configs in deploy/ load with the real loaders, and agree with the
// systemd units: the paths the configs name are the directories the units create.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { loadAgentConfig } from '../agents/runtime/index.js';
import { pgAgentSchema } from '../agents/pg/config.js';
import { loadPhpAgentConfig } from '../agents/php/config.js';
import { repoRoot } from './env.js';
import { CLI } from './process.js';

const deploy = (...p: string[]) => join(repoRoot, 'deploy', ...p);
const unitSetting = (unit: string, key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(readFileSync(deploy('systemd', unit), 'utf8'))?.[1];

/** Runs fn with env vars set (the loaders read process.env), restoring them after. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  }
}

test('deploy/otel-config.yaml passes `bitville validate` with the token set, and names the token when it is not', () => {
  const env: NodeJS.ProcessEnv = { ...process.env, BITVILLE_TOKEN: 'x' };
  delete env.BITVILLE_GELF_ENDPOINT;
  const valid = spawnSync(process.execPath, [CLI, 'validate', '--config', deploy('otel-config.yaml')], { encoding: 'utf8', env });
  assert.equal(valid.status, 0, valid.stderr);
  assert.match(valid.stdout, /otel-config\.yaml: valid/);
  delete env.BITVILLE_TOKEN;
  const missing = spawnSync(process.execPath, [CLI, 'validate', '--config', deploy('otel-config.yaml')], { encoding: 'utf8', env });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /otel-config\.yaml:\d+: receivers\.otlp\.protocols\.http\.auth\.bearer_token: environment variable BITVILLE_TOKEN is not set/);
});

test('the collector config keeps its store in the unit\'s StateDirectory and serves /metrics where Prometheus scrapes', () => {
  const config = parse(readFileSync(deploy('otel-config.yaml'), 'utf8'));
  assert.equal(unitSetting('bitville-collector.service', 'StateDirectory'), 'bitville/collector');
  assert.match(config.storage.sqlite.path, /^\/var\/lib\/bitville\/collector\//);
  assert.match(unitSetting('bitville-collector.service', 'ExecStart')!, / --config \/etc\/bitville\/otel-config\.yaml$/);
  const scrape = readFileSync(deploy('prometheus', 'prometheus.yml'), 'utf8');
  assert.ok(scrape.includes(`'${config.service.telemetry.metrics.address}'`), 'prometheus.yml scrapes the collector');
});

test('deploy/php-agent.yaml loads with the php-agent loader; socket and buffer live in the unit\'s directories', () => {
  const config = withEnv({ BITVILLE_TOKEN: 't0ken', BITVILLE_PROJECT: undefined }, () => loadPhpAgentConfig(deploy('php-agent.yaml')));
  assert.equal(config.project, 'shop');
  assert.equal(config.exporter.token, 't0ken');
  assert.equal(config.socket.path, '/run/bitville/php-agent.sock');
  assert.equal(config.socket.mode, 0o660);
  assert.equal(unitSetting('bitville-php-agent.service', 'RuntimeDirectory'), 'bitville');
  assert.equal(config.buffer.path, '/var/lib/bitville/php-agent/buffer.db');
  assert.equal(unitSetting('bitville-php-agent.service', 'StateDirectory'), 'bitville/php-agent');
  assert.match(unitSetting('bitville-php-agent.service', 'ExecStart')!, / --config \/etc\/bitville\/php-agent\.yaml$/);
  assert.ok(readFileSync(deploy('prometheus', 'prometheus.yml'), 'utf8').includes(`'${config.metrics.address}'`), 'prometheus.yml scrapes the php-agent');
});

test('deploy/pg-agent.yaml loads with the pg-agent loader; the buffer lives in the unit\'s StateDirectory', () => {
  const config = withEnv({ BITVILLE_TOKEN: 't0ken', BITVILLE_PROJECT: undefined, BITVILLE_PG_DSN: undefined }, () => loadAgentConfig(deploy('pg-agent.yaml'), pgAgentSchema));
  assert.equal(config.postgres.dsn, 'postgres:///shop?host=/var/run/postgresql');
  assert.equal(config.buffer.path, '/var/lib/bitville/pg-agent/buffer.db');
  assert.equal(unitSetting('bitville-pg-agent.service', 'StateDirectory'), 'bitville/pg-agent');
  assert.equal(unitSetting('bitville-pg-agent.service', 'User'), 'bitville_monitor');
  assert.match(unitSetting('bitville-pg-agent.service', 'ExecStart')!, / --config \/etc\/bitville\/pg-agent\.yaml$/);
  assert.ok(readFileSync(deploy('prometheus', 'prometheus.yml'), 'utf8').includes(`'${config.metrics.address}'`), 'prometheus.yml scrapes the pg-agent');
});

test('an agent config without the token variable is refused, naming file, line and variable', () => {
  assert.throws(
    () => withEnv({ BITVILLE_TOKEN: undefined }, () => loadPhpAgentConfig(deploy('php-agent.yaml'))),
    /php-agent\.yaml:\d+: .*BITVILLE_TOKEN/,
  );
});
