// What each verbosity prints for one batch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { z, schemaHelpers, type ExporterContext, type StoredRecord } from '../../collector/core/api.js';
import { factory } from './index.js';

const span = (id: number): StoredRecord => ({
  kind: 'span', id, receivedAtMs: 0, name: `GET /p${id}`, traceId: 'ab'.repeat(16), spanId: `${id}`.padStart(16, '0'), parentSpanId: '',
  correlationId: 'ab'.repeat(16), spanKind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2', durationMs: 12.5, status: { code: 0, message: '' },
  resource: { 'service.name': 'shop' }, scope: { name: '', version: '', attributes: {} }, attributes: {}, events: [], links: [], traceState: '', flags: 0,
} as unknown as StoredRecord);

async function printed(verbosity: string, batch: StoredRecord[]): Promise<string> {
  const result = factory.configSchema(z, schemaHelpers)['~standard'].validate({ verbosity });
  assert.ok(!(result instanceof Promise) && !result.issues);
  const exporter = factory.create(result.value, { logger: pino({ level: 'silent' }) } as unknown as ExporterContext);
  const write = process.stderr.write;
  let out = '';
  process.stderr.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stderr.write;
  try {
    await exporter.export(batch);
  } finally {
    process.stderr.write = write;
  }
  return out;
}

test('basic: one line per batch with counts; normal: one per record; detailed: JSON', async () => {
  const batch = [span(7), span(8), span(9)];
  assert.equal(await printed('basic', batch), 'debug: 3 records (span 3), ids 7-9\n');
  const normal = (await printed('normal', batch)).trimEnd().split('\n');
  assert.equal(normal.length, 3);
  assert.match(normal[0]!, /^#7 span otlp - shop "GET \/p7" 12\.5 ms/);
  const detailed = (await printed('detailed', batch)).trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(detailed.map((r) => r.id), [7, 8, 9]);
});
