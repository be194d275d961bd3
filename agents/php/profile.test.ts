// Profiles of slow requests, end to end: real `php -S` with the excimer extension and agent.php
// -> real php-agent daemon -> real collector with the correlate processor; the stored span, the
// summary, the request page's flame graph and `bitville trace`. Plus the daemon's sanitiser.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { CLI, eventually, readStore, startCollector } from '../../test/collector.js';
import { skipWithoutPhp, tempDir } from '../../test/env.js';
import { daemonConfig, excimer, startDaemon, startPhp, withoutExcimer } from './harness.fixture.js';
import { PROFILE_LIMITS, sanitiseCollapsed } from './profile.js';

const run = promisify(execFile);

const CORRELATE = {
  processors: { correlate: { window: '200ms' } },
  service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
};

function stored(dbPath: string, kind: 'span' | 'summary') {
  return readStore(dbPath).filter((r) => r.kind === kind).map((r) => r.record);
}

/** Samples per stack line of a collapsed text. */
function lines(collapsed: string): { stack: string; count: number }[] {
  return collapsed.split('\n').map((l) => ({ stack: l.slice(0, l.lastIndexOf(' ')), count: Number(l.slice(l.lastIndexOf(' ') + 1)) }));
}

test('excimer: a slow page profile names the function it spent its time in: stored span, summary top frames, flame graph, bitville trace', async (t) => {
  if (skipWithoutPhp(t)) return;
  const ext = excimer();
  if ('missing' in ext) return t.skip(ext.missing);
  const dir = tempDir(t);
  const collector = await startCollector(t, { config: CORRELATE });
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const php = await startPhp(t, { threshold_ms: '100', socket: daemon.socketPath, state_file: join(dir, 'breaker') }, {}, ext.args);

  assert.equal((await php.get('/report.php?ms=20')).body, 'report ready\n', 'fast: answered, nothing sent');
  assert.equal((await php.get('/report.php?ms=300')).body, 'report ready\n');

  const [summary] = await eventually(() => (stored(collector.dbPath, 'summary').length ? stored(collector.dbPath, 'summary') : undefined), 15_000, 'the summary');
  const spans = stored(collector.dbPath, 'span');
  assert.equal(spans.length, 1, 'only the slow request was sent');
  const a = spans[0]!.attributes;
  assert.equal(a['bitville.profile.period_ms'], 10, 'the default period');
  const stacks = lines(a['bitville.profile.collapsed']);
  assert.equal(stacks.reduce((s, l) => s + l.count, 0), a['bitville.profile.samples']);
  // 300 ms of work at one sample per 10 ms (never more samples than the request's wall time holds).
  const samples = a['bitville.profile.samples'] as number;
  assert.ok(samples >= 20 && samples * 10 <= spans[0]!.durationMs + 20, `${samples} samples in ${spans[0]!.durationMs} ms`);
  const heaviest = stacks.sort((x, y) => y.count - x.count)[0]!;
  assert.match(heaviest.stack, /report\.php;render_report_page;slow_report_builder$/, 'the script, then the call chain');

  const top = summary.attributes['bitville.profile_top'] as string[];
  assert.ok(top.length >= 1 && top.length <= 5);
  const [name, selfMs] = top[0]!.split(' ');
  assert.equal(name, 'slow_report_builder', 'top frame by self time');
  assert.ok(Number(selfMs) >= 200 && Number(selfMs) <= spans[0]!.durationMs, `self ${selfMs} ms`);

  const page = await (await fetch(`${collector.adminUrl}/requests/${spans[0]!.traceId}`)).text();
  const svg = page.slice(page.indexOf('<svg'), page.indexOf('</svg>') + 6);
  assert.ok(svg.length > 100, 'the page has a flame graph');
  assert.match(svg, /<title>slow_report_builder — \d+(\.\d+)? ms, \d+\.\d%<\/title>/, 'its frame, with its time and share');
  assert.match(svg, />slow_report_builder</, 'labelled where it is wide enough');
  assert.doesNotMatch(page, /<script/i, 'no script');
  assert.match(page, /Top frames by self time[\s\S]*<code>slow_report_builder<\/code>/);

  const trace = (await run(process.execPath, [CLI, 'trace', spans[0]!.traceId, '--config', collector.configPath])).stdout;
  assert.match(trace, /profile: \d+ samples every 10 ms; top frames by self time:\n {4}slow_report_builder +\d+\.\d ms +\d+\.\d%/);
});

