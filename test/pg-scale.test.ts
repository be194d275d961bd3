// Several collector processes on one PostgreSQL store: forwarding is shared without
// duplicates and stays in store order per instance, a SIGKILLed instance's claimed batch is
// taken over after the claim timeout, and a request's spans meet in one place whichever
// instance received them.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { PostgresStore } from '../collector/store/postgres.js';
import { eventually, startCollector, type RunningCollector } from './collector.js';
import { PG_DSN, skipWithoutPostgres, tempDir } from './env.js';
import { freshSchema, sql } from './pg.js';

// An exporter that appends each record as a JSON line ({ id, name }) to its file; `delay_ms`
// slows each batch, `hang` never finishes one (an instance stuck mid-send, to be killed).
const FILE_EXPORTER = `
import { appendFile } from 'node:fs/promises';
export default {
  kind: 'exporter',
  type: 'file',
  configSchema: (z) => z.strictObject({
    path: z.string(),
    batch_size: z.number().int().positive().default(20),
    delay_ms: z.number().int().nonnegative().default(0),
    hang: z.boolean().default(false),
  }),
  create(config, ctx) {
    return {
      batchSize: config.batch_size,
      async start() {},
      async shutdown() {},
      async export(batch) {
        ctx.logger.info({ ids: batch.map((r) => r.id) }, 'exporting batch');
        if (config.hang) return new Promise(() => {});
        if (config.delay_ms) await new Promise((r) => setTimeout(r, config.delay_ms));
        await appendFile(config.path, batch.map((r) => JSON.stringify({ id: r.id, name: r.name }) + '\\n').join(''));
        return { kind: 'success' };
      },
    };
  },
};
`;

async function instance(t: TestContext, schema: string, plugin: string, out: string, exporter: Record<string, unknown> = {}, claimTimeout = '30s') {
  return startCollector(t, {
    config: {
      plugins: [plugin],
      exporters: { file: { path: out, ...exporter } },
      storage: { postgres: { dsn: PG_DSN, schema, claim_timeout: claimTimeout, pool_size: 4 } },
      service: { pipelines: { traces: { receivers: ['otlp'], exporters: ['file'] } } },
    },
  });
}

function pluginFile(t: TestContext): { dir: string; plugin: string } {
  const dir = tempDir(t, 'bitville-pg-');
  const plugin = join(dir, 'file-exporter.mjs');
  writeFileSync(plugin, FILE_EXPORTER);
  return { dir, plugin };
}

async function send(c: RunningCollector, names: string[], traceId = 'ab'.repeat(16)): Promise<void> {
  const spans = names.map((name, i) => ({ traceId, spanId: (i + 1).toString(16).padStart(16, '0'), name, startTimeUnixNano: '1', endTimeUnixNano: '2' }));
  const res = await fetch(`${c.otlpUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans }] }] }),
  });
  assert.equal(res.status, 200, await res.text());
}

function lines(file: string): { id: number; name: string }[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

const ascending = (ids: number[]) => ids.every((id, i) => i === 0 || id > ids[i - 1]!);

test('two instances on one database share forwarding: every record exactly once, in store order per instance', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const { dir, plugin } = pluginFile(t);
  const outA = join(dir, 'a.jsonl');
  const outB = join(dir, 'b.jsonl');
  const a = await instance(t, schema, plugin, outA, { delay_ms: 5 });
  const b = await instance(t, schema, plugin, outB, { delay_ms: 5 });
  // Load over both, as a load balancer would spread it: 40 requests of 25 spans.
  const names: string[] = [];
  const requests = Array.from({ length: 40 }, (_, r) => Array.from({ length: 25 }, (_, i) => `r${r}-${i}`));
  for (let r = 0; r < requests.length; r += 4) {
    await Promise.all(requests.slice(r, r + 4).map((req, k) => send((r + k) % 2 ? a : b, req)));
  }
  for (const req of requests) names.push(...req);
  const delivered = await eventually(() => {
    const all = [...lines(outA), ...lines(outB)];
    return all.length >= names.length ? all : undefined;
  }, 30_000, 'every record forwarded');
  assert.equal(delivered.length, names.length, 'no record forwarded twice');
  assert.deepEqual(delivered.map((l) => l.name).sort(), [...names].sort(), 'every record forwarded');
  for (const out of [outA, outB]) assert.ok(ascending(lines(out).map((l) => l.id)), `${out}: forwarded in store order`);
  assert.ok(lines(outA).length > 0 && lines(outB).length > 0, 'both instances forwarded a share');
  const [{ n }] = await sql(`SELECT count(*)::int AS n FROM "${schema}".delivery_ranges`);
  assert.equal(n, 0, 'the shared queue is empty');
  const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
  assert.match(metrics, /otelcol_exporter_queue_size\{exporter="file"\} 0/);
  await a.stop();
  await b.stop();
});

test('SIGKILL of an instance mid-send: another takes its claimed batch over after the claim timeout; nothing is lost', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const { dir, plugin } = pluginFile(t);
  const outA = join(dir, 'a.jsonl');
  const outB = join(dir, 'b.jsonl');
  // A claims a batch and never finishes sending it.
  const a = await instance(t, schema, plugin, outA, { hang: true, batch_size: 50 }, '2s');
  const names = Array.from({ length: 200 }, (_, i) => `s${i}`);
  for (let i = 0; i < names.length; i += 50) await send(a, names.slice(i, i + 50));
  const stuck = (await a.waitForLog((l) => l.msg === 'exporting batch')).ids as number[];
  assert.equal(stuck.length, 50);
  // B starts while A holds its claim: it forwards everything else at once, not A's batch.
  const b = await instance(t, schema, plugin, outB, {}, '2s');
  await eventually(() => (lines(outB).length >= 150 ? true : undefined), 15_000, 'the unclaimed records forwarded');
  assert.ok(!lines(outB).some((l) => stuck.includes(l.id)), 'a live claim is never taken');
  await a.kill();
  const killedAt = Date.now();
  const all = await eventually(() => (lines(outB).length >= 200 ? lines(outB) : undefined), 15_000, 'the abandoned batch forwarded');
  assert.ok(Date.now() - killedAt < 10_000);
  assert.deepEqual(all.map((l) => l.name).sort(), [...names].sort(), 'every record exactly once');
  assert.deepEqual(lines(outA), [], 'the killed instance delivered nothing');
  assert.deepEqual(all.slice(150).map((l) => l.id), stuck, 'the taken-over batch, oldest first');
  await b.stop();
});

test("a request's spans received by different instances meet in one store", async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const { dir, plugin } = pluginFile(t);
  const a = await instance(t, schema, plugin, join(dir, 'a.jsonl'));
  const b = await instance(t, schema, plugin, join(dir, 'b.jsonl'));
  const trace = 'cd'.repeat(16);
  await send(a, ['GET /checkout'], trace);
  await send(b, ['SELECT orders', 'SELECT items'], trace);
  // What the correlate processor reads in either instance: every span of the correlation id.
  const reader = new PostgresStore({ dsn: PG_DSN, schema, poolSize: 2, claimTimeoutMs: 30_000, retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, partitionsAhead: 1 });
  t.after(() => reader.close());
  await reader.configureExporters([]);
  const joined = await reader.byCorrelationId(trace);
  assert.deepEqual(joined.map((r) => (r.kind === 'span' ? r.name : '')), ['GET /checkout', 'SELECT orders', 'SELECT items']);
  await a.stop();
  await b.stop();
});
