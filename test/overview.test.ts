// The overview against a generated data set whose percentiles are known: a real collector
// (correlate + overview processors, real SQLite store) receives 220 requests over OTLP; the
// JSON API, `bitville top` and the page (headless Chromium) show the expected figures, a late
// span's re-summary is not counted twice, pg_stat_statements totals appear beside the sampled
// figures, and the rollups are there after a kill -9.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { postTraces, querySpans, requestSpans, sampleRequest, type FixtureRequest } from '../plugins/correlate/traces.fixture.js';
import { normalizeSql } from '../plugins/correlate/statements.js';
import { RELATIVE_ERROR } from '../plugins/correlate/histogram.js';
import type { EndpointRow, StatementRow } from '../plugins/correlate/overview-queries.js';
import { CLI, eventually, startCollector, type RunningCollector } from './collector.js';
import { tempDir } from './env.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const PRODUCTS = 'SELECT * FROM products WHERE id = 7';
const PRICES = 'SELECT * FROM prices WHERE product_id = 3';

/** 200 product pages of 1..200 ms (every tenth with an N+1 of 5 price lookups), 20 checkouts of 1 s (5 failing). */
function dataSet(): FixtureRequest[] {
  const base = Date.now() - 30_000;
  const out: FixtureRequest[] = [];
  for (let d = 1; d <= 200; d++) {
    const queries = [{ sql: `SELECT * FROM products WHERE id = ${d}`, atMs: 0, ms: d / 4 }];
    if (d % 10 === 0) for (let j = 0; j < 5; j++) queries.push({ sql: `SELECT * FROM prices WHERE product_id = ${j}`, atMs: d / 4 + (j * d) / 20, ms: d / 20 });
    out.push(sampleRequest({ startMs: base + d * 10, durationMs: d, url: `http://shop.example/products/${d}?ref=x`, queries }));
  }
  for (let i = 0; i < 20; i++) {
    out.push(
      sampleRequest({ startMs: base + i * 10, durationMs: 1000, method: 'POST', url: 'http://shop.example/checkout', status: i < 5 ? 500 : 200, queries: [{ sql: `UPDATE carts SET done = true WHERE id = ${i}`, atMs: 10, ms: 100 }] }),
    );
  }
  return out;
}

async function send(c: RunningCollector, requests: FixtureRequest[]): Promise<void> {
  for (let i = 0; i < requests.length; i += 20) {
    const bodies = requests.slice(i, i + 20).flatMap((r) => [requestSpans(r), querySpans(r)]);
    await postTraces(c.otlpUrl, { resourceSpans: bodies.flatMap((b) => b.resourceSpans) });
  }
}

const getJson = async <T>(url: string): Promise<T> => (await (await fetch(url)).json()) as T;
const near = (actual: number | null, exact: number, what: string) =>
  assert.ok(actual !== null && Math.abs(actual - exact) / exact <= RELATIVE_ERROR + 1e-6, `${what}: ${actual} is not within ${RELATIVE_ERROR} of ${exact}`);

async function overviewCollector(t: TestContext, dir?: string): Promise<RunningCollector> {
  return startCollector(t, {
    ...(dir ? { dir } : {}),
    config: {
      processors: { correlate: { window: '200ms' }, overview: {} },
      service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate', 'overview'], exporters: [] }, logs: { receivers: ['otlp'], processors: ['overview'], exporters: [] } } },
    },
  });
}

