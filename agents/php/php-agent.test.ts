// End to end: real `php -S` with agent.php prepended -> real php-agent daemon -> real collector.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { eventually, readStore, startCollector } from '../../test/collector.js';
import { PG_DSN, skipWithoutPhp, skipWithoutPostgres, tempDir } from '../../test/env.js';
import { AGENT_PHP, PAGES, daemonConfig, freePort, pgConninfo, runDaemonToExit, startDaemon, startPhp } from './harness.fixture.js';

const THRESHOLD = { threshold_ms: '60' };

function spans(dbPath: string) {
  return readStore(dbPath).filter((r) => r.kind === 'span').map((r) => r.record);
}

test('a slow page produces exactly one span with the request attributes; a fast page none', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const php = await startPhp(t, { ...THRESHOLD, socket: daemon.socketPath, state_file: join(dir, 'breaker'), project: 'webshop' });

  assert.equal((await php.get('/fast.php')).body, 'fast page body\n');
  const slow = await php.get('/slow.php?ms=120&password=hunter2&q=shoes');
  assert.equal(slow.status, 200);
  assert.equal(slow.body, 'slow page body\n');

  const [span] = await eventually(() => (spans(collector.dbPath).length ? spans(collector.dbPath) : undefined), 10_000, 'the slow span');
  assert.equal(spans(collector.dbPath).length, 1, 'the fast page sent nothing');
  const a = span.attributes;
  assert.equal(span.name, 'GET /slow.php');
  assert.equal(span.spanKind, 2, 'SERVER');
  assert.match(span.traceId, /^[0-9a-f]{32}$/);
  assert.equal(span.correlationId, span.traceId);
  assert.equal(a['bitville.correlation_id'], span.traceId);
  assert.equal(a['http.request.method'], 'GET');
  assert.equal(a['http.response.status_code'], 200);
  assert.equal(a['url.path'], '/slow.php');
  assert.equal(a['url.query'], 'ms=120&password=REDACTED&q=shoes');
  assert.ok(!JSON.stringify(span).includes('hunter2'), 'the secret never leaves PHP');
  assert.equal(a['code.file.path'], '/slow.php');
  assert.equal(a['php.sapi'], 'cli-server');
  assert.ok(Number(a['php.memory.peak_bytes']) > 0);
  assert.equal(span.resource['service.name'], 'webshop');
  assert.equal(span.resource['bitville.source'], 'php_agent');
  assert.equal(span.resource['process.runtime.name'], 'php');
  assert.ok(span.resource['host.name']);
  assert.ok(span.durationMs >= 120 && span.durationMs < 5000, `duration ${span.durationMs} ms`);
});

test('an incoming traceparent is continued: same trace id, parent span id kept', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const php = await startPhp(t, { ...THRESHOLD, socket: daemon.socketPath, state_file: join(dir, 'breaker') });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  await php.get('/slow.php?ms=80', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  const [span] = await eventually(() => (spans(collector.dbPath).length ? spans(collector.dbPath) : undefined), 10_000, 'the span');
  assert.equal(span.traceId, traceId);
  assert.equal(span.parentSpanId, '00f067aa0ba902b7');
});

/** The tag the agent sets for a request of this machine's PHP process `pid` (docs/php-agent.md). */
const tagOf = (id: string, pid: number) => `req:${id}/${pid}@${createHash('sha256').update(hostname()).digest('hex').slice(0, 8)}`;

test('PostgreSQL sees application_name req:<id>/<pid>@<host key> matching the span correlation id and worker', async (t) => {
  if (skipWithoutPhp(t) || (await skipWithoutPostgres(t))) return;
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const conninfo = pgConninfo(PG_DSN);
  const php = await startPhp(t, { ...THRESHOLD, socket: daemon.socketPath, state_file: join(dir, 'breaker') }, { BITVILLE_TEST_PG_CONNINFO: conninfo });
  const page = JSON.parse((await php.get('/db.php')).body);
  const [span] = await eventually(() => (spans(collector.dbPath).length ? spans(collector.dbPath) : undefined), 10_000, 'the span');
  assert.equal(page.pgsql, tagOf(page.id, span.attributes['process.pid']), 'pgsql connection');
  assert.equal(page.pdo, page.pgsql, 'pdo_pgsql connection');
  assert.ok(page.pgsql.length <= 63, 'within PostgreSQL\'s application_name limit');
  assert.equal(page.comment, `SELECT 1 /*traceparent='00-${page.id}-` + page.comment.split('-')[2] + `-01'*/;`);
  assert.equal(span.attributes['bitville.correlation_id'], page.id);
});