test('excimer: sampling starts after profile_delay_ms, a blocking call spanning that moment stays in the profile; 0 samples from the start', async (t) => {
  if (skipWithoutPhp(t)) return;
  const ext = excimer();
  if ('missing' in ext) return t.skip(ext.missing);
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const settings = { threshold_ms: '100', socket: daemon.socketPath, state_file: join(dir, 'breaker') };
  const delayed = await startPhp(t, { ...settings, profile_delay_ms: '350' }, {}, ext.args);
  const whole = await startPhp(t, { ...settings, profile_delay_ms: '0' }, {}, ext.args);
  // slow.php?ms=700 sleeps 700 ms at file scope; deep.php?depth=3&ms=150 computes 150 ms in
  // level_000_x, then 150 in level_001_x, then 150 in level_002_x.
  await delayed.get('/slow.php?ms=700&delay=350');
  await delayed.get('/deep.php?depth=3&name=1&ms=150&delay=350');
  await whole.get('/deep.php?depth=3&name=1&ms=150&delay=0');
  const spans = await eventually(() => (stored(collector.dbPath, 'span').length === 3 ? stored(collector.dbPath, 'span') : undefined), 15_000, 'three spans');
  const profile = (query: string) => {
    const span = spans.find((s) => s.attributes['url.query'] === query)!;
    return { durationMs: span.durationMs as number, samples: span.attributes['bitville.profile.samples'] as number, stacks: lines(span.attributes['bitville.profile.collapsed'] ?? '') };
  };
  // Samples whose innermost frame is the function or file (its self time).
  const self = (query: string, frame: string) => profile(query).stacks.filter((l) => l.stack.endsWith(frame)).reduce((n, l) => n + l.count, 0);

  // The sleep was under way at 350 ms: PHP ran the timer's callback only when it returned, and
  // the 350 ms from then back to 350 ms are charged to the script, where excimer charges a
  // built-in call: to its PHP caller. Only the first 350 ms are missing (the bound leaves room
  // for samples excimer adds if the machine is too busy to run PHP at once).
  const sleep = profile('ms=700&delay=350');
  assert.ok(self('ms=700&delay=350', 'slow.php') >= 33, `the script's sleep after 350 ms is in the profile: ${JSON.stringify(sleep)}`);
  assert.ok(sleep.samples * 10 <= sleep.durationMs - 350 + 50, `${sleep.samples} samples in ${sleep.durationMs} ms, the first 350 not sampled`);

  const deep = 'depth=3&name=1&ms=150';
  assert.ok(self(`${deep}&delay=350`, ';level_000_x') <= 1, `the first 150 ms, before profile_delay_ms, are not sampled: ${JSON.stringify(profile(`${deep}&delay=350`))}`);
  assert.ok(self(`${deep}&delay=350`, ';level_002_x') >= 3, 'the last 100 ms are');
  assert.ok(self(`${deep}&delay=0`, ';level_000_x') >= 5, `with 0, sampled from the start: ${JSON.stringify(profile(`${deep}&delay=0`))}`);
  // The span says where sampling began, so the request page can say the start is missing.
  const delayOf = (query: string) => spans.find((s) => s.attributes['url.query'] === query)!.attributes['bitville.profile.delay_ms'];
  assert.equal(delayOf('ms=700&delay=350'), 350);
  assert.equal(delayOf(`${deep}&delay=0`), 0);
});

