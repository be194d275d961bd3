// `bitville pg-agent` as a process: config file in, OTLP out through the shared agent runtime.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { CLI } from '../../test/collector.js';
import { PG_DSN, skipWithoutPostgres, tempDir } from '../../test/env.js';
import { attrs, startOtlpSink } from '../runtime/otlp-sink.fixture.js';
import { connectClient, newCorrelationId } from './testing.fixture.js';


function run(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, 'exit').then(([code]) => ({ code: code as number | null, stderr }));
  return { child, exited };
}

test('pg-agent --help names --config', async () => {
  const { child, exited } = run(['pg-agent', '--help']);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  assert.equal((await exited).code, 0);
  assert.match(out, /--config <file>/);
});

test('a config with an unknown key is refused with its path, before anything starts', async (t) => {
  const file = join(tempDir(t), 'pg.yaml');
  writeFileSync(file, 'project: shop\nsampling:\n  pol_interval: 100ms\n');
  const { code, stderr } = await run(['pg-agent', '--config', file]).exited;
  assert.equal(code, 1);
  assert.match(stderr, /pg\.yaml:3: sampling\.pol_interval: unknown key/);
});

test('the daemon sends the spans it captures to the collector over OTLP, and stops cleanly on SIGTERM', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const dir = tempDir(t);
  const sink = await startOtlpSink(t);
  const file = join(dir, 'pg.yaml');
  writeFileSync(
    file,
    [
      'project: shop',
      `exporter: { endpoint: "${sink.url}" }`,
      'batch: { timeout: 50ms }',
      `buffer: { path: "${join(dir, 'buffer.db')}" }`,
      'metrics: { address: "127.0.0.1:0" }',
      'postgres: { dsn: "${env:TEST_PG_DSN}", application_name: bitville-pg-agent-daemon-test }',
      'statements: { enabled: false }',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [CLI, 'pg-agent', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TEST_PG_DSN: PG_DSN } });
  t.after(() => child.kill('SIGKILL'));
  for await (const line of createInterface({ input: child.stdout! })) if (line.includes('pg-agent: capturing')) break;

  const id = newCorrelationId();
  const client = await connectClient(t, `req:${id}`);
  await client.query('SELECT pg_sleep(0.2)');
  const mine = () => sink.spans().filter((s) => attrs(s.attributes)['bitville.correlation_id'] === id);
  await sink.until(() => mine().length === 1);
  const span = mine()[0]!;
  assert.equal(Buffer.from(span.traceId!).toString('hex'), id);
  assert.equal(span.name, 'SELECT test');
  const resource = attrs(sink.requests.find((r) => r.traces)!.traces!.resourceSpans[0]!.resource!.attributes);
  assert.equal(resource['service.name'], 'shop');
  assert.equal(resource['bitville.source'], 'pg_agent');

  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});
