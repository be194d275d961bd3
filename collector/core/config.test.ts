// Config loading: defaults, env expansion, and errors that name file, line, key path and problem.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLI } from '../../test/collector.js';
import { repoRoot } from '../../test/env.js';
import { builtinFactories } from '../app/components.js';
import { ConfigError, loadConfig } from './config.js';
import { BitvilleError } from '../common/errors.js';

const fixture = (name: string) => join(repoRoot, 'collector', 'core', 'testdata', name);

test('a valid config gets its defaults, env expansion with types, and is frozen', async () => {
  const config = await loadConfig(fixture('valid.yaml'), builtinFactories, { TEST_RETENTION: '3d' });
  const otlp = config.receivers.get('otlp')!;
  assert.deepEqual(otlp.config, {
    protocols: {
      http: {
        endpoint: '127.0.0.1:4318',
        max_request_body_size: 8 * 1024 * 1024,
        max_concurrent_requests: 16,
        max_receiving_bytes: 64 * 1024 * 1024,
        read_header_timeout: 10_000,
        read_timeout: 30_000,
        idle_timeout: 30_000,
        retry_after: 1000,
        decode_workers: 0,
      },
    },
  });
  assert.deepEqual(otlp.signals, ['traces', 'logs']);
  assert.deepEqual(config.exporters.get('debug')!.config, { verbosity: 'basic' });
  assert.deepEqual(config.exporters.get('debug/detailed')!.signals, ['traces']);
  assert.equal(config.storage.sqlite!.retention, 3 * 86_400_000);
  assert.equal(config.storage.sqlite!.max_size, 10 * 1024 ** 3);
  assert.equal(config.telemetry.metrics.address, '127.0.0.1:8888');
  assert.ok(Object.isFrozen(otlp.config));
  assert.throws(() => {
    (config.storage.sqlite! as { path: string }).path = 'elsewhere';
  }, TypeError);
});

