// Forty exporters on one SQLite store, through the real collector: pipelines use different
// subsets (traces only, logs only, both), and each exporter delivers every record of its
// signals exactly once, in store order. (Delivery masks on 32-bit integers once stored log
// records already marked delivered from the 32nd exporter on: silent loss.)
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { tempDir } from '../../test/env.js';
import { loadConfig } from '../core/config.js';
import { CollectorService } from '../core/service.js';
import { Telemetry } from '../core/telemetry.js';
import type { FlatRecord } from '../core/model.js';
import { openStore } from './index.js';
import { collectExporter, delivered, exportedUntil, feed, feedReceiver } from './pipeline.fixture.js';
import { log, span } from './records.fixture.js';

test('40 exporters in overlapping pipelines each deliver every record of their signals exactly once', async (t) => {
  const dir = tempDir(t);
  const ids = Array.from({ length: 40 }, (_, i) => `collect/${i}`);
  const tracesOnly = ids.slice(0, 30);
  const both = ids.slice(30, 35);
  const logsOnly = ids.slice(35);
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      receivers: { feed: {} },
      exporters: Object.fromEntries(ids.map((id, i) => [id, { batch_size: 3 + (i % 5) }])),
      storage: { sqlite: { path: join(dir, 'bitville.db') } },
      service: {
        pipelines: {
          traces: { receivers: ['feed'], exporters: [...tracesOnly, ...both] },
          logs: { receivers: ['feed'], exporters: [...both, ...logsOnly] },
        },
      },
    }),
  );
  const config = await loadConfig(file, [feedReceiver, collectExporter]);
  const telemetry = new Telemetry(pino({ level: 'silent' }));
  const service = new CollectorService(config, telemetry, openStore(config.storage));
  delivered.clear();
  await service.start();
  let stopped = false;
  t.after(() => (stopped ? undefined : service.shutdown()));

  // Interleaved batches of spans and logs, some mixed: record ids alternate between signals.
  const spanIds: number[] = [];
  const logIds: number[] = [];
  let next = 1;
  for (let b = 0; b < 20; b++) {
    const batch: FlatRecord[] = [];
    for (let i = 0; i < 5; i++) {
      const isLog = (b + i) % 3 === 0;
      batch.push(isLog ? log(next) : span(next));
      (isLog ? logIds : spanIds).push(next++);
    }
    // A receiver hands one signal at a time; split the batch the same way.
    await feed('traces', batch.filter((r) => r.kind === 'span'));
    await feed('logs', batch.filter((r) => r.kind === 'log'));
  }
  const expected = new Map<string, number>();
  for (const id of tracesOnly) expected.set(id, spanIds.length);
  for (const id of both) expected.set(id, spanIds.length + logIds.length);
  for (const id of logsOnly) expected.set(id, logIds.length);
  await exportedUntil(() => ids.every((id) => (delivered.get(id)?.length ?? 0) >= expected.get(id)!));

  // Store ids follow commit order (a batch's spans, then its logs); read back which are spans.
  const spansStored = (await Promise.all(['c0', 'c1', 'c2'].map((c) => service.store.byCorrelationId(c)))).flat().map((r) => r.id).sort((a, b) => a - b);
  const all = Array.from({ length: spanIds.length + logIds.length }, (_, i) => i + 1);
  const logsStored = all.filter((n) => !spansStored.includes(n));
  assert.equal(spansStored.length, spanIds.length);
  for (const id of ids) {
    const got = delivered.get(id)!;
    assert.deepEqual(got, [...got].sort((a, b) => a - b), `${id} delivers in store order`);
    assert.equal(new Set(got).size, got.length, `${id} got no record twice`);
    assert.equal(got.length, expected.get(id), `${id} got every record of its signals`);
  }
  for (const id of tracesOnly) assert.deepEqual(delivered.get(id), spansStored, `${id} got exactly the spans`);
  for (const id of logsOnly) assert.deepEqual(delivered.get(id), logsStored, `${id} got exactly the logs`);
  for (const id of both) assert.deepEqual(delivered.get(id), all, `${id} got everything`);
  // A mark follows its export by a moment; shutdown waits for the marks of what was sent.
  stopped = true;
  await service.shutdown();
  const reopened = openStore(config.storage);
  t.after(() => reopened.close());
  await reopened.configureExporters(ids.map((id) => ({ id, signals: [] })));
  for (const id of ids) assert.equal(await reopened.backlog(id), 0, `${id} has nothing left in the store`);
});
