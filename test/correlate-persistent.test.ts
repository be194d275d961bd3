// End to end with persistent connections: real PHP (`php -S`, one worker, so a persistent
// connection is reused by the next request) with agent.php, `pg_pconnect` and PDO persistent
// pages, the real pg-agent and collector (the demo stack). A reused connection still carries the
// tag of the request that opened it; the collector gives each such statement to the request of
// the same host and worker pid that was running when it ran. The PDO connection is opened by a
// fast request (below the PHP agent's threshold, so never sent): only the tag's own worker part
// says which process the connection lives in. Every request's statement lands on that request,
// none is counted for a request that did not run it, and re-posting every stored span leaves
// every summary unchanged.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, pgConninfo } from '../agents/php/harness.fixture.js';
import { PROJECT, REPO_ROOT, stackMissing, startStack } from '../demo/stack.js';
import { PG_DSN, skipWithoutPhp, skipWithoutPostgres, tempDir } from './env.js';
import { readStore, type StoredRow } from './collector.js';
import { postTraces } from '../plugins/correlate/traces.fixture.js';
import { hostKeyOf } from '../plugins/correlate/workers.js';

interface Page {
  correlation_id: string;
  /** The request's number, also written into each of its statements as a comment. */
  n: number;
  /** application_name as the server saw it during the request. */
  app: string;
}

interface View {
  summary: { queryCount: number } | null;
  queries: { text: string; placement: string; attributedBy: string }[];
}

// Each page runs a statement long enough for sampling alone to see it (the request is over the
// PHP agent's 300 ms threshold, so its span is sent), then asks for its own application_name;
// pdo_open.php is fast (never sent) and only opens the persistent PDO connection.
const PAGES = {
  'pdo_open.php': `<?php
$pdo = new PDO(getenv('BV_TEST_PDO_DSN'), getenv('BV_TEST_PDO_USER'), null, array(PDO::ATTR_PERSISTENT => true, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION));
$n = (int) $_GET['n'];
$app = $pdo->query("SELECT current_setting('application_name') /* e2e-req-$n */")->fetchColumn();
header('Content-Type: application/json');
echo json_encode(array('correlation_id' => BitvilleAgent::correlationId(), 'n' => $n, 'app' => $app));
`,
  'pconnect.php': `<?php
$conn = pg_pconnect(getenv('BV_TEST_CONNINFO'));
$n = (int) $_GET['n'];
pg_query($conn, "SELECT pg_sleep(0.35) /* e2e-req-$n */");
$app = pg_fetch_result(pg_query($conn, "SELECT current_setting('application_name') /* e2e-req-$n */"), 0, 0);
header('Content-Type: application/json');
echo json_encode(array('correlation_id' => BitvilleAgent::correlationId(), 'n' => $n, 'app' => $app));
`,
  'pdo.php': `<?php
$pdo = new PDO(getenv('BV_TEST_PDO_DSN'), getenv('BV_TEST_PDO_USER'), null, array(PDO::ATTR_PERSISTENT => true, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION));
$n = (int) $_GET['n'];
$stmt = $pdo->prepare("SELECT pg_sleep(0.35), ? AS n /* e2e-req-$n */");
$stmt->execute(array($n));
$app = $pdo->query("SELECT current_setting('application_name') /* e2e-req-$n */")->fetchColumn();
header('Content-Type: application/json');
echo json_encode(array('correlation_id' => BitvilleAgent::correlationId(), 'n' => $n, 'app' => $app));
`,
};