test('every problem is listed at once, each with file, line, key path and what is wrong', async () => {
  const file = fixture('many-problems.yaml');
  const err = await loadConfig(file, builtinFactories, {}).then(
    () => assert.fail('should not load'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError);
  assert.equal(err.code, 'BV_CONFIG_INVALID');
  const lines = err.message.split('\n');
  const expect = [
    [5, 'receivers.otlp.protocols.http.endpoint', /"nowhere" is not host:port/],
    [6, 'receivers.otlp.protocols.http.max_request_body_size', /"lots" is not a size/],
    [8, 'receivers.otlp.protocols.grpc.transport', /unknown key/],
    [11, 'exporters.debug.verbosity', /basic.*detailed/],
    [12, 'exporters.debug.colour', /unknown key/],
    [13, 'exporters.kafka/main', /unknown exporter type "kafka" \(known: debug/],
    [14, 'exporters.debug/bad name', /is not a component id/],
    [17, 'storage.sqlite.retention', /"7 days" is not a duration/],
    [23, 'service.pipelines.profiles', /unknown key \(pipelines are traces, logs and metrics\)/],
  ] as const;
  for (const [line, path, message] of expect) {
    const found = lines.find((l) => l.startsWith(`${file}:${line}: ${path}: `));
    assert.ok(found, `expected a problem at line ${line} for ${path}; got:\n${err.message}`);
    assert.match(found, message);
  }
  // Top-level problems stop the load before components are checked; references are checked
  // once the components themselves are valid (see the next test).
});

test('references to undefined components are errors naming the pipeline entry', async (t) => {
  const { writeFileSync } = await import('node:fs');
  const { tempDir } = await import('../../test/env.js');
  const file = join(tempDir(t), 'refs.yaml');
  writeFileSync(
    file,
    'receivers:\n  otlp:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp, zipkin]\n      processors: [batch]\n      exporters: [debug, gelf/primary]\n',
  );
  const err = (await loadConfig(file, builtinFactories, {}).catch((e) => e)) as ConfigError;
  assert.ok(err instanceof ConfigError, String(err));
  assert.deepEqual(
    err.message.split('\n'),
    [
      `${file}:8: service.pipelines.traces.receivers[1]: "zipkin" is not defined under receivers`,
      `${file}:9: service.pipelines.traces.processors[0]: "batch" is not defined under processors`,
      `${file}:10: service.pipelines.traces.exporters[1]: "gelf/primary" is not defined under exporters`,
    ],
  );
});

test('an unset environment variable without a default is an error at its key', async () => {
  const file = fixture('missing-env.yaml');
  const err = (await loadConfig(file, builtinFactories, {}).catch((e) => e)) as ConfigError;
  assert.ok(err instanceof ConfigError);
  assert.match(err.message, new RegExp(`^${file}:5: receivers.otlp.protocols.http.endpoint: environment variable BITVILLE_TEST_SURELY_UNSET is not set`));
});

test('unreadable or invalid YAML is reported with the file and line', async () => {
  const missing = await loadConfig('/nonexistent/x.yaml', builtinFactories).catch((e) => e);
  assert.ok(missing instanceof BitvilleError && missing.code === 'BV_CONFIG_READ');
  assert.match(missing.message, /^\/nonexistent\/x.yaml: cannot read the config/);
  const bad = await loadConfig(fixture('not-yaml.yaml'), builtinFactories).catch((e) => e);
  assert.ok(bad instanceof BitvilleError && bad.code === 'BV_CONFIG_READ');
  assert.match(bad.message, /not-yaml.yaml:\d+: not valid YAML/);
});

test('`bitville validate` exits 0 on a valid config and 1 listing the problems', async () => {
  const run = promisify(execFile);
  const ok = await run(process.execPath, [CLI, 'validate', '--config', join(repoRoot, 'otel-config.yaml')]);
  assert.match(ok.stdout, /otel-config.yaml: valid/);
  const bad = await run(process.execPath, [CLI, 'validate', '--config', fixture('many-problems.yaml')]).catch((e) => e);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /many-problems.yaml:5: receivers.otlp.protocols.http.endpoint: "nowhere" is not host:port/);
  assert.match(bad.stderr, /exporters.debug.colour: unknown key/);
  const help = await run(process.execPath, [CLI, 'validate', '--help']);
  assert.match(help.stdout, /--config <file>/);
});

test('storage.postgres gets its defaults; naming no store means SQLite', async () => {
  const config = await loadConfig(fixture('postgres.yaml'), builtinFactories, { BITVILLE_PG_DSN: 'postgres://u@db:5432/bv' });
  assert.equal(config.storage.sqlite, undefined);
  assert.deepEqual(config.storage.postgres, {
    dsn: 'postgres://u@db:5432/bv',
    schema: 'bitville',
    pool_size: 10,
    claim_timeout: 45_000,
    retention: 14 * 86_400_000,
    max_size: 10 * 1024 ** 3,
    partitions_ahead: 2,
    check_interval: 3_600_000,
    data_dir: './data',
  });
  const sqlite = await loadConfig(fixture('valid.yaml'), builtinFactories, { TEST_RETENTION: '3d' });
  assert.equal(sqlite.storage.postgres, undefined);
});

test('storage problems name their keys; sqlite and postgres together are refused', async (t) => {
  const file = fixture('postgres-problems.yaml');
  const err = (await loadConfig(file, builtinFactories, {}).catch((e) => e)) as ConfigError;
  assert.ok(err instanceof ConfigError, String(err));
  for (const [path, message] of [
    ['storage.postgres.schema', /lowercase letters/],
    ['storage.postgres.claim_timeout', /at least 1s/],
    ['storage.postgres.pool_size', />=2/],
    ['storage.postgres.replicas', /unknown key/],
  ] as const) {
    const found = err.message.split('\n').find((l) => l.includes(`: ${path}: `));
    assert.ok(found, `expected a problem at ${path}; got:\n${err.message}`);
    assert.match(found, message);
  }
  const { writeFileSync } = await import('node:fs');
  const { tempDir } = await import('../../test/env.js');
  const twoStores = join(tempDir(t), 'two-stores.yaml');
  writeFileSync(twoStores, 'receivers:\n  otlp:\nstorage:\n  sqlite:\n  postgres:\n    dsn: postgres://x\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n');
  const both = await loadConfig(twoStores, builtinFactories, {}).catch((e) => e);
  assert.ok(both instanceof ConfigError, String(both));
  assert.match(both.message, new RegExp(`^${twoStores}:3: storage: configure one store, sqlite or postgres, not both$`));
});