test('without excimer the agent works unchanged and the request page says how to enable profiles', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const collector = await startCollector(t, { config: CORRELATE });
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const php = await startPhp(t, { threshold_ms: '100', socket: daemon.socketPath, state_file: join(dir, 'breaker') }, withoutExcimer(dir));
  assert.equal((await php.get('/report.php?ms=150')).body, 'report ready\n');
  const [summary] = await eventually(() => (stored(collector.dbPath, 'summary').length ? stored(collector.dbPath, 'summary') : undefined), 15_000, 'the summary');
  const [span] = stored(collector.dbPath, 'span');
  assert.equal(span!.attributes['url.path'], '/report.php');
  assert.equal(Object.keys(span!.attributes).filter((k) => k.startsWith('bitville.profile')).length, 0, 'no profile attributes');
  assert.equal(summary.attributes['bitville.profile_top'], undefined);
  const page = await (await fetch(`${collector.adminUrl}/requests/${span!.traceId}`)).text();
  assert.doesNotMatch(page, /<svg/);
  assert.match(page, /No profile was recorded for this request\. .*apt-get install php-excimer.*bitville\.profile_period_ms/s);
});

test('excimer: a profile far over the datagram limit is cut by weight, heaviest stacks kept, the rest one (truncated) line; profile_period_ms=0 or profile_sample_rate=0 turns it off', async (t) => {
  if (skipWithoutPhp(t)) return;
  const ext = excimer();
  if ('missing' in ext) return t.skip(ext.missing);
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  // Caps lifted, so only the datagram bound applies: 40 levels of 200-character names make
  // about 180 KB of collapsed stacks.
  const settings = { threshold_ms: '0', socket: daemon.socketPath, state_file: join(dir, 'breaker'), profile_period_ms: '1', profile_max_stacks: '100000', profile_max_bytes: '10000000' };
  const php = await startPhp(t, settings, {}, ext.args);
  assert.equal((await php.get('/deep.php?depth=40&name=200&ms=4')).body, 'deep page body\n');
  const [span] = await eventually(() => (stored(collector.dbPath, 'span').length ? stored(collector.dbPath, 'span') : undefined), 15_000, 'the span');
  const a = span.attributes;
  const collapsed = a['bitville.profile.collapsed'] as string;
  assert.ok(Buffer.byteLength(collapsed) < 64_000, `${Buffer.byteLength(collapsed)} bytes`);
  const got = lines(collapsed);
  const last = got.at(-1)!;
  assert.equal(last.stack, '(truncated)');
  assert.ok(last.count > 0);
  assert.equal(got.reduce((s, l) => s + l.count, 0), a['bitville.profile.samples'], 'every sample accounted for');
  const kept = got.slice(0, -1).map((l) => l.count);
  assert.deepEqual(kept, [...kept].sort((x, y) => y - x), 'heaviest first');
  assert.ok(kept.length >= 3, `${kept.length} stacks kept`);
  assert.equal(await daemon.metric('bitville_agent_events_malformed_total{reason="oversized",agent="php_agent"}'), 0);

  for (const off of [{ profile_period_ms: '0' }, { profile_period_ms: '1', profile_sample_rate: '0' }] as Record<string, string>[]) {
    await (await startPhp(t, { ...settings, ...off }, {}, ext.args)).get(`/report.php?ms=30&off=${Object.keys(off).join()}`);
  }
  const all = await eventually(() => (stored(collector.dbPath, 'span').length === 3 ? stored(collector.dbPath, 'span') : undefined), 15_000, 'two more spans');
  const unprofiled = all.filter((s) => s.attributes['url.path'] === '/report.php');
  assert.equal(unprofiled.length, 2);
  for (const s of unprofiled) assert.equal(s.attributes['bitville.profile.collapsed'], undefined, s.attributes['url.query']);
});

