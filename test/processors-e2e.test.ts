// The processors inside a real collector process, configured with the example pipeline from
// docs/processors.md (so the documented config is one the collector accepts and runs): OTLP/JSON
// in, then the stored records and the GELF messages out show each processor's effect.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { TcpReceiver } from '../plugins/gelf/receivers.fixture.js';
import { readStore, startCollector } from './collector.js';
import { repoRoot } from './env.js';

/** The first YAML block under "## A pipeline using all of them" in docs/processors.md. */
function documentedConfig(): Record<string, any> {
  const doc = readFileSync(join(repoRoot, 'docs', 'processors.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## A pipeline using all of them'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
  return parse(block);
}

const str = (key: string, v: string) => ({ key, value: { stringValue: v } });
const int = (key: string, v: number) => ({ key, value: { intValue: String(v) } });
const BASE_NS = 1_764_400_000_000_000_000n;

function spanJson(id: string, n: number, kind: number, name: string, ms: number, attributes: unknown[]) {
  const start = BASE_NS + BigInt(n) * 1_000_000n;
  return {
    traceId: id,
    spanId: n.toString(16).padStart(16, '0'),
    name,
    kind,
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: (start + BigInt(ms * 1_000_000)).toString(),
    attributes: [str('bitville.correlation_id', id), ...attributes],
  };
}

async function post(otlpUrl: string, spans: unknown[]): Promise<void> {
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'shop'), str('process.command_line', '/usr/sbin/php-fpm --secret=x')] },
        scopeSpans: [{ scope: { name: 'e2e' }, spans }],
      },
    ],
  };
  const response = await fetch(`${otlpUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(response.status, 200, await response.text());
}

test('the documented pipeline: enrich, resource, attributes, redaction, filter, sampler, correlate', async (t) => {
  const receiver = await TcpReceiver.start();
  t.after(() => receiver.close());
  const documented = documentedConfig();
  const config = {
    processors: {
      ...documented.processors,
      // Only what matters is kept, so the outcome does not depend on the hash; short join window.
      sampler: { ...documented.processors.sampler, sampling_percentage: 0 },
      correlate: { window: '200ms' },
    },
    exporters: { gelf: { endpoint: `tcp://127.0.0.1:${receiver.port}` } },
    service: { pipelines: { traces: { ...documented.service.pipelines.traces, exporters: ['gelf'] } } },
  };
  const collector = await startCollector(t, { config, env: { ...process.env, DEPLOY_ENV: 'staging' } });

  const slow = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  const fast = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
  const health = 'cccccccccccccccccccccccccccccccc';
  // The pg-agent's DB spans arrive before their request span.
  await post(collector.otlpUrl, [
    spanJson(slow, 2, 3, 'SELECT', 30, [str('db.system.name', 'postgresql'), str('db.query.text', "SELECT * FROM users WHERE email = 'alice@example.com' AND id = 42")]),
    spanJson(fast, 12, 3, 'SELECT', 3, [str('db.system.name', 'postgresql'), str('db.query.text', 'SELECT 1')]),
  ]);
  await post(collector.otlpUrl, [
    spanJson(slow, 1, 2, 'GET /shop/12/cart', 800, [
      str('url.full', 'https://shop.example/shop/12/cart?token=abc&page=2'),
      str('url.path', '/shop/12/cart'),
      str('user.email', 'alice@example.com'),
      str('user.password', 'hunter2'),
      int('http.response.status_code', 200),
    ]),
    spanJson(fast, 11, 2, 'GET /cart', 40, [int('http.response.status_code', 200)]),
    spanJson(health, 21, 2, 'GET /health', 900, [str('http.route', '/health')]),
  ]);

  // The slow request's two spans and its summary; nothing of the fast or health requests.
  const messages = await receiver.waitFor(3);
  const rows = readStore(collector.dbPath);
  assert.deepEqual(rows.map((r) => `${r.kind}:${r.correlation_id}`).sort(), [`span:${slow}`, `span:${slow}`, `summary:${slow}`]);

  const request = rows.find((r) => r.record.name === 'GET /shop/12/cart')!.record;
  const db = rows.find((r) => r.record.name === 'SELECT')!.record;
  // enrich, then resource
  assert.equal(request.resource['deployment.environment'], 'staging');
  assert.equal(typeof request.resource['bitville.collector.version'], 'string');
  assert.equal(request.resource['process.command_line'], undefined);
  // attributes/strip: hash and extract
  assert.match(request.attributes['user.email'], /^[0-9a-f]{64}$/);
  assert.equal(request.attributes['shop_id'], '12');
  // redaction: blocked key, URL parameter, SQL literals
  assert.equal(request.attributes['user.password'], '****');
  assert.equal(request.attributes['url.full'], 'https://shop.example/shop/12/cart?token=REDACTED&page=2');
  assert.equal(db.attributes['db.query.text'], 'SELECT * FROM users WHERE email = ? AND id = ?');
  // sampler: kept whole at rate 1 (slow), the DB span released after its request arrived
  for (const r of [request, db]) assert.deepEqual([r.attributes['bitville.sampling.rate'], r.attributes['sampling.adjusted_count']], [1, 1]);

  // What Graylog gets is the same shaped data.
  const gelfRequest = messages.find((m) => m._name === 'GET /shop/12/cart')!;
  assert.equal(gelfRequest._url, 'https://shop.example/shop/12/cart?token=REDACTED&page=2');
  assert.equal(gelfRequest._user_password, '****');
  assert.equal(gelfRequest._deployment_environment, 'staging');
  assert.ok(messages.some((m) => m._db_query_text === 'SELECT * FROM users WHERE email = ? AND id = ?'));

  const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
  assert.match(metrics, /bitville_filter_dropped_total\{processor="filter\/noise"\} 1/);
  assert.match(metrics, /bitville_sampler_dropped_total\{processor="sampler"\} 2/);
  // Two literals in the slow request's query, one in the fast one's (redaction runs before sampling).
  assert.match(metrics, /bitville_redaction_masked_sql_total\{processor="redaction"\} 3/);
});
