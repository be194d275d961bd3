// The circuit breaker as a user sees it: Graylog down -> after 5 failed sends no more
// attempts until the reset timeout, the state survives a restart, and a good probe resumes.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { GelfExporter, breakerFileName } from './exporter.js';
import { exporterContext, gelfConfig, spanRecord, tempDir } from './test-support.js';
import { TcpReceiver } from './test-receivers.js';

const RESET_MS = 600;

async function deadPort(): Promise<{ receiver: TcpReceiver; port: number }> {
  const receiver = await TcpReceiver.start();
  const port = receiver.port;
  await receiver.close();
  return { receiver, port };
}

async function startExporter(t: TestContext, dataDir: string, port: number) {
  const ctx = exporterContext(dataDir, 'gelf/primary');
  const config = gelfConfig({
    endpoint: `tcp://127.0.0.1:${port}`,
    retry_delay: '10ms',
    circuit_breaker: { failure_threshold: 5, reset_timeout: `${RESET_MS}ms` },
  });
  const exporter = new GelfExporter(config, ctx.context);
  await exporter.start();
  t.after(() => exporter.shutdown());
  return { exporter, ...ctx };
}

const stateFile = (dir: string) => join(dir, breakerFileName('gelf/primary'));
const savedState = (dir: string) => JSON.parse(readFileSync(stateFile(dir), 'utf8')).state as string;

test('opens after 5 failures, makes no attempt while open, survives a restart, probes after the reset timeout', async (t) => {
  const dir = tempDir(t);
  const { receiver, port } = await deadPort();
  t.after(() => receiver.close());
  const first = await startExporter(t, dir, port);

  for (let i = 1; i <= 4; i++) {
    const result = await first.exporter.export([spanRecord(i)]);
    assert.equal(result.kind, 'retryable');
    assert.equal(result.kind === 'retryable' && result.retryAfterMs, 10, 'closed: retry soon');
  }
  const fifth = await first.exporter.export([spanRecord(1)]);
  const openedAt = Date.now();
  assert.equal(fifth.kind, 'retryable');
  assert.ok(fifth.kind === 'retryable' && fifth.retryAfterMs! > RESET_MS / 2, 'open: come back at the half-open time');
  assert.equal(savedState(dir), 'open');
  assert.equal(first.gauges.get('bitville_gelf_circuit_breaker_state')!(), 1);
  assert.equal(first.counters.get('bitville_gelf_circuit_breaker_transitions'), 1);
  assert.equal(first.counters.get('bitville_gelf_send_failures'), 5);
  assert.equal(first.logs.filter((l) => /breaker opened/.test(String(l.msg))).length, 1, 'one log line for the transition');

  // Graylog is back, but the breaker is open: the receiver sees no connection attempt.
  await receiver.listen({ port });
  const whileOpen = await first.exporter.export([spanRecord(1)]);
  assert.equal(whileOpen.kind, 'retryable');
  assert.match(whileOpen.kind === 'retryable' ? whileOpen.error.message : '', /open/i);

  // The collector restarts: the state file brings the open breaker back.
  await first.exporter.shutdown();
  const second = await startExporter(t, dir, port);
  assert.equal(second.gauges.get('bitville_gelf_circuit_breaker_state')!(), 1, 'restored open');
  const afterRestart = await second.exporter.export([spanRecord(1)]);
  assert.equal(afterRestart.kind, 'retryable');
  assert.equal(receiver.connections, 0, 'no connection attempt while open, across the restart');

  // At the half-open time one probe batch goes out; it succeeds and the breaker closes.
  await new Promise((resolve) => setTimeout(resolve, afterRestart.kind === 'retryable' ? afterRestart.retryAfterMs : 0));
  const probe = await second.exporter.export([spanRecord(1), spanRecord(2)]);
  assert.deepEqual(probe, { kind: 'success' });
  assert.ok(Date.now() - openedAt >= RESET_MS, 'the probe came no earlier than the reset timeout');
  assert.equal(receiver.connections, 1);
  assert.deepEqual((await receiver.waitFor(2)).map((m) => m._record_id), [1, 2]);
  assert.equal(savedState(dir), 'closed');
  assert.equal(second.gauges.get('bitville_gelf_circuit_breaker_state')!(), 0);
  assert.ok(second.logs.some((l) => /half-open/.test(String(l.msg))));
  assert.ok(second.logs.some((l) => /breaker closed/.test(String(l.msg))));
});

test('a failed half-open probe opens the breaker again for another reset timeout', async (t) => {
  const dir = tempDir(t);
  const { receiver, port } = await deadPort();
  t.after(() => receiver.close());
  const { exporter } = await startExporter(t, dir, port);
  let result;
  for (let i = 0; i < 5; i++) result = await exporter.export([spanRecord(1)]);
  assert.equal(savedState(dir), 'open');
  await new Promise((resolve) => setTimeout(resolve, result!.kind === 'retryable' ? result!.retryAfterMs : 0));
  const probe = await exporter.export([spanRecord(1)]);
  assert.equal(probe.kind, 'retryable');
  assert.ok(probe.kind === 'retryable' && probe.retryAfterMs! > RESET_MS / 2, 'open again');
  assert.equal(savedState(dir), 'open');
});

test('a damaged state file is reported and the breaker starts closed', async (t) => {
  const dir = tempDir(t);
  writeFileSync(stateFile(dir), '{not json');
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const { exporter, logs } = await startExporter(t, dir, receiver.port);
  assert.ok(logs.some((l) => /damaged/.test(String(l.msg))));
  assert.deepEqual(await exporter.export([spanRecord(1)]), { kind: 'success' });
});

test('state file names follow the component id', () => {
  assert.equal(breakerFileName('gelf/primary'), 'gelf-primary.breaker.json');
  assert.equal(breakerFileName('gelf'), 'gelf.breaker.json');
});