test('daemon down: pages answer 200 with their body intact, nothing printed, the breaker opens', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const stateFile = join(dir, 'breaker');
  const php = await startPhp(t, { ...THRESHOLD, socket: join(dir, 'nobody-listens.sock'), state_file: stateFile });
  for (let i = 1; i <= 6; i++) {
    const page = await php.get('/slow.php?ms=70');
    assert.equal(page.status, 200);
    assert.equal(page.body, 'slow page body\n', 'no warning or notice in the page');
  }
  const [failures, openUntil, lost] = readFileSync(stateFile, 'utf8').split(' ').map(Number);
  assert.equal(failures, 5, 'five failed attempts, then no more');
  assert.ok(openUntil! > Date.now() / 1000 + 50, 'open for about 60 s');
  assert.equal(lost, 5, 'every failed attempt counted (skips while open are counted only with APCu)');
});

test('collector down for a while, then back: every span arrives', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const port = await freePort();
  const daemon = await startDaemon(t, daemonConfig(dir, `http://127.0.0.1:${port}`));
  const php = await startPhp(t, { ...THRESHOLD, socket: daemon.socketPath, state_file: join(dir, 'breaker') });
  for (let i = 0; i < 3; i++) await php.get(`/slow.php?ms=70&n=${i}`);
  await eventually(async () => ((await daemon.metric('bitville_agent_export_failures_total{signal="traces",kind="retryable",agent="php_agent"}')) >= 1 ? true : undefined), 10_000, 'a failed export');
  const collector = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { endpoint: `127.0.0.1:${port}` } } } } } });
  const got = await eventually(() => (spans(collector.dbPath).length >= 3 ? spans(collector.dbPath) : undefined), 15_000, 'three spans');
  assert.deepEqual(got.map((s) => s.attributes['url.query']).sort(), ['ms=70&n=0', 'ms=70&n=1', 'ms=70&n=2']);
});

test('daemon killed and restarted: its disk buffer is delivered', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const port = await freePort();
  const config = daemonConfig(dir, `http://127.0.0.1:${port}`);
  const first = await startDaemon(t, config);
  const php = await startPhp(t, { ...THRESHOLD, socket: first.socketPath, state_file: join(dir, 'breaker') });
  for (let i = 0; i < 4; i++) await php.get(`/slow.php?ms=70&n=${i}`);
  await eventually(async () => ((await first.metric('bitville_agent_buffered_events{tier="disk",agent="php_agent"}')) === 4 ? true : undefined), 10_000, 'four events on disk');
  await first.kill();
  const collector = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { endpoint: `127.0.0.1:${port}` } } } } } });
  await startDaemon(t, config);
  const got = await eventually(() => (spans(collector.dbPath).length >= 4 ? spans(collector.dbPath) : undefined), 15_000, 'four spans');
  assert.equal(got.length, 4);
});

test('malformed and oversized datagrams are counted and never crash the daemon', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const unix = createRequire(import.meta.url)('unix-dgram');
  const client = unix.createSocket('unix_dgram');
  t.after(() => client.close());
  const send = (buf: Buffer) => new Promise<void>((resolve, reject) => client.send(buf, 0, buf.length, daemon.socketPath, (err: Error | undefined) => (err ? reject(err) : resolve())));
  await send(Buffer.from('not json at all'));
  await send(Buffer.from('{"v":1,"trace_id":"zz"}'));
  await send(Buffer.from('[]'));
  await send(Buffer.alloc(0));
  await send(Buffer.alloc(100_000, 'x'));
  await send(Buffer.from([0xff, 0xfe, 0x00, 0x01]));
  const malformed = () => Promise.all(['not_json', 'invalid_event', 'oversized'].map((r) => daemon.metric(`bitville_agent_events_malformed_total{reason="${r}",agent="php_agent"}`)));
  const counts = await eventually(async () => {
    const c = await malformed();
    return c.reduce((a, b) => a + b, 0) === 6 ? c : undefined;
  }, 10_000, 'six malformed datagrams counted');
  assert.deepEqual(counts, [3, 2, 1]);
  const php = await startPhp(t, { ...THRESHOLD, socket: daemon.socketPath, state_file: join(dir, 'breaker') });
  await php.get('/slow.php?ms=70');
  await eventually(() => (spans(collector.dbPath).length === 1 ? true : undefined), 10_000, 'a valid span after the garbage');
  assert.equal(daemon.process.exitCode, null, 'still running');
});

