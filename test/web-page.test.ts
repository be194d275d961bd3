// The admin web page in headless Chromium (Debian's chromium driven by playwright-core): the
// list shows a seeded request, its page draws the request and its queries to scale with the
// N+1 pattern highlighted. Screenshots go to the test's temp dir (and to
// $BITVILLE_SCREENSHOT_DIR when set, to look at them).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { postTraces, querySpans, requestSpans, sampleRequest } from '../plugins/correlate/traces.fixture.js';
import { eventually, startCollector } from './collector.js';
import { tempDir } from './env.js';

const CHROMIUM = '/usr/bin/chromium';

test('the web page lists a seeded request and draws its queries to scale, N+1 highlighted', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no ${CHROMIUM} (apt-get install chromium); the web page test needs it`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const c = await startCollector(t, {
    config: {
      processors: { correlate: { window: '200ms' } },
      service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
    },
  });
  const r = sampleRequest({ durationMs: 600 });
  const other = sampleRequest({ durationMs: 900, url: 'http://shop.example/report.php', status: 500 }, 0);
  for (const x of [r, other]) {
    await postTraces(c.otlpUrl, requestSpans(x));
    await postTraces(c.otlpUrl, querySpans(x));
  }
  await eventually(async () => {
    const body = (await (await fetch(`${c.adminUrl}/api/requests`)).json()) as { requests: unknown[] };
    return body.requests.length === 2 ? true : undefined;
  }, 10_000, 'both summaries');

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--headless'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const shots = tempDir(t);
  const keep = (name: string) => {
    const dir = process.env.BITVILLE_SCREENSHOT_DIR;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(shots, name), join(dir, name));
  };

  const list = await page.goto(`${c.adminUrl}/?since=1h`);
  assert.equal(list?.status(), 200);
  const row = page.locator(`tr[data-correlation-id="${r.correlationId}"]`);
  assert.equal(await row.count(), 1);
  const cells = await row.locator('td').allInnerTexts();
  assert.match(cells[1]!, /^600 ms/);
  assert.equal(cells[2], '452 ms');
  assert.match(cells[3]!, /^8\s*N\+1$/);
  assert.equal(cells[6], r.url);
  await page.screenshot({ path: join(shots, 'requests.png'), fullPage: true });
  keep('requests.png');

  // Filters narrow the list.
  await page.fill('input[name=url]', 'report');
  await page.click('button[type=submit]');
  await page.waitForURL(/url=report/);
  assert.equal(await page.locator('#requests tbody tr').count(), 1);
  assert.equal(await page.locator(`tr[data-correlation-id="${other.correlationId}"]`).count(), 1);

  // The request's page: one bar for the request, one per query, drawn to scale.
  await page.goto(`${c.adminUrl}/?since=1h`);
  await row.locator('a').click();
  await page.waitForURL(new RegExp(`/requests/${r.correlationId}$`));
  const rows = page.locator('#waterfall .row');
  assert.equal(await rows.count(), 9);
  assert.equal(await page.locator('#waterfall .row.nplus').count(), 6);
  assert.match(await page.locator('.nplus-note').first().innerText(), /N\+1 pattern: 6 × select \* from order_items where order_id = \?/);
  const box = async (i: number) => (await rows.nth(i).locator('.bar').boundingBox())!;
  const track = (await rows.nth(0).locator('.track').boundingBox())!;
  const request = await box(0);
  assert.ok(Math.abs(request.width - track.width) < 2, 'the request bar spans the track');
  const slow = await box(8); // the 380 ms query at 140 ms
  assert.ok(Math.abs(slow.width - (track.width * 380) / 600) < 2, `query bar width ${slow.width} is to scale`);
  assert.ok(Math.abs(slow.x - track.x - (track.width * 140) / 600) < 2, 'query bar offset is to scale');
  const colour = await rows.nth(2).locator('.bar').evaluate((el) => (globalThis as any).getComputedStyle(el).backgroundColor as string);
  assert.equal(colour, 'rgb(232, 89, 12)', 'N+1 queries are drawn in the highlight colour');
  await page.screenshot({ path: join(shots, 'request.png'), fullPage: true });
  keep('request.png');
  assert.ok(existsSync(join(shots, 'request.png')));
});