test('the daemon sanitises collapsed stacks: malformed lines dropped, control characters replaced, bounded by weight', () => {
  assert.equal(sanitiseCollapsed('garbage\n\n; 3\na;b x'), undefined, 'nothing usable');
  const clean = sanitiseCollapsed(';/www/index.php;main;f 3\n/www/index.php;main;f 2\nbad line\n/www/index.php;ma\u0001in 4\n/www/index.php;\ud800x 1')!;
  assert.equal(clean.collapsed, '/www/index.php;main;f 5\n/www/index.php;ma?in 4\n/www/index.php;\ufffdx 1');
  assert.equal(clean.samples, 10);
  assert.equal(clean.changed, true);
  const ok = sanitiseCollapsed('a;b 2\na 1')!;
  assert.deepEqual([ok.collapsed, ok.samples, ok.changed], ['a;b 2\na 1', 3, false]);
  const many = Array.from({ length: PROFILE_LIMITS.stacks + 50 }, (_, i) => `s;f${i} ${i + 1}`).join('\n') + '\n(truncated) 7';
  const cut = sanitiseCollapsed(many)!;
  const out = lines(cut.collapsed);
  assert.equal(out.length, PROFILE_LIMITS.stacks + 1);
  assert.equal(out[0]!.count, PROFILE_LIMITS.stacks + 50, 'heaviest first');
  assert.deepEqual(out.at(-1), { stack: '(truncated)', count: 7 + (50 * 51) / 2 });
  assert.equal(cut.samples, ((PROFILE_LIMITS.stacks + 50) * (PROFILE_LIMITS.stacks + 51)) / 2 + 7);
  const long = sanitiseCollapsed(Array.from({ length: 200 }, (_, i) => `${'x'.repeat(500)};${i} 1`).join('\n'))!;
  assert.ok(long.collapsed.length <= PROFILE_LIMITS.chars);
});

test('a bad profile never costs the event: wrong shape dropped, dirty text cleaned, both counted', async (t) => {
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const client = createRequire(import.meta.url)('unix-dgram').createSocket('unix_dgram');
  t.after(() => client.close());
  const send = (n: number, profile: unknown) => {
    const buf = Buffer.from(JSON.stringify({
      v: 1, trace_id: String(n).padStart(32, 'a'), span_id: 'b'.repeat(16), parent_span_id: '', method: 'GET', url: `http://shop.example/p/${n}`, script: '/p.php',
      status: 200, start_us: Date.now() * 1000, duration_us: 600_000, peak_memory: 1, host: 'web-1', project: 'shop', php_version: '8.2.0', sapi: 'fpm-fcgi', error: null, profile,
    }));
    return new Promise<void>((resolve, reject) => client.send(buf, 0, buf.length, daemon.socketPath, (err?: Error) => (err ? reject(err) : resolve())));
  };
  await send(1, { period_ms: 'often', samples: 3, collapsed: 'a;b 3' });
  await send(2, { period_ms: 10, samples: 9, collapsed: '/p.php;main;f\u0007x 5\nnot a line\n/p.php;main 4' });
  await send(3, null);
  const got = await eventually(() => (stored(collector.dbPath, 'span').length === 3 ? stored(collector.dbPath, 'span') : undefined), 15_000, 'three spans');
  const by = (n: number) => got.find((s) => s.attributes['url.full'].endsWith(`/p/${n}`))!.attributes;
  assert.equal(by(1)['bitville.profile.collapsed'], undefined);
  assert.equal(by(2)['bitville.profile.collapsed'], '/p.php;main;f?x 5\n/p.php;main 4');
  assert.equal(by(2)['bitville.profile.samples'], 9);
  assert.equal(by(3)['bitville.profile.collapsed'], undefined);
  assert.equal(await daemon.metric('bitville_php_agent_fields_truncated_total{field="profile",agent="php_agent"}'), 2);
});