test('the socket is created with mode 0660 in a new directory; a second daemon refuses to start', async (t) => {
  const dir = tempDir(t);
  const config = daemonConfig(dir, 'http://127.0.0.1:9');
  const daemon = await startDaemon(t, config);
  assert.equal(statSync(daemon.socketPath).mode & 0o777, 0o660);
  const second = await runDaemonToExit({ ...config, buffer: { path: join(dir, 'other.db') } });
  assert.equal(second.code, 1);
  assert.match(second.stderr, /another php-agent daemon is receiving on .*php-agent\.sock/);
  await daemon.stop();
  assert.ok(!existsSync(daemon.socketPath), 'a clean stop removes the socket');
  assert.equal((await runDaemonToExit({ ...config, project: '' })).code, 1, 'bad config exits 1');
});

/** A well-formed datagram as agent.php sends it; `over` replaces fields. */
function datagram(n: number, over: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({
    v: 1, trace_id: (n + 1).toString(16).padStart(32, 'a'), span_id: 'b'.repeat(16), parent_span_id: '', method: 'GET', url: `http://shop.example/p/${n}`,
    script: '/index.php', status: 200, start_us: Date.now() * 1000, duration_us: 600_000, peak_memory: 2_097_152, host: 'web-1', project: 'shop', php_version: '8.2.0',
    sapi: 'fpm-fcgi', error: null, ...over,
  }));
}

function datagramClient(t: TestContext, socketPath: string) {
  const unix = createRequire(import.meta.url)('unix-dgram');
  const client = unix.createSocket('unix_dgram');
  t.after(() => client.close());
  const once = (buf: Buffer) => new Promise<Error | undefined>((resolve) => client.send(buf, 0, buf.length, socketPath, resolve));
  return async (buf: Buffer) => {
    // The daemon's queue holds net.unix.max_dgram_qlen datagrams; a full one refuses with EAGAIN
    // and the unconnected socket gives no writable event, so retry shortly (bounded).
    for (const deadline = Date.now() + 5000; ; ) {
      const err = (await once(buf)) as (Error & { code?: number }) | undefined;
      if (!err) return;
      if (err.code !== -11 || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1));
    }
  };
}

test('a datagram with a lone surrogate, invalid UTF-8 and oversized fields is sanitised: it and its 99 neighbours all reach the collector', async (t) => {
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl, { batch: { max_events: 100, timeout: '1s' } }));
  const send = datagramClient(t, daemon.socketPath);
  for (let i = 0; i < 100; i++) {
    if (i !== 42) {
      await send(datagram(i));
      continue;
    }
    // JSON can carry an unpaired surrogate as an escape; raw bytes can be invalid UTF-8.
    const json = datagram(i, { host: 'h'.repeat(300), php_version: 'X' }).toString().replace('"/index.php"', '"/p\\ud800ge.php"').replace('"X"', '"8.2.0 \\udfff"');
    const url = Buffer.from('http://shop.example/caf\u00e9/\u00ff');
    const bad = Buffer.from(json.replace(`"http://shop.example/p/${i}"`, '"URL"'));
    const at = bad.indexOf('URL');
    await send(Buffer.concat([bad.subarray(0, at), url.subarray(0, url.length - 1), Buffer.from([0xc3, 0x28, 0xed, 0xa0, 0x80]), bad.subarray(at + 3)]));
  }
  const stored = await eventually(() => (spans(collector.dbPath).length >= 100 ? spans(collector.dbPath) : undefined), 15_000, '100 spans');
  assert.equal(stored.length, 100, 'none lost, none refused');
  const bad = stored.find((s) => s.attributes['url.full'].startsWith('http://shop.example/caf'))!;
  assert.equal(bad.attributes['code.file.path'], '/p\ufffdge.php');
  assert.match(bad.attributes['url.full'], /^http:\/\/shop\.example\/caf\u00e9\/\ufffd+\(\ufffd+$/);
  assert.equal(bad.resource['host.name'], 'h'.repeat(255), 'cut to its bound');
  assert.equal(bad.resource['process.runtime.version'], '8.2.0 \ufffd');
  assert.equal(await daemon.metric('bitville_php_agent_fields_truncated_total{field="host",agent="php_agent"}'), 1);
  assert.equal(await daemon.metric('bitville_agent_events_dropped_total{reason="rejected",agent="php_agent"}'), 0);
});

