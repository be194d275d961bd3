// Request lookups against a real collector: the admin JSON API, the CLI (`bitville requests`,
// `bitville trace`) reading the same store read-only, and the HTML pages' escaping.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { postTraces, querySpans, requestSpans, sampleRequest } from '../plugins/correlate/traces.fixture.js';
import { CLI, eventually, startCollector } from './collector.js';
import { tempDir } from './env.js';

const run = promisify(execFile);

async function seeded(t: import('node:test').TestContext) {
  const c = await startCollector(t, {
    config: {
      processors: { correlate: { window: '200ms' } },
      service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
    },
  });
  const slow = sampleRequest({ durationMs: 1500, url: 'http://shop.example/orders.php?customer=42' });
  const fast = sampleRequest({ durationMs: 700, url: 'http://blog.example/post.php?id=<script>alert(1)</script>', project: 'blog', status: 500 }, 2);
  // Each request's spans in one export: sent apart, a stall longer than the 200 ms window
  // between the two posts (a loaded machine) would summarize the request twice (revision 2).
  for (const r of [slow, fast]) {
    await postTraces(c.otlpUrl, { resourceSpans: [...requestSpans(r).resourceSpans, ...querySpans(r).resourceSpans] });
  }
  const api = async (path: string) => {
    const res = await fetch(`${c.adminUrl}${path}`);
    return { status: res.status, body: (await res.json()) as any };
  };
  await eventually(async () => ((await api('/api/requests')).body.requests.length === 2 ? true : undefined), 10_000, 'both summaries');
  return { c, slow, fast, api };
}

test('admin API: recent requests with filters, one request with its queries, clear errors', async (t) => {
  const { slow, fast, api } = await seeded(t);
  const all = (await api('/api/requests')).body.requests;
  assert.deepEqual(all.map((r: any) => r.correlationId), [fast.correlationId, slow.correlationId], 'newest first');
  const slowest = (await api('/api/requests?slowest&since=1h')).body.requests;
  assert.equal(slowest[0].correlationId, slow.correlationId);
  assert.deepEqual(
    { ...slowest[0], time: undefined },
    {
      correlationId: slow.correlationId,
      project: 'shop',
      time: undefined,
      name: 'GET /orders.php',
      method: 'GET',
      url: slow.url,
      status: 200,
      durationMs: 1500,
      dbTimeMs: 452,
      queryCount: 8,
      nPlusOne: true,
      nPlusOneQuery: 'select * from order_items where order_id = ?',
      revision: 1,
    },
  );
  assert.deepEqual((await api('/api/requests?project=blog')).body.requests.map((r: any) => r.correlationId), [fast.correlationId]);
  assert.deepEqual((await api('/api/requests?url=ORDERS.php')).body.requests.map((r: any) => r.correlationId), [slow.correlationId]);
  assert.deepEqual((await api('/api/requests?min_duration=1s')).body.requests.map((r: any) => r.correlationId), [slow.correlationId]);
  assert.equal((await api('/api/requests?limit=1')).body.requests.length, 1);

  const bad = await api('/api/requests?since=5x');
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /since: "5x" is not a duration/);
  assert.match((await api('/api/requests?colour=red')).body.error, /unknown filter colour/);

  const one = await api(`/api/requests/${slow.correlationId}`);
  assert.equal(one.status, 200);
  assert.equal(one.body.queries.length, 8);
  assert.equal(one.body.request.durationMs, 1500);
  assert.equal(one.body.queries.filter((q: any) => q.nPlusOne).length, 6);
  assert.equal(one.body.queries[0].offsetMs, 5, 'queries are placed relative to the request start');
  assert.deepEqual(one.body.nPlusOne, [{ query: 'select * from order_items where order_id = ?', count: 6, totalMs: 60 }]);
  assert.equal((await api('/api/requests/ffffffffffffffffffffffffffffffff')).status, 404);
});

test('HTML pages escape what the data carries', async (t) => {
  const { c, fast } = await seeded(t);
  const list = await (await fetch(`${c.adminUrl}/?since=1h`)).text();
  assert.ok(!list.includes('<script>alert(1)</script>'), 'a URL cannot inject markup');
  assert.ok(list.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  const detail = await fetch(`${c.adminUrl}/requests/${fast.correlationId}`);
  assert.equal(detail.status, 200);
  assert.ok(!(await detail.text()).includes('<script>'));
  const badFilter = await fetch(`${c.adminUrl}/?limit=0`);
  assert.equal(badFilter.status, 400);
  assert.match(await badFilter.text(), /limit: /);
});

test('CLI: `requests` and `trace` read the store of a running collector', async (t) => {
  const { c, slow } = await seeded(t);
  const list = await run(process.execPath, [CLI, 'requests', '--config', c.configPath, '--slowest', '--since', '1h']);
  const lines = list.stdout.trim().split('\n');
  assert.match(lines[0]!, /^time\s+duration\s+db\s+queries\s+status\s+method\s+url\s+correlation id$/);
  assert.match(lines[1]!, new RegExp(`1500 ms\\s+452 ms\\s+8 N\\+1\\s+200\\s+GET\\s+http://shop.example/orders.php\\?customer=42\\s+${slow.correlationId}`));
  const json = JSON.parse((await run(process.execPath, [CLI, 'requests', '--config', c.configPath, '--json', '--project', 'shop'])).stdout);
  assert.deepEqual(json.map((r: any) => r.correlationId), [slow.correlationId]);

  const trace = (await run(process.execPath, [CLI, 'trace', slow.correlationId, '--config', c.configPath])).stdout;
  assert.match(trace, new RegExp(`^request ${slow.correlationId} \\(shop\\)`));
  assert.match(trace, /GET http:\/\/shop.example\/orders.php\?customer=42 200/);
  assert.match(trace, /1500.0 ms total, DB 452.0 ms in 8 queries/);
  assert.match(trace, /N\+1: 6x select \* from order_items where order_id = \? \(60.0 ms\)/);
  assert.equal((trace.match(/\[N\+1 x6\]/g) ?? []).length, 6);
  assert.match(trace, /\|=+\|\s+1500.0 ms {2}GET \/orders.php/, 'the request bar spans the whole width');
  const traceJson = JSON.parse((await run(process.execPath, [CLI, 'trace', slow.correlationId, '--config', c.configPath, '--json'])).stdout);
  assert.equal(traceJson.queries.length, 8);

  const missing = await run(process.execPath, [CLI, 'trace', 'f'.repeat(32), '--config', c.configPath]).catch((e) => e);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no records with correlation id f{32}/);
  const badSince = await run(process.execPath, [CLI, 'requests', '--config', c.configPath, '--since', 'yesterday']).catch((e) => e);
  assert.equal(badSince.code, 1);
  assert.match(badSince.stderr, /^since: "yesterday" is not a duration/);
});

test('CLI: a config whose store does not exist gives a clear error', async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'c.yaml');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(config, `receivers: {otlp: {}}\nstorage: {sqlite: {path: ${join(dir, 'nothing', 'b.db')}}}\nservice: {pipelines: {traces: {receivers: [otlp]}}}\n`);
  const out = await run(process.execPath, [CLI, 'requests', '--config', config]).catch((e) => e);
  assert.equal(out.code, 1);
  assert.match(out.stderr, /^no store at .*nothing\/b\.db \(check storage\.sqlite\.path in the config\)/);
});