test('overview figures match a data set with known percentiles; a re-summary is not counted twice; pg_stat_statements beside; bitville top; kill -9', async (t) => {
  const c = await overviewCollector(t);
  await send(c, dataSet());
  const endpointsUrl = `${c.adminUrl}/api/overview/endpoints?range=1h`;
  const { endpoints } = await eventually(async () => {
    const body = await getJson<{ endpoints: EndpointRow[] }>(endpointsUrl);
    return body.endpoints.reduce((n, e) => n + e.requests, 0) === 220 ? body : undefined;
  }, 20_000, 'all 220 requests rolled up');

  const products = endpoints.find((e) => e.endpoint === 'GET /products/:id')!;
  assert.ok(products, `endpoints: ${endpoints.map((e) => e.endpoint).join(', ')}`);
  assert.equal(products.requests, 200);
  near(products.p50Ms, 100, 'p50'); // nearest rank of 1..200 ms
  near(products.p95Ms, 190, 'p95');
  near(products.p99Ms, 198, 'p99');
  assert.equal(products.totalMs, 20100);
  assert.equal(products.errorRate, 0);
  // DB: a quarter of each request, half of the N+1 ones: 5025 + 525 of 20100 ms.
  assert.ok(Math.abs(products.dbShare - 5550 / 20100) < 1e-6, `db share ${products.dbShare}`);
  assert.equal(products.nPlusOne, 20);
  const checkout = endpoints.find((e) => e.endpoint === 'POST /checkout')!;
  assert.equal(checkout.requests, 20);
  assert.equal(checkout.errorRate, 0.25);
  near(checkout.p99Ms, 1000, 'checkout p99');
  assert.ok(Math.abs(checkout.dbShare - 0.1) < 1e-6);
  assert.deepEqual(endpoints.map((e) => e.endpoint), ['GET /products/:id', 'POST /checkout'], 'by total time');
  const byErrors = await getJson<{ endpoints: EndpointRow[] }>(`${c.adminUrl}/api/overview/endpoints?range=1h&sort=errors`);
  assert.deepEqual(byErrors.endpoints.map((e) => e.endpoint), ['POST /checkout', 'GET /products/:id']);

  const statementsUrl = `${c.adminUrl}/api/overview/statements?range=1h`;
  const { statements } = await getJson<{ statements: StatementRow[] }>(statementsUrl);
  const product = statements.find((s) => s.statement === normalizeSql(PRODUCTS))!;
  assert.equal(product.calls, 200);
  assert.equal(product.requests, 200);
  assert.equal(product.totalMs, 5025);
  near(product.p95Ms, 190 / 4, 'statement p95');
  assert.equal(product.nPlusOne, 0);
  assert.equal(product.pgStatStatements, null);
  const prices = statements.find((s) => s.statement === normalizeSql(PRICES))!;
  assert.deepEqual([prices.calls, prices.requests, prices.nPlusOne, prices.totalMs], [100, 20, 20, 525]);

  // A late span of an already summarized request: its re-summary replaces its figures.
  const { requests } = await getJson<{ requests: { correlationId: string; url: string }[] }>(`${c.adminUrl}/api/requests?since=1h&url=/products/7%3F&limit=5`);
  assert.equal(requests.length, 1);
  const id = requests[0]!.correlationId;
  const view = await getJson<{ summary: { time: string } }>(`${c.adminUrl}/api/requests/${id}`);
  const startMs = Date.parse(view.summary.time);
  await postTraces(
    c.otlpUrl,
    querySpans({ ...sampleRequest(), correlationId: id, startMs }, [{ sql: 'SELECT * FROM reviews WHERE product_id = 7', atMs: 1, ms: 1 }]),
  );
  const after = await eventually(async () => {
    const body = await getJson<{ statements: StatementRow[] }>(statementsUrl);
    return body.statements.some((s) => s.statement.startsWith('select * from reviews')) ? body.statements : undefined;
  }, 20_000, 'the re-summary rolled up');
  assert.equal(after.find((s) => s.statement === normalizeSql(PRODUCTS))!.calls, 200, 'the re-summarized request is counted once');
  const again = (await getJson<{ endpoints: EndpointRow[] }>(endpointsUrl)).endpoints.find((e) => e.endpoint === 'GET /products/:id')!;
  assert.equal(again.requests, 200);
  assert.equal(again.totalMs, 20100);
  // Its DB time grew from 1.75 to 2 ms (the union of [0, 1.75] and [1, 2]).
  assert.ok(Math.abs(again.dbShare - 5550.25 / 20100) < 1e-6, `db share after the re-summary ${again.dbShare}`);

  // The pg-agent's pg_stat_statements totals for the same statement, beside the sampled figures.
  const res = await fetch(`${c.otlpUrl}/v1/logs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      resourceLogs: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'pg' } }] },
          scopeLogs: [
            {
              scope: { name: 'bitville.pg' },
              logRecords: [
                {
                  timeUnixNano: `${Date.now()}000000`,
                  severityNumber: 9,
                  body: { stringValue: 'pg_stat_statements #1' },
                  attributes: [
                    { key: 'event.name', value: { stringValue: 'postgresql.statements.top' } },
                    { key: 'db.query.text', value: { stringValue: 'SELECT * FROM products WHERE id = $1' } },
                    { key: 'postgresql.query_id', value: { stringValue: '-123' } },
                    { key: 'postgresql.statements.calls', value: { intValue: '250' } },
                    { key: 'postgresql.statements.total_time_ms', value: { doubleValue: 6000.5 } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    }),
  });
  assert.equal(res.status, 200);
  const withPg = (await getJson<{ statements: StatementRow[] }>(statementsUrl)).statements.find((s) => s.statement === normalizeSql(PRODUCTS))!;
  assert.deepEqual(withPg.pgStatStatements, { calls: 250, totalMs: 6000.5, meanMs: 24 });

  // Latency over time: the whole range in intervals; the request volume adds up.
  const series = await getJson<{ stepMs: number; points: { requests: number }[] }>(`${c.adminUrl}/api/overview/latency?range=1h`);
  assert.equal(series.stepMs, 60_000);
  assert.equal(series.points.reduce((n, p) => n + p.requests, 0), 220);
  const one = await getJson<{ points: { requests: number }[] }>(`${c.adminUrl}/api/overview/latency?range=1h&endpoint=${encodeURIComponent('POST /checkout')}`);
  assert.equal(one.points.reduce((n, p) => n + p.requests, 0), 20);
  assert.equal((await fetch(`${c.adminUrl}/api/overview/endpoints?range=soon`)).status, 400);

  // The same figures on the command line, also after a kill -9.
  const top = async (...args: string[]) => (await run(process.execPath, [CLI, 'top', ...args, '--config', c.configPath], { cwd: c.dir })).stdout;
  const cliRows = JSON.parse(await top('endpoints', '--range', '1h', '--json')) as { endpoints: EndpointRow[] };
  assert.deepEqual(cliRows.endpoints, (await getJson<{ endpoints: EndpointRow[] }>(endpointsUrl)).endpoints);
  await c.kill();
  const text = await top('endpoints', '--range', '1h');
  const lines = text.trim().split('\n');
  assert.match(lines[1]!, /^ENDPOINT\s+REQUESTS\s+P50\s+P95\s+P99\s+ERRORS\s+DB\s+N\+1\s+TOTAL$/);
  assert.match(lines[2]!, /^GET \/products\/:id\s+200\s+/);
  assert.match(lines[3]!, /^POST \/checkout\s+20\s+1\.0 s\s+1\.0 s\s+1\.0 s\s+25\.0%\s+10\.0%\s+0\s+20 s$/);
  const queries = await top('queries', '--range', '1h', '--sort', 'calls', '--limit', '2');
  const q = queries.trim().split('\n');
  assert.equal(q.length, 4);
  assert.match(q[2]!, /^\s*200\s+5\.0 s\s+25 ms\s+.*\s+200\s+0\s+250\s+6\.0 s\s+select \* from products where id = \?$/);
  await assert.rejects(top('queries', '--sort', 'nonsense'), /--sort: one of/);
});

test('the overview page in Chromium: chart, sortable tables by keyboard, an endpoint page, links to the slowest requests', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no ${CHROMIUM} (apt-get install chromium); the overview page test needs it`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const c = await overviewCollector(t);
  await send(c, dataSet().filter((_, i) => i % 4 === 0 || i >= 200));
  await eventually(async () => {
    const body = await getJson<{ endpoints: EndpointRow[] }>(`${c.adminUrl}/api/overview/endpoints?range=1h`);
    return body.endpoints.reduce((n, e) => n + e.requests, 0) === 70 ? true : undefined;
  }, 20_000, 'all 70 requests rolled up');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--headless'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const shots = tempDir(t);
  const shoot = async (name: string) => {
    await page.screenshot({ path: join(shots, name), fullPage: true });
    for (const dir of [join(process.cwd(), 'test-output'), process.env.BITVILLE_SCREENSHOT_DIR].filter((d): d is string => !!d)) {
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(shots, name), join(dir, name));
    }
  };

  const res = await page.goto(`${c.adminUrl}/overview?range=1h`);
  assert.equal(res?.status(), 200);
  assert.equal(await page.locator('figure.chart svg path.line.p95').count(), 1);
  const volume = await page.locator('figure.chart rect.vol title').allTextContents();
  assert.ok(volume.some((v) => /\d+ requests, p50/.test(v)), volume.join(' | '));
  const rows = page.locator('#endpoint-table tbody tr');
  assert.equal(await rows.count(), 2);
  assert.deepEqual(await rows.locator('td:first-child').allInnerTexts(), ['POST /checkout', 'GET /products/:id']);
  await shoot('overview.png');

  // Sorting by a column header, from the keyboard: focus the link, press Enter.
  const header = page.locator('#endpoint-table th a', { hasText: 'Requests' });
  await header.focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(/sort=requests/);
  assert.deepEqual(await page.locator('#endpoint-table tbody tr td:first-child').allInnerTexts(), ['GET /products/:id', 'POST /checkout']);
  assert.equal(await page.locator('#endpoint-table th[aria-sort]').innerText(), 'Requests ▾');
  assert.match(await page.locator('#statement-table tbody').innerText(), /select \* from products where id = \?/);

  // The endpoint's own page and chart, then its slowest requests in the request list.
  await page.locator('#endpoint-table a', { hasText: 'POST /checkout' }).click();
  await page.waitForURL(/\/overview\/endpoint\?/);
  assert.match(await page.locator('h1').innerText(), /POST \/checkout/);
  assert.match(await page.locator('.facts').innerText(), /Errors\s+25\.0 %/);
  assert.equal(await page.locator('figure.chart svg').count(), 1);
  await shoot('overview-endpoint.png');
  await page.locator('a', { hasText: 'slowest requests' }).click();
  await page.waitForURL(/slowest=1/);
  assert.equal(await page.locator('#requests tbody tr').count(), 20);
  assert.ok((await page.locator('#requests tbody tr td:nth-child(7)').allInnerTexts()).every((u) => u.includes('/checkout')));

  // Escaped: a hostile endpoint name is text, not markup.
  await page.goto(`${c.adminUrl}/overview/endpoint?range=1h&name=${encodeURIComponent('<img src=x onerror=alert(1)>')}`);
  assert.equal(await page.locator('img').count(), 0);
  assert.match(await page.locator('h1').innerText(), /<img src=x/);
});

test('with an admin token, every overview page and API needs it', async (t) => {
  const c = await startCollector(t, {
    config: {
      processors: { correlate: {}, overview: {} },
      service: { pipelines: { traces: { processors: ['correlate', 'overview'] } }, telemetry: { metrics: { auth: { bearer_token: 's3cret' } } } },
    },
  });
  const get = (path: string, token?: string) => fetch(`${c.adminUrl}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  for (const path of ['/overview', '/overview/endpoint?name=x', '/api/overview/endpoints', '/api/overview/statements', '/api/overview/latency']) {
    assert.equal((await get(path)).status, 401, `${path} without a token`);
    assert.equal((await get(path, 'wrong')).status, 401, `${path} with a wrong token`);
  }
  assert.equal((await get('/overview', 's3cret')).status, 200);
  const empty = (await (await get('/api/overview/endpoints?range=7d', 's3cret')).json()) as { endpoints: unknown[] };
  assert.deepEqual(empty.endpoints, []);
});
