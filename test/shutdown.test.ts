// SIGTERM drains: new connections are refused, a request already in progress completes and
// its records are committed, and the process exits 0.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { readStore, startCollector } from './collector.js';

test('SIGTERM finishes the request in flight, commits it, and exits 0', async (t) => {
  const c = await startCollector(t);
  const body = Buffer.from(
    JSON.stringify({
      resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), name: 'late', startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }],
    }),
  );
  const held = request(`${c.otlpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } });
  const status = new Promise<number>((resolve, reject) => {
    held.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    held.on('error', reject);
  });
  held.flushHeaders();
  held.write(body.subarray(0, 5));
  // The request is in the server once its headers are parsed; metrics show it in flight.
  const deadline = Date.now() + 5000;
  while (!/bitville_receiver_in_flight_requests\{receiver="otlp"\} 1\b/.test(await (await fetch(`${c.adminUrl}/metrics`)).text())) {
    assert.ok(Date.now() < deadline, 'request never in flight');
    await new Promise((r) => setTimeout(r, 10));
  }

  const exit = c.stop();
  await c.waitForLog((l) => l.msg === 'draining for shutdown');
  await assert.rejects(fetch(`${c.otlpUrl}/v1/traces`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }));
  held.end(body.subarray(5));
  assert.equal(await status, 200);
  assert.equal(await exit, 0);
  assert.deepEqual(readStore(c.dbPath).map((r) => r.record.name), ['late']);
});

test('a component that cannot start stops the collector with exit 1 and says which and why', async (t) => {
  const { createServer } = await import('node:net');
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { stringify } = await import('yaml');
  const { CLI, baseConfig, merge } = await import('./collector.js');
  const { tempDir } = await import('./env.js');
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  const dir = tempDir(t);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify(merge(baseConfig(dir), { receivers: { otlp: { protocols: { http: { endpoint: `127.0.0.1:${port}` } } } } })));
  const child = spawn(process.execPath, [CLI, 'collector', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 1);
  assert.match(stderr, /^otlp failed to start: listen EADDRINUSE/m);
});
