// The trace view for a trace that is not a PHP request: the real OpenTelemetry JS SDK sends a
// trace whose root is an INTERNAL span (nested spans across two services, a span event, a
// recorded exception, an ERROR status) and two log records of the same trace to a real
// collector with the correlate processor. The JSON API, the HTML page, the CLI and (with
// Chromium) the rendered page show all of it, nested and ordered, and nothing says "pending".
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLI, eventually, startCollector } from './collector.js';
import { repoRoot } from './env.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';

/** Sends the trace through the SDK; returns its ids. Times are fixed offsets from `t0`. */
async function sendTrace(otlpUrl: string) {
  const t0 = Date.now() - 5_000;
  const at = (ms: number) => new Date(t0 + ms);
  const tracers = ['importer', 'billing'].map(
    (service) =>
      new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': service }),
        spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${otlpUrl}/v1/traces` }))],
      }),
  );
  const [importer, billing] = tracers.map((p) => p.getTracer('job', '1.0.0')) as [ReturnType<BasicTracerProvider['getTracer']>, ReturnType<BasicTracerProvider['getTracer']>];
  const logs = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'importer' }),
    processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${otlpUrl}/v1/logs` }) })],
  });
  const logger = logs.getLogger('job');

  const root = importer.startSpan('nightly import', { kind: SpanKind.INTERNAL, startTime: at(0) });
  const inRoot = trace.setSpan(context.active(), root);
  const load = importer.startSpan('load batch', { kind: SpanKind.INTERNAL, startTime: at(10) }, inRoot);
  load.addEvent('batch loaded', { rows: 3 }, at(40));
  const inLoad = trace.setSpan(context.active(), load);
  const charge = billing.startSpan('charge card', { kind: SpanKind.CLIENT, startTime: at(50) }, inLoad);
  const failure = new TypeError('card declined: <insufficient funds>');
  failure.stack = 'TypeError: card declined: <insufficient funds>\n    at charge (billing.js:12:7)\n    at run (job.js:3:1)';
  charge.recordException(failure, at(80));
  charge.setStatus({ code: SpanStatusCode.ERROR, message: 'payment failed' });
  charge.end(at(90));
  load.end(at(100));
  const report = importer.startSpan('write report', { kind: SpanKind.INTERNAL, startTime: at(120) }, inRoot);
  report.end(at(180));
  root.end(at(200));
  // Emitted out of order on purpose: the view sorts by time.
  logger.emit({ timestamp: at(150), severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: 'report written', context: trace.setSpan(context.active(), report) });
  logger.emit({ timestamp: at(85), severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', body: 'charge failed for order 7', context: inLoad });
  for (const p of tracers) await p.shutdown();
  await logs.shutdown();
  return { traceId: root.spanContext().traceId, rootId: root.spanContext().spanId, loadId: load.spanContext().spanId, chargeId: charge.spanContext().spanId, reportId: report.spanContext().spanId };
}

test('trace view: an SDK trace without a request span, with nesting, events, an exception and logs, in JSON, HTML and the CLI; never pending', async (t) => {
  const c = await startCollector(t, {
    config: {
      processors: { correlate: { window: '200ms' } },
      service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
    },
  });
  const ids = await sendTrace(c.otlpUrl);
  const get = async (path: string) => {
    const res = await fetch(`${c.adminUrl}${path}`);
    return { status: res.status, text: await res.text() };
  };

  // JSON: both addresses give the same view.
  const api = await get(`/api/traces/${ids.traceId}`);
  assert.equal(api.status, 200);
  const view = JSON.parse(api.text);
  assert.deepEqual(JSON.parse((await get(`/api/requests/${ids.traceId}`)).text).trace, view.trace);
  assert.equal(view.summaryState, 'none', 'a trace without a SERVER span has nothing to summarize');
  assert.equal(view.request, null);
  assert.deepEqual(
    view.trace.spans.map((s: any) => [s.name, s.depth, s.kind, s.service, s.parentSpanId]),
    [
      ['nightly import', 0, 'internal', 'importer', ''],
      ['load batch', 1, 'internal', 'importer', ids.rootId],
      ['charge card', 2, 'client', 'billing', ids.loadId],
      ['write report', 1, 'internal', 'importer', ids.rootId],
    ],
  );
  assert.deepEqual(view.trace.spans.map((s: any) => [s.offsetMs, s.durationMs]), [[0, 200], [10, 90], [50, 40], [120, 60]], 'to scale from the trace start');
  const [, load, charge] = view.trace.spans;
  assert.deepEqual(load.events, [{ name: 'batch loaded', offsetMs: 40, attributes: { rows: 3 }, exception: null }]);
  assert.deepEqual(charge.status, { code: 'error', message: 'payment failed' });
  assert.equal(charge.events.length, 1);
  assert.deepEqual(charge.events[0].exception, {
    type: 'TypeError',
    message: 'card declined: <insufficient funds>',
    stacktrace: 'TypeError: card declined: <insufficient funds>\n    at charge (billing.js:12:7)\n    at run (job.js:3:1)',
  });
  assert.deepEqual(
    view.trace.logs.map((l: any) => [l.offsetMs, l.severity, l.body, l.spanId]),
    [
      [85, 'ERROR', 'charge failed for order 7', ids.loadId],
      [150, 'INFO', 'report written', ids.reportId],
    ],
  );
  assert.deepEqual(view.trace.services, ['importer', 'billing']);
  assert.equal(view.trace.errorCount, 1);

  // HTML: the tree in order with its nesting, the exception's stack in a <details>, the logs.
  for (const path of [`/traces/${ids.traceId}`, `/requests/${ids.traceId}`, `/traces?id=%20${ids.traceId}%20`]) {
    const page = await get(path);
    assert.equal(page.status, 200, path);
    const h = page.text;
    assert.doesNotMatch(h, /pending|window open|not summarized|yet/i, `${path} never calls a complete trace pending`);
    assert.doesNotMatch(h, /<script|https?:\/\/(?!127\.0\.0\.1)/i, 'no script, nothing from elsewhere');
    const order = [ids.rootId, ids.loadId, ids.chargeId, ids.reportId].map((id) => h.indexOf(`id="span-${id}"`));
    assert.ok(order.every((i, n) => i > 0 && (n === 0 || i > order[n - 1]!)), `spans in tree order: ${order}`);
    assert.match(h, new RegExp(`id="span-${ids.chargeId}" data-span-id="${ids.chargeId}" data-parent-span-id="${ids.loadId}" data-depth="2" data-kind="client"`));
    assert.match(h, /<span class="exc-type">TypeError<\/span>: <span class="exc-msg">card declined: &lt;insufficient funds&gt;<\/span><details><summary>stack trace<\/summary><pre>TypeError: card declined: &lt;insufficient funds&gt;\n {4}at charge \(billing\.js:12:7\)/);
    assert.match(h, /Status error: payment failed/);
    assert.match(h, /<b>batch loaded<\/b> at \+40\.0 ms <span class="attrs"><code>rows=3<\/code>/);
    assert.ok(h.indexOf('charge failed for order 7') < h.indexOf('report written'), 'logs in time order');
    assert.match(h, new RegExp(`<a href="#span-${ids.loadId}">load batch</a></td><td class="body">charge failed for order 7`));
  }
  assert.match((await get('/')).text, /<form class="filters" id="open-trace" method="get" action="\/traces">/);
  assert.equal((await get('/traces?id=')).status, 400);
  assert.equal((await get(`/traces/${'f'.repeat(32)}`)).status, 404);

  // CLI: the indented tree, the exception and the logs; nothing pending.
  const out = (await run(process.execPath, [CLI, 'trace', ids.traceId, '--config', c.configPath])).stdout;
  assert.match(out, new RegExp(`^trace ${ids.traceId} \\(importer\\)\n`));
  assert.doesNotMatch(out, /pending|window open|not summarized|yet/i);
  const names = out.split('\n').filter((l) => /ms {2}\s*(nightly import|load batch|charge card|write report) \(/.test(l));
  assert.deepEqual(
    names.map((l) => l.replace(/^\|[^|]*\|\s+[\d.]+ ms {2}/, '')),
    ['nightly import (internal, importer)', '  load batch (internal, importer)', '    charge card (client, billing)  [error: payment failed]', '  write report (internal, importer)'],
  );
  assert.match(out, /\n\s+! exception @80\.0 ms: TypeError: card declined: <insufficient funds>\n\s+at charge \(billing\.js:12:7\)/);
  assert.match(out, /\* batch loaded @40\.0 ms/);
  assert.match(out, /logs \(2\)\n\s+\+85\.0 ms {2}ERROR {2}importer {2}charge failed for order 7\n\s+\+150\.0 ms {2}INFO {3}importer {2}report written\n/);
  const cliJson = JSON.parse((await run(process.execPath, [CLI, 'trace', ids.traceId, '--config', c.configPath, '--json'])).stdout);
  assert.deepEqual(cliJson.trace, view.trace);

  // Once the processor has joined the id (its window passed), still complete, not "incomplete".
  const metric = async (name: string) => {
    const line = (await get('/metrics')).text.split('\n').find((l) => l.startsWith(`${name}{`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  await eventually(async () => ((await metric('bitville_correlate_joins_total')) >= 1 ? true : undefined), 10_000, 'the join of the trace id');
  assert.equal(await metric('bitville_correlate_incomplete_total'), 0, 'a trace without DB spans is not an incomplete request');
  assert.equal(await metric('bitville_correlate_summaries_total'), 0);
  assert.equal(JSON.parse((await get(`/api/traces/${ids.traceId}`)).text).summaryState, 'none');
  assert.doesNotMatch((await get(`/traces/${ids.traceId}`)).text, /pending|window open|not summarized|yet/i);

  // In a browser: reached by pasting the id on the list page, keyboard-operable, screenshot kept.
  if (!existsSync(CHROMIUM)) {
    t.diagnostic(`no ${CHROMIUM} (apt-get install chromium): browser part skipped`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--headless'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const elsewhere: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(c.adminUrl)) elsewhere.push(r.url());
  });
  await page.goto(`${c.adminUrl}/`);
  await page.fill('#open-trace input[name=id]', ids.traceId);
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/traces\?id=/);
  assert.equal(await page.locator('#spans li.span').count(), 4);
  assert.equal(await page.locator('#logs tbody tr').count(), 2);
  const track = (await page.locator(`#span-${ids.rootId} .track`).boundingBox())!;
  const bar = (await page.locator(`#span-${ids.chargeId} .bar`).boundingBox())!;
  assert.ok(Math.abs(bar.x - track.x - (track.width * 50) / 200) < 2 && Math.abs(bar.width - (track.width * 40) / 200) < 2, `the span bar is to scale: ${JSON.stringify({ track, bar })}`);
  const indent = async (id: string) => (await page.locator(`#span-${id} .label .kind`).boundingBox())!.x;
  assert.ok((await indent(ids.chargeId)) > (await indent(ids.loadId)) && (await indent(ids.loadId)) > (await indent(ids.rootId)), 'children are indented');

  // Tab to the stack trace's <summary> and open it with the keyboard.
  const details = page.locator(`#span-${ids.chargeId} details`);
  assert.equal(await details.evaluate((d) => (d as any).open), false);
  let focused = '';
  for (let i = 0; i < 30 && focused !== 'SUMMARY'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => (globalThis as any).document.activeElement?.tagName ?? '');
  }
  assert.equal(focused, 'SUMMARY', 'the stack trace toggle is reachable with Tab');
  await page.keyboard.press('Enter');
  assert.equal(await details.evaluate((d) => (d as any).open), true);
  assert.ok(await page.locator(`#span-${ids.chargeId} pre`).isVisible());
  assert.deepEqual(elsewhere, [], 'the page loads nothing from elsewhere');
  assert.equal(await page.locator('script').count(), 0);

  const dir = join(repoRoot, 'test-output');
  mkdirSync(dir, { recursive: true });
  const shot = join(dir, 'trace-view.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);
});
