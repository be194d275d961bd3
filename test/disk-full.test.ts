// A collector whose store's disk fills up: senders get 503 with Retry-After (nothing is
// acknowledged that was not committed) and bitville_store_disk_full_refusals counts the refusals,
// which is what the BitvilleStoreDiskFull alert reads. The full disk is a 2 MiB tmpfs, so the
// test needs root (mount); elsewhere it skips saying so.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readStore, startCollector } from './collector.js';

function mountTmpfs(dir: string): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs as a full disk';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message})`;
  }
}

function span(i: number, padding: string) {
  const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'disk-full-test' } }] },
        scopeSpans: [
          {
            spans: [
              {
                traceId: hex(i + 1, 32),
                spanId: hex(i + 1, 16),
                name: 'GET /big',
                kind: 2,
                startTimeUnixNano: String(BigInt(Date.now()) * 1_000_000n),
                endTimeUnixNano: String(BigInt(Date.now() + 600) * 1_000_000n),
                attributes: [{ key: 'padding', value: { stringValue: padding } }],
              },
            ],
          },
        ],
      },
    ],
  };
}

test('a full disk: 503 with Retry-After to the sender, counted in bitville_store_disk_full_refusals; taken again once there is space', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-full-'));
  const skip = mountTmpfs(dir);
  if (skip) {
    rmSync(dir, { recursive: true, force: true });
    return t.skip(skip);
  }
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined;
  t.after(async () => {
    await collector?.kill();
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  collector = await startCollector(t, { dir, config: { storage: { sqlite: { path: join(dir, 'bitville.db') } } } });

  const padding = 'x'.repeat(256 * 1024);
  let refused: Response | undefined;
  let accepted = 0;
  for (let i = 0; i < 40 && !refused; i++) {
    const res = await fetch(`${collector.otlpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(span(i, padding)) });
    await res.arrayBuffer();
    if (res.status === 200) accepted++;
    else refused = res;
  }
  assert.ok(refused, 'the 2 MiB disk filled up within 40 requests of 256 KiB');
  assert.ok(accepted > 0, 'requests were accepted until the disk filled');
  assert.equal(refused.status, 503);
  assert.ok(refused.headers.get('retry-after'));
  const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
  const refusals = Number(/^bitville_store_disk_full_refusals\{store="sqlite"\} (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(refusals >= 1, `refusals counted: ${refusals}`);
  // Every acknowledged span is in the store; the refused one is not.
  assert.equal(readStore(collector.dbPath).length, accepted);

  // Space comes back (the tmpfs grows): the same request is taken, with no restart.
  execFileSync('mount', ['-o', 'remount,size=16m', dir]);
  const retried = await fetch(`${collector.otlpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(span(accepted, padding)) });
  await retried.arrayBuffer();
  assert.equal(retried.status, 200);
  assert.equal(readStore(collector.dbPath).length, accepted + 1);
});
