// End to end, the path `npm run demo` takes: real PHP under `php -S` with agent.php, real
// PostgreSQL queries, the php-agent and pg-agent daemons, the collector with the correlate
// processor, and a GELF receiver. The request summary that reaches the receiver must count
// the queries the page ran, report a DB time within tolerance of what PHP measured around
// them, and flag the N+1 pattern.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import type { Received } from '../demo/gelf-receiver.js';
import { stackMissing, startStack, type Stack } from '../demo/stack.js';
import { PG_DSN, skipWithoutPhp, skipWithoutPostgres, tempDir } from './env.js';

interface Page {
  correlation_id: string;
  queries: number;
  db_ms: number;
}

async function summaryFor(stack: Stack, id: string, timeoutMs = 30_000): Promise<Received> {
  const find = () => stack.gelf.messages.find((m) => m._kind === 'summary' && m._correlation_id === id);
  const deadline = Date.now() + timeoutMs;
  for (let found = find(); ; found = find()) {
    if (found) return found;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no summary for ${id} at the GELF receiver within ${timeoutMs} ms`);
    await stack.gelf.waitFor(stack.gelf.messages.length + 1, left).catch(() => {});
  }
}

/** Server-side time cannot exceed what PHP measured around the calls; it is lower by the round trips. */
function assertDbTime(summary: Received, page: Page): void {
  const db = summary._db_time_ms as number;
  const tolerance = Math.max(25, page.db_ms * 0.1);
  assert.ok(db <= page.db_ms + 2 && db >= page.db_ms - tolerance, `summary DB time ${db} ms vs ${page.db_ms} ms measured by PHP (tolerance ${tolerance} ms)`);
}

test('demo path: the summary at the GELF receiver has the query count, the DB time and the N+1 flag', async (t) => {
  if (skipWithoutPhp(t) || (await skipWithoutPostgres(t))) return;
  const missing = await stackMissing(PG_DSN);
  if (missing) return t.skip(missing);
  const stack = await startStack({ dir: tempDir(t), pgDsn: PG_DSN });
  t.after(() => stack.stop());
  if (!stack.logSource) {
    // Sampling alone misses short statements, so exact counts need the server log.
    return t.skip('PostgreSQL writes no jsonlog/csvlog (logging_collector); run agents/pg/testdata/setup-server.sh');
  }
  const get = async (path: string) => {
    const res = await fetch(stack.appUrl + path);
    assert.equal(res.status, 200, path);
    return (await res.json()) as Page;
  };

  const orders = await get('/orders.php');
  const report = await get('/report.php');
  assert.equal(orders.queries, 11);

  const nPlusOne = await summaryFor(stack, orders.correlation_id);
  assert.equal(nPlusOne._db_query_count, 11);
  assert.equal(nPlusOne._n_plus_one, 'true');
  assert.equal(nPlusOne._n_plus_one_count, 10);
  assert.match(String(nPlusOne._n_plus_one_query), /^select sku, qty from bitville_demo\.order_items, pg_sleep\(\?\) where order_id = \?$/);
  assert.equal(nPlusOne._method, 'GET');
  assert.equal(nPlusOne._url, `${stack.appUrl}/orders.php`);
  assert.equal(nPlusOne._status_code, 200);
  assert.equal(nPlusOne._project, 'demo-shop');
  assert.equal(nPlusOne.short_message, 'correlate - demo-shop');
  assertDbTime(nPlusOne, orders);

  const slow = await summaryFor(stack, report.correlation_id);
  assert.equal(slow._db_query_count, 1);
  assert.equal(slow._n_plus_one, 'false');
  assertDbTime(slow, report);
  assert.ok((slow._duration_ms as number) >= (slow._db_time_ms as number), 'the request lasts at least as long as its queries');

  // The same request through the lookup API of the collector.
  const view = (await (await fetch(`${stack.adminUrl}/api/requests/${orders.correlation_id}`)).json()) as { queries: { nPlusOne: boolean }[] };
  assert.equal(view.queries.length, 11);
  assert.equal(view.queries.filter((q) => q.nPlusOne).length, 10);

});

test("demo path: the slow PHP page's flame graph names its function; the overview counts the demo's pages", async (t) => {
  if (skipWithoutPhp(t) || (await skipWithoutPostgres(t))) return;
  const missing = await stackMissing(PG_DSN);
  if (missing) return t.skip(missing);
  const stack = await startStack({ dir: tempDir(t), pgDsn: PG_DSN });
  t.after(() => stack.stop());
  const get = async (path: string) => {
    const res = await fetch(stack.appUrl + path);
    assert.equal(res.status, 200, path);
    return (await res.json()) as Page;
  };
  const orders = await get('/orders.php');
  await summaryFor(stack, orders.correlation_id);

  // The page that spends its time in PHP: its flame graph names the function (with excimer).
  const invoice = await get('/invoice.php');
  await summaryFor(stack, invoice.correlation_id);
  if (execFileSync('php', ['-m'], { encoding: 'utf8' }).split('\n').includes('excimer')) {
    const profiled = (await (await fetch(`${stack.adminUrl}/api/requests/${invoice.correlation_id}`)).json()) as { profile: { top: { name: string; selfMs: number }[] } | null };
    assert.ok(profiled.profile, 'the slow request carries a profile');
    const frames = profiled.profile.top.map((f) => f.name);
    assert.ok(frames.some((f) => f.includes('demo_render_invoice')), `top frames: ${frames.join(', ')}`);
    const page = await (await fetch(`${stack.adminUrl}/requests/${invoice.correlation_id}`)).text();
    assert.match(page, /<section id="profile"[\s\S]*demo_render_invoice/);
  } else t.diagnostic('PHP has no excimer extension (apt-get install php-excimer): the flame graph part is skipped');

  // The overview counts the demo's endpoints (the N+1 needs the orders page's short statements: the log source).
  const overview = (await (await fetch(`${stack.adminUrl}/api/overview/endpoints?range=1h`)).json()) as { endpoints: { endpoint: string; requests: number; nPlusOne: number }[] };
  const byName = new Map(overview.endpoints.map((e) => [e.endpoint, e]));
  assert.equal(byName.get('GET /orders.php')?.requests, 1);
  if (stack.logSource) assert.equal(byName.get('GET /orders.php')?.nPlusOne, 1);
  assert.equal(byName.get('GET /invoice.php')?.requests, 1);
  const html = await (await fetch(`${stack.adminUrl}/overview?range=1h`)).text();
  assert.match(html, /GET \/invoice\.php/);
});
