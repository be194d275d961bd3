// Nothing acknowledged is lost across kill -9: every span whose request got its 2xx is in the
// store after a restart. A full disk is seen (log, metric, /readyz), outlived, and shut down cleanly.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { opentelemetry } from '../proto/generated/otlp.js';
import { readStore, startCollector } from './collector.js';

const { ExportTraceServiceRequest } = opentelemetry.proto.collector.trace.v1;

test('spans acknowledged right before SIGKILL are all in the store after a restart', async (t) => {
  const first = await startCollector(t);
  const batches = 40;
  const perBatch = 50;
  const send = async (b: number) => {
    const body = ExportTraceServiceRequest.encode({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: Array.from({ length: perBatch }, (_, i) => ({
                traceId: Buffer.alloc(16, b + 1),
                spanId: Buffer.from((b * perBatch + i + 1).toString(16).padStart(16, '0'), 'hex'),
                name: `b${b}`,
                startTimeUnixNano: 1,
                endTimeUnixNano: 2,
              })),
            },
          ],
        },
      ],
    }).finish();
    const res = await fetch(`${first.otlpUrl}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } });
    await res.arrayBuffer();
    return res.status;
  };
  // Eight senders at a time (under the receiver's in-flight bound); kill the moment the last
  // acknowledgement arrives.
  const statuses: number[] = [];
  for (let b = 0; b < batches; b += 8) statuses.push(...(await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => send(b + i)))));
  await first.kill();
  const acknowledged = statuses.filter((s) => s === 200).length * perBatch;
  assert.equal(acknowledged, batches * perBatch, `all requests acknowledged (statuses: ${[...new Set(statuses)]})`);

  const second = await startCollector(t, { dir: first.dir });
  const rows = readStore(second.dbPath);
  assert.equal(rows.length, acknowledged);
  assert.equal(new Set(rows.map((r) => r.record.spanId)).size, acknowledged);
  await second.stop();
});

test('a full disk: 503, logged, counted, not ready; ready again by itself when space returns; SIGTERM still exits 0', async (t) => {
  // A real filesystem that fills up: a 4 MiB tmpfs (needs root, as in CI's container).
  const dir = mkdtempSync(join(tmpdir(), 'bitville-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return void t.skip(`cannot mount a small tmpfs here (${(err as Error).message.split('\n')[0]}); run as root`);
  }
  t.after(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const collector = await startCollector(t, { dir });
  const big = 'x'.repeat(4000);
  let sequence = 0;
  const send = async () => {
    const body = ExportTraceServiceRequest.encode({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: Array.from({ length: 20 }, () => ({
                traceId: Buffer.alloc(16, 7),
                spanId: Buffer.from((++sequence).toString(16).padStart(16, '0'), 'hex'),
                name: 'fill',
                startTimeUnixNano: 1,
                endTimeUnixNano: 2,
                attributes: [{ key: 'pad', value: { stringValue: big } }],
              })),
            },
          ],
        },
      ],
    }).finish();
    const res = await fetch(`${collector.otlpUrl}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } });
    await res.arrayBuffer();
    return res.status;
  };
  const ready = async () => (await fetch(`${collector.adminUrl}/readyz`)).status;
  const metric = async (name: string) => {
    const text = await (await fetch(`${collector.adminUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };
  assert.equal(await send(), 200);
  assert.equal(await ready(), 200);
  assert.equal(await metric('bitville_store_writable'), 1);

  // Fill what is left of the filesystem, then send until the store cannot commit.
  const filler = join(dir, 'filler');
  const fill = () => {
    const fd = openSync(filler, 'a');
    try {
      for (;;) writeSync(fd, Buffer.alloc(64 * 1024));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      closeSync(fd);
    }
  };
  fill();
  let status = 200;
  for (let i = 0; i < 50 && status === 200; i++) status = await send();
  assert.equal(status, 503, 'a sender is told to retry later');
  await collector.waitForLog((l) => l.level === 50 && /cannot commit/.test(String(l.msg)));
  assert.equal(await ready(), 503, '/readyz says not ready while the store cannot commit');
  assert.equal(await metric('bitville_store_writable'), 0);
  assert.ok((await metric('bitville_store_commit_failures_total'))! >= 1);

  // Space returns: the store finds out by itself, without a sender.
  rmSync(filler);
  await collector.waitForLog((l) => /commits again/.test(String(l.msg)));
  assert.equal(await ready(), 200);
  assert.equal(await send(), 200);

  // Full again at shutdown: the final checkpoint may fail, the exit is still clean.
  fill();
  assert.equal(await collector.stop(), 0);
});