test('a wrong token keeps every event on disk and says so; with the right token after a restart they all arrive', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const collector = await startCollector(t, { config: { receivers: { otlp: { protocols: { http: { auth: { bearer_token: 'right' } } } } } } });
  const config = daemonConfig(dir, collector.otlpUrl);
  const wrong = await startDaemon(t, { ...config, exporter: { ...config.exporter, token: 'wrong' } });
  const php = await startPhp(t, { ...THRESHOLD, socket: wrong.socketPath, state_file: join(dir, 'breaker') });
  for (let i = 0; i < 3; i++) await php.get(`/slow.php?ms=70&n=${i}`);
  await eventually(async () => ((await wrong.metric('bitville_agent_exporter_unauthorized{agent="php_agent"}')) === 1 ? true : undefined), 10_000, 'the refusal seen');
  await eventually(async () => ((await wrong.metric('bitville_agent_buffered_events{tier="disk",agent="php_agent"}')) === 3 ? true : undefined), 10_000, 'three events kept');
  assert.equal(await wrong.metric('bitville_agent_events_dropped_total{reason="rejected",agent="php_agent"}'), 0);
  const loud = wrong.logs.filter((l) => l.level === 50 && /credentials/.test(l.msg));
  assert.equal(loud.length, 1, 'one error line');
  assert.equal(loud[0]!.status, 401);
  await wrong.stop();
  await startDaemon(t, { ...config, exporter: { ...config.exporter, token: 'right' } });
  const got = await eventually(() => (spans(collector.dbPath).length >= 3 ? spans(collector.dbPath) : undefined), 15_000, 'three spans');
  assert.deepEqual(got.map((s) => s.attributes['url.query']).sort(), ['ms=70&n=0', 'ms=70&n=1', 'ms=70&n=2']);
});

/** Runs one page with php-cli and agent.php, the CGI/FastCGI server variables given as the environment (PHP puts them in $_SERVER, as FPM does). */
async function runPage(page: string, settings: Record<string, string>, server: Record<string, string>): Promise<string> {
  const ini = Object.entries(settings).flatMap(([k, v]) => ['-d', `bitville.${k}=${v}`]);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BITVILLE_') && !k.startsWith('HTTP')));
  const { stdout } = await promisify(execFile)('php', ['-d', `auto_prepend_file=${AGENT_PHP}`, ...ini, join(PAGES, page)], { env: { ...clean, BITVILLE_CLI: '1', REQUEST_METHOD: 'GET', ...server } });
  return stdout;
}