test('persistent connections (pg_pconnect, PDO): each statement is counted for the request that ran it, by worker when the tag is stale', async (t) => {
  if (skipWithoutPhp(t) || (await skipWithoutPostgres(t))) return;
  const missing = await stackMissing(PG_DSN);
  if (missing) return t.skip(missing);
  const dir = tempDir(t);
  const stack = await startStack({ dir, pgDsn: PG_DSN, window: '1s' });
  t.after(() => stack.stop());

  const appDir = join(dir, 'persistent-app');
  mkdirSync(appDir, { recursive: true });
  for (const [name, body] of Object.entries(PAGES)) writeFileSync(join(appDir, name), body);
  const u = new URL(PG_DSN);
  const db = decodeURIComponent(u.pathname.slice(1));
  const user = decodeURIComponent(u.username);
  const port = await freePort();
  const settings = { socket: join(dir, 'run', 'php-agent.sock'), project: PROJECT, threshold_ms: '300', state_file: join(dir, 'persistent.breaker') };
  const php = spawn(
    'php',
    ['-d', `auto_prepend_file=${join(REPO_ROOT, 'agents', 'php', 'agent.php')}`, ...Object.entries(settings).flatMap(([k, v]) => ['-d', `bitville.${k}=${v}`]), '-S', `127.0.0.1:${port}`, '-t', appDir],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        // One worker: the persistent connections are reused by the following requests.
        PHP_CLI_SERVER_WORKERS: '1',
        BV_TEST_CONNINFO: pgConninfo(PG_DSN),
        BV_TEST_PDO_DSN: `pgsql:host=${u.hostname};port=${u.port || 5432};dbname=${db}`,
        BV_TEST_PDO_USER: user,
      },
    },
  );
  const exited = once(php, 'exit');
  t.after(async () => {
    php.kill('SIGTERM');
    await exited;
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    php.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('started')) resolve();
    });
    void exited.then(() => reject(new Error(`php -S exited: ${stderr}`)));
  });

  // Requests one after another on the one worker: 1 opens the pgsql link, 2 and 3 reuse it;
  // 4 (fast, never sent) opens the PDO connection, 5, 6 and 7 reuse it; 8 goes back to the pgsql link.
  const order = ['pconnect.php', 'pconnect.php', 'pconnect.php', 'pdo_open.php', 'pdo.php', 'pdo.php', 'pdo.php', 'pconnect.php'];
  const answers: Page[] = [];
  for (const [i, page] of order.entries()) {
    const res = await fetch(`http://127.0.0.1:${port}/${page}?n=${i + 1}`);
    assert.equal(res.status, 200, `${page}: ${await res.clone().text()}`);
    answers.push((await res.json()) as Page);
  }
  const opener = answers[3]!;
  const pages = answers.filter((p) => p !== opener);
  const byId = new Map(pages.map((p) => [p.correlation_id, p]));
  assert.equal(new Set(answers.map((p) => p.correlation_id)).size, answers.length, 'one correlation id per request');
  // The tag names the request and its process; the host key is the one the collector derives from host.name.
  const tag = /^req:([0-9a-f]{32})\/(\d+)@([0-9a-f]{8})$/;
  for (const p of answers) {
    const m = tag.exec(p.app);
    assert.ok(m, `request ${p.n}'s tag ${p.app}`);
    assert.equal(m[3], hostKeyOf(hostname()), 'the host key');
  }
  const ownTag = (p: Page) => tag.exec(p.app)![1] === p.correlation_id;
  const stale = pages.filter((p) => !ownTag(p));
  assert.ok(pages.filter((p) => p.n > 4 && p.n < 8).every((p) => tag.exec(p.app)![1] === opener.correlation_id), 'the PDO requests carry the fast opener\'s tag');

  // Every request's long statement, wherever it is filed: counted for its own request, or
  // unattributed under the id of the request that opened the connection.
  const view = async (id: string): Promise<View> => {
    const res = await fetch(`${stack.adminUrl}/api/requests/${id}`);
    // 404 until the first record of the id is stored.
    return res.status === 404 ? { summary: null, queries: [] } : ((await res.json()) as View);
  };
  const views = new Map<string, View>();
  const deadline = Date.now() + 30_000;
  for (;;) {
    for (const p of pages) views.set(p.correlation_id, await view(p.correlation_id));
    const filed = new Set<number>();
    for (const v of views.values()) for (const q of v.queries) if (/pg_sleep/.test(q.text)) filed.add(markerOf(q.text)!);
    const summarized = [...views.values()].every((v) => v.summary !== null);
    // Each request's long statement is counted in its own view (by tag or by worker).
    const landed = pages.every((p) => views.get(p.correlation_id)!.queries.some((q) => q.placement === 'counted' && /pg_sleep/.test(q.text) && markerOf(q.text) === p.n));
    if (summarized && pages.every((p) => filed.has(p.n)) && landed) break;
    if (Date.now() > deadline) assert.fail(`not every request's statement and summary arrived: statements of ${[...filed].join(', ')}; views ${JSON.stringify([...views.values()].map((v) => v.queries))}; ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  // A statement that lands after a request's summary re-summarizes it a window later: wait until
  // the join has no id pending and every summary counts what its request's view counts.
  const settleBy = Date.now() + 15_000;
  for (;;) {
    const metrics = await (await fetch(`${stack.adminUrl}/metrics`)).text();
    const idle = /^bitville_correlate_pending\{processor="correlate"\} 0$/m.test(metrics);
    for (const p of pages) views.set(p.correlation_id, await view(p.correlation_id));
    const current = [...views.values()].every((v) => v.summary?.queryCount === v.queries.filter((q) => q.placement === 'counted').length);
    if (idle && current) break;
    if (Date.now() > settleBy) assert.fail(`the summaries did not settle: ${JSON.stringify([...views.values()].map((v) => v.summary))}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }

  for (const [id, v] of views) {
    const own = byId.get(id)!.n;
    for (const q of v.queries) {
      const n = markerOf(q.text);
      if (n === undefined) continue; // driver housekeeping (DEALLOCATE) carries no marker
      if (q.placement === 'counted') assert.equal(n, own, `request ${own} counts a statement of request ${n}: ${q.text}`);
      else if (n !== own) assert.equal(q.placement, 'outside_window', `request ${n}'s statement under request ${own}'s id is ${q.placement}`);
    }
    const counted = v.queries.filter((q) => q.placement === 'counted' && markerOf(q.text) === own);
    assert.equal(v.summary!.queryCount, v.queries.filter((q) => q.placement === 'counted').length);
    assert.ok(v.summary!.queryCount <= 2, `request ${own} ran 2 statements; its summary counts ${v.summary!.queryCount}`);
    // Its long statement is counted for it: by its tag, or by worker when the tag was another's.
    const long = counted.find((q) => /pg_sleep/.test(q.text));
    assert.ok(long, `request ${own}'s statement is counted for it`);
    assert.equal(long.attributedBy, ownTag(byId.get(id)!) ? 'tag' : 'worker', `request ${own}'s statement attribution`);
  }
  // The scenario did what it is for: some requests ran on a connection tagged by another one.
  assert.ok(stale.length > 0, 'some requests ran on a stale-tagged connection');
  // The fast opener was never sent, so nothing about it but its tag names its process.
  assert.equal((await view(opener.correlation_id)).summary, null, 'the fast opener has no summary');

  // Re-posting every stored span (an agent's retry): the ids are joined again, no summary changes.
  const dbPath = join(dir, 'bitville.db');
  const summaries = () => readStore(dbPath).filter((r) => r.kind === 'summary').map((r) => r.record.spanId as string);
  const before = summaries();
  const joinsBefore = await counter(stack.adminUrl, 'bitville_correlate_joins_total');
  await postTraces(stack.otlpUrl, otlpOf(readStore(dbPath).filter((r) => r.kind === 'span')));
  const rejoinBy = Date.now() + 15_000;
  while (!((await counter(stack.adminUrl, 'bitville_correlate_joins_total')) >= joinsBefore + pages.length && (await counter(stack.adminUrl, 'bitville_correlate_pending')) === 0)) {
    if (Date.now() > rejoinBy) assert.fail('the re-posted ids were not joined');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.deepEqual(summaries(), before, 're-posting the same spans makes no summary');

  t.diagnostic(`queries counted per request: ${pages.map((p) => `${p.n}=${views.get(p.correlation_id)!.summary!.queryCount}`).join(' ')}`);
  t.diagnostic(`requests on a stale-tagged connection (counted by worker): ${stale.map((p) => p.n).join(', ')}`);
});

async function counter(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name}\\{processor="correlate"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Stored spans as OTLP/JSON again, each under its own resource and scope. */
function otlpOf(rows: StoredRow[]) {
  const value = (v: unknown): unknown =>
    typeof v === 'string' ? { stringValue: v }
    : typeof v === 'boolean' ? { boolValue: v }
    : typeof v === 'number' ? (Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v })
    : Array.isArray(v) ? { arrayValue: { values: v.map(value) } }
    : { stringValue: JSON.stringify(v) };
  const attrs = (a: Record<string, unknown>) => Object.entries(a).map(([key, v]) => ({ key, value: value(v) }));
  return {
    resourceSpans: rows.map(({ record: s }) => ({
      resource: { attributes: attrs(s.resource) },
      scopeSpans: [
        {
          scope: { name: s.scope.name, version: s.scope.version },
          spans: [
            {
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId,
              name: s.name,
              kind: s.spanKind,
              startTimeUnixNano: s.startTimeUnixNano,
              endTimeUnixNano: s.endTimeUnixNano,
              attributes: attrs(s.attributes),
              status: s.status,
            },
          ],
        },
      ],
    })),
  };
}

function markerOf(text: string): number | undefined {
  const m = /e2e-req-(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}
