// The collapsed-stack parser, self times and top frames, and the flame graph's layout and SVG.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FLAME_WIDTH, layoutFlameGraph, renderFlameGraph, renderProfileSection } from './flamegraph.js';
import { formatProfileTop, isSqlFrame, parseCollapsed, profileOf, profileSummaryAttributes } from './profile.js';
import { buildSummary, joinRecords } from './join.js';
import { span as spanRecord } from '../../collector/store/records.fixture.js';
import { toGelf } from '../gelf/serializer.js';

/** A 400 ms request sampled every 10 ms: 38 samples (8 of them in SQL through PDO). */
const COLLAPSED = [
  '/www/report.php;Controller::show;slow_report_builder 20',
  '/www/report.php;Controller::show;Repo::load;PDOStatement::execute 6',
  '/www/report.php;Controller::show;Repo::load;pg_query 2',
  '/www/report.php;Controller::show 3',
  '/www/report.php;Controller::show;slow_report_builder 2',
  '/www/report.php;render<&"> 4',
  '(truncated) 1',
].join('\n');

const span = (collapsed: string, durationMs = 400, periodMs: number | string = 10) => ({
  durationMs,
  attributes: { 'bitville.profile.collapsed': collapsed, 'bitville.profile.period_ms': periodMs, 'bitville.profile.samples': 38 },
});

test('parseCollapsed adds duplicates up and skips malformed lines and empty frames', () => {
  const stacks = parseCollapsed('a;b 2\n;a;;b 3\nno-count\nx y\na -1\na 0\n 5\nc 1.5\nc 1\r\n');
  assert.deepEqual(stacks, [
    { frames: ['a', 'b'], count: 5 },
    { frames: ['c'], count: 1 },
  ]);
  assert.deepEqual(parseCollapsed(''), []);
});

test('profileOf: self time per function (ms and share of wall time), SQL time, the truncated weight', () => {
  const p = profileOf(span(COLLAPSED))!;
  assert.equal(p.samples, 38);
  assert.equal(p.msPerSample, 10);
  assert.deepEqual(p.top.slice(0, 3), [
    { name: 'slow_report_builder', selfMs: 220, percent: 55 },
    { name: 'PDOStatement::execute', selfMs: 60, percent: 15 },
    { name: 'render<&">', selfMs: 40, percent: 10 },
  ]);
  assert.equal(p.sqlMs, 80);
  assert.equal(p.truncatedSamples, 1);
  assert.ok(!p.top.some((f) => f.name === '(truncated)'));
  // Samples that would add up to more than the wall time (timer edges) are shrunk to fit it.
  assert.equal(profileOf(span(COLLAPSED, 190))!.msPerSample, 5);
  assert.equal(profileOf({ durationMs: 400, attributes: {} }), null);
  assert.equal(profileOf(span('garbage')), null);
  assert.equal(profileOf(span(COLLAPSED, 400, 'x')), null);
});

test('the summary attribute is the top 5 "function self_ms"; bitville trace prints them', () => {
  assert.deepEqual(profileSummaryAttributes(span(COLLAPSED)), {
    'bitville.profile_top': ['slow_report_builder 220.0', 'PDOStatement::execute 60.0', 'render<&"> 40.0', 'Controller::show 30.0', 'pg_query 20.0'],
  });
  assert.deepEqual(profileSummaryAttributes({ durationMs: 5, attributes: {} }), {});
  const text = formatProfileTop(profileOf(span(COLLAPSED)));
  assert.equal(text[0], '  profile: 38 samples every 10 ms; top frames by self time:');
  assert.match(text[1]!, /^ {4}slow_report_builder +220\.0 ms +55\.0%$/);
  assert.match(text[2]!, /^ {4}PDOStatement::execute +60\.0 ms +15\.0% {2}\[SQL\]$/);
  assert.equal(text.length, 6);
  assert.deepEqual(formatProfileTop(null), []);
});

test('isSqlFrame: pg_* functions and anything PDO', () => {
  for (const name of ['pg_query', 'pg_execute', 'PDO::query', 'PDOStatement::execute', 'App\\Db\\PDOConnection::run']) assert.ok(isSqlFrame(name), name);
  for (const name of ['slow_report_builder', 'App\\pg_helper', 'Report::page', '/www/pg_index.php']) assert.ok(!isSqlFrame(name), name);
});