test('url.full and server.port as the client saw them: SERVER_PORT, HTTPS, X-Forwarded-* only from trusted proxies', async (t) => {
  if (skipWithoutPhp(t)) return;
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const settings = { threshold_ms: '0', socket: daemon.socketPath, state_file: join(dir, 'breaker'), trusted_proxies: '10.0.0.0/8, fd00::/8, 192.0.2.7, 203.0.113.0/-1, 203.0.0.0/x' };
  const cases: [string, Record<string, string>, string, number][] = [
    // Debian nginx, stock fastcgi_params, `fastcgi_param HTTP_HOST $host` or a Host without its port.
    ['nginx, Host without port', { HTTP_HOST: 'shop.example', SERVER_NAME: 'shop.example', SERVER_PORT: '8080', REQUEST_SCHEME: 'http', REMOTE_ADDR: '198.51.100.1', REQUEST_URI: '/cart?x=1' }, 'http://shop.example:8080/cart?x=1', 8080],
    ['nginx TLS on 8443', { HTTPS: 'on', HTTP_HOST: 'shop.example:8443', SERVER_PORT: '8443', REQUEST_SCHEME: 'https', REMOTE_ADDR: '198.51.100.1', REQUEST_URI: '/' }, 'https://shop.example:8443/', 8443],
    ['Apache TLS, default port', { HTTPS: 'on', HTTP_HOST: 'shop.example', SERVER_PORT: '443', REMOTE_ADDR: '198.51.100.1', REQUEST_URI: '/a' }, 'https://shop.example/a', 443],
    ['Apache, HTTPS=off', { HTTPS: 'off', HTTP_HOST: 'shop.example', SERVER_PORT: '80', REMOTE_ADDR: '198.51.100.1', REQUEST_URI: '/b' }, 'http://shop.example/b', 80],
    ['HTTP/1.0, no Host', { SERVER_NAME: 'shop.example', SERVER_PORT: '8081', REMOTE_ADDR: '198.51.100.1', REQUEST_URI: '/c' }, 'http://shop.example:8081/c', 8081],
    ['forged X-Forwarded-* from an untrusted peer (malformed prefixes in the list trust nobody)', { HTTP_HOST: 'shop.example:8080', SERVER_PORT: '8080', REMOTE_ADDR: '203.0.113.9', HTTP_X_FORWARDED_PROTO: 'https', HTTP_X_FORWARDED_HOST: 'evil.example', HTTP_X_FORWARDED_PORT: '1', REQUEST_URI: '/d' }, 'http://shop.example:8080/d', 8080],
    ['trusted proxy (CIDR), all three', { HTTP_HOST: 'backend:8080', SERVER_PORT: '8080', REMOTE_ADDR: '10.1.2.3', HTTP_X_FORWARDED_PROTO: 'https, http', HTTP_X_FORWARDED_HOST: 'www.shop.example', HTTP_X_FORWARDED_PORT: '8443', REQUEST_URI: '/e' }, 'https://www.shop.example:8443/e', 8443],
    ['trusted IPv6 proxy, proto and host only', { HTTP_HOST: 'backend:8080', SERVER_PORT: '8080', REMOTE_ADDR: 'fd00::5', HTTP_X_FORWARDED_PROTO: 'https', HTTP_X_FORWARDED_HOST: 'www.shop.example', REQUEST_URI: '/f' }, 'https://www.shop.example/f', 443],
    ['trusted proxy (one address), proto only, Host passed through', { HTTP_HOST: 'www.shop.example', SERVER_PORT: '8080', REMOTE_ADDR: '192.0.2.7', HTTP_X_FORWARDED_PROTO: 'https', REQUEST_URI: '/g' }, 'https://www.shop.example/g', 443],
    ['IPv6 Host with port', { HTTP_HOST: '[2001:db8::1]:8080', SERVER_PORT: '8080', REMOTE_ADDR: '198.51.100.1', REQUEST_URI: '/h' }, 'http://[2001:db8::1]:8080/h', 8080],
  ];
  const ids = cases.map((_, i) => (i + 1).toString(16).padStart(32, 'c'));
  for (const [i, [, server]] of cases.entries()) {
    assert.equal(await runPage('fast.php', settings, { ...server, HTTP_TRACEPARENT: `00-${ids[i]}-00f067aa0ba902b7-01` }), 'fast page body\n');
  }
  const got = await eventually(() => (spans(collector.dbPath).length >= cases.length ? spans(collector.dbPath) : undefined), 15_000, 'a span per case');
  for (const [i, [name, , url, port]] of cases.entries()) {
    const span = got.find((s) => s.traceId === ids[i]);
    assert.ok(span, name);
    assert.equal(span.attributes['url.full'], url, name);
    assert.equal(span.attributes['server.port'], port, name);
    assert.equal(span.attributes['process.pid'] > 0, true, `${name}: the worker pid`);
  }
});

test('persistent connections: pg_pconnect reuse (RESET ALL) and PDO persistent carry the current request tag through the helpers', async (t) => {
  if (skipWithoutPhp(t) || (await skipWithoutPostgres(t))) return;
  const dir = tempDir(t);
  const collector = await startCollector(t);
  const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl));
  const conninfo = pgConninfo(PG_DSN);
  const php = await startPhp(t, { threshold_ms: '0', socket: daemon.socketPath, state_file: join(dir, 'breaker') }, { BITVILLE_TEST_PG_CONNINFO: conninfo });
  const first = JSON.parse((await php.get('/pconnect.php')).body);
  const second = JSON.parse((await php.get('/pconnect.php')).body);
  assert.notEqual(first.id, second.id);
  assert.equal(second.worker, first.worker, 'one worker');
  assert.equal(second.backend, first.backend, 'the pgsql connection was reused');
  assert.equal(second.pdo_backend, first.pdo_backend, 'the PDO connection was reused');
  assert.equal(second.plain, tagOf(first.id, first.worker), 'without the helper, a reused pg_pconnect carries its opener\'s tag');
  assert.equal(second.wrapped, tagOf(second.id, second.worker), 'BitvilleAgent::pconnect()');
  assert.equal(second.retagged, tagOf(second.id, second.worker), 'tagConnection() after another pg_pconnect()');
  assert.equal(second.again, true);
  assert.equal(second.last, 'SELECT 1 AS marker', 'an already tagged connection costs no query');
  assert.equal(second.pdo, tagOf(second.id, second.worker), 'BitvilleAgent::pdo() with ATTR_PERSISTENT');
  const got = await eventually(() => (spans(collector.dbPath).length >= 2 ? spans(collector.dbPath) : undefined), 10_000, 'two spans');
  const span = got.find((s) => s.traceId === second.id)!;
  assert.equal(span.attributes['process.pid'], second.worker, 'the worker pid, for statements on stale-tagged connections');
  assert.ok(span.durationMs > 0);
});
