// The admin server and the command itself, as an operator meets them: the optional bearer token,
// a taken admin port, `--version`, and the installed `bitville` bin.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { baseConfig, CLI, merge, startCollector } from './collector.js';
import { repoRoot, tempDir } from './env.js';

const run = promisify(execFile);

test('with an admin token, every admin route but the probes needs it', async (t) => {
  const c = await startCollector(t, {
    config: {
      processors: { correlate: {} },
      service: { pipelines: { traces: { processors: ['correlate'] } }, telemetry: { metrics: { auth: { bearer_token: 's3cret' } } } },
    },
  });
  const get = (path: string, token?: string) => fetch(`${c.adminUrl}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  for (const path of ['/metrics', '/', '/api/requests', '/requests/abc']) {
    const anonymous = await get(path);
    assert.equal(anonymous.status, 401, `${path} without a token`);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal((await get(path, 'wrong')).status, 401, `${path} with a wrong token`);
  }
  assert.equal((await get('/metrics', 's3cret')).status, 200);
  assert.equal((await get('/api/requests', 's3cret')).status, 200);
  assert.equal((await get('/healthz')).status, 200, 'liveness probes need no token');
  assert.equal((await get('/readyz')).status, 200, 'readiness probes need no token');
});

test('counters exist at 0 from the start, under names without a doubled prefix', async (t) => {
  const c = await startCollector(t);
  const text = await (await fetch(`${c.adminUrl}/metrics`)).text();
  assert.match(text, /^otelcol_receiver_refused_spans\{receiver="otlp"\} 0$/m);
  assert.match(text, /^bitville_process_cpu_seconds_total /m);
  assert.doesNotMatch(text, /process_process_/);
});

test('an admin address already in use: exit 1 naming the address, no stack trace', async (t) => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.after(() => blocker.close());
  const address = `127.0.0.1:${(blocker.address() as { port: number }).port}`;
  const dir = tempDir(t);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify(merge(baseConfig(dir), { service: { telemetry: { metrics: { address } } } })));
  const failed = await run(process.execPath, [CLI, 'collector', '--config', file], { cwd: dir }).then(
    () => assert.fail('the collector should not start'),
    (err: { code: number; stderr: string }) => err,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, new RegExp(`the admin server cannot listen on ${address}: .*EADDRINUSE`));
  assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace');
});

test('the installed bin is executable and prints the version', async () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: { bitville: string } };
  const bin = join(repoRoot, pkg.bin.bitville);
  assert.ok(statSync(bin).mode & 0o100, `${pkg.bin.bitville} has its execute bit`);
  const { stdout } = await run(bin, ['--version']);
  assert.equal(stdout.trim(), pkg.version);
  // As a user runs it from the checkout, right after a build (--no-install: never the registry).
  const viaNpx = await run('npx', ['--no-install', 'bitville', '--version'], { cwd: repoRoot });
  assert.equal(viaNpx.stdout.trim(), pkg.version);
});