test('flame graph layout: one node per distinct frame path, widths to scale with the wall time, children within their parent', () => {
  const p = profileOf(span(COLLAPSED))!;
  const layout = layoutFlameGraph(p);
  // request, report.php, Controller::show, slow_report_builder, Repo::load, PDOStatement::execute, pg_query, render, (truncated)
  assert.equal(layout.nodes.length, 9);
  assert.equal(layout.hidden, 0);
  const [root, ...frames] = layout.nodes;
  const scale = FLAME_WIDTH / 400;
  assert.equal(root!.name, 'request');
  assert.equal(root!.width, 38 * 10 * scale, 'the samples cover 380 of 400 ms');
  const byName = Object.fromEntries(frames.map((f) => [f.name, f]));
  assert.equal(byName['/www/report.php']!.width, 37 * 10 * scale);
  assert.equal(byName['slow_report_builder']!.width, 22 * 10 * scale);
  assert.equal(byName['slow_report_builder']!.ms, 220);
  assert.equal(byName['slow_report_builder']!.percent, 55);
  // Heaviest first, packed from the parent's left edge.
  assert.equal(byName['/www/report.php']!.x, 0);
  assert.equal(byName['slow_report_builder']!.x, 0);
  assert.equal(byName['Repo::load']!.x, 22 * 10 * scale);
  for (const parent of layout.nodes) {
    const children = layout.nodes.filter((n) => n.depth === parent.depth + 1 && n.x >= parent.x - 1e-9 && n.x + n.width <= parent.x + parent.width + 1e-9);
    const sum = children.reduce((s, c) => s + c.width, 0);
    assert.ok(sum <= parent.width + 1e-9, `${parent.name}: children ${sum} within ${parent.width}`);
  }
  const depth1 = frames.filter((f) => f.depth === 1).reduce((s, f) => s + f.width, 0);
  assert.ok(Math.abs(depth1 - root!.width) < 1e-9, 'the first level adds up to the root');
  assert.deepEqual(frames.filter((f) => f.sql).map((f) => f.name).sort(), ['PDOStatement::execute', 'pg_query']);
  assert.equal(layout.height, 20 + 5 * 17);
});

test('flame graph SVG: a rect and a title per node, text escaped, SQL frames marked, no script', () => {
  const p = profileOf(span(COLLAPSED))!;
  const svg = renderFlameGraph(p);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" class="flamegraph" viewBox="0 0 1200 105"/);
  assert.equal((svg.match(/<rect /g) ?? []).length, 9);
  assert.equal((svg.match(/<title>/g) ?? []).length, 9);
  const widths = [...svg.matchAll(/<rect x="[\d.]+" y="37" width="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(widths.reduce((a, b) => a + b, 0), 1140, 'the first level (report.php and the truncated rest) spans 380 ms of 400, at 3 units per ms');
  assert.match(svg, /<title>slow_report_builder — 220 ms, 55\.0%<\/title>/);
  assert.match(svg, /<title>render&lt;&amp;&quot;&gt; — 40\.0 ms, 10\.0%<\/title>/);
  assert.doesNotMatch(svg, /render<&"/);
  assert.equal((svg.match(/<g class="frame sql">/g) ?? []).length, 2);
  assert.doesNotMatch(svg, /<script|on\w+=/i);
  assert.match(svg, /<text x="1200" y="10" text-anchor="end" fill="#778">400 ms<\/text>/, 'the axis ends at the wall time');
});

test('flame graph: frames narrower than half a unit are left out, their time stays in the parent', () => {
  const stacks = ['main;big 10000', ...Array.from({ length: 50 }, (_, i) => `main;tiny${i} 1`)].join('\n');
  const layout = layoutFlameGraph(profileOf(span(stacks, 100_500, 10))!);
  assert.equal(layout.hidden, 50);
  assert.deepEqual(layout.nodes.map((n) => n.name), ['request', 'main', 'big']);
});

test('the profile section: graph and top frames, or how to enable profiling; nothing without a request', () => {
  const p = profileOf(span(COLLAPSED))!;
  const html = renderProfileSection(p, 75, true);
  assert.match(html, /^<section id="profile"/);
  assert.match(html, /38 wall-clock samples every 10 ms \(380 of 400 ms sampled\)/);
  assert.match(html, /SQL frames \(pg_\*, PDO\*\): 80\.0 ms sampled, against 75\.0 ms of DB spans/);
  assert.match(html, /1 samples of rarer stacks were cut for size/);
  assert.doesNotMatch(html, /sampling began/, 'a profile from the start says nothing of a delay');
  const late = { ...span(COLLAPSED), attributes: { ...span(COLLAPSED).attributes, 'bitville.profile.delay_ms': 50 } };
  assert.match(renderProfileSection(profileOf(late)!, 75, true), /sampling began 50\.0 ms into the request, so its first 50\.0 ms are not shown/);
  assert.match(html, /<td><code>render&lt;&amp;&quot;&gt;<\/code><\/td>/);
  const missing = renderProfileSection(null, 0, true);
  assert.match(missing, /apt-get install php-excimer/);
  assert.match(missing, /bitville\.profile_period_ms/);
  assert.equal(renderProfileSection(null, 0, false), '');
});

test('a joined request with a profile: the summary carries bitville.profile_top, which GELF sends as _profile_top', () => {
  const request = { ...spanRecord(1, { durationMs: 400, correlationId: 'c1', attributes: span(COLLAPSED).attributes }), id: 1, receivedAtMs: 0 };
  const summary = buildSummary(joinRecords('c1', [request]))!;
  assert.deepEqual((summary.attributes['bitville.profile_top'] as string[]).slice(0, 2), ['slow_report_builder 220.0', 'PDOStatement::execute 60.0']);
  const gelf = toGelf({ ...summary, id: 2, receivedAtMs: 0 }, { defaultHost: 'h', maxFieldBytes: 32_000, maxFullMessageBytes: 64_000 });
  assert.match(String(gelf._profile_top), /^\["slow_report_builder 220\.0","PDOStatement::execute 60\.0",/);
  const without = buildSummary(joinRecords('c1', [{ ...request, attributes: {} }]))!;
  assert.equal(without.attributes['bitville.profile_top'], undefined);
});
