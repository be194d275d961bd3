// End to end with persistent connections: real PHP (`php -S`, one worker, so a persistent
// connection is reused by the next request) with agent.php, `pg_pconnect` and PDO persistent
// pages, the real pg-agent and collector (the demo stack). A reused connection still carries the
// tag of the request that opened it; whatever the agents do about that, no statement may be
// counted for a request that did not run it, and a request's own statements are either counted
// for it or shown as unattributed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, pgConninfo } from '../agents/php/harness.fixture.js';
import { PROJECT, REPO_ROOT, stackMissing, startStack } from '../demo/stack.js';
import { PG_DSN, skipWithoutPhp, skipWithoutPostgres, tempDir } from './env.js';

interface Page {
  correlation_id: string;
  /** The request's number, also written into each of its statements as a comment. */
  n: number;
  /** application_name as the server saw it during the request. */
  app: string;
}

interface View {
  summary: { queryCount: number } | null;
  queries: { text: string; placement: string }[];
}

// Each page runs a statement long enough for sampling alone to see it (the request is over the
// PHP agent's 300 ms threshold, so its span is sent), then asks for its own application_name.
const PAGES = {
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

test('persistent connections (pg_pconnect, PDO): no statement is counted for a request that did not run it', async (t) => {
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
  // 4 opens the PDO connection, 5 and 6 reuse it; 7 goes back to the pgsql link.
  const order = ['pconnect.php', 'pconnect.php', 'pconnect.php', 'pdo.php', 'pdo.php', 'pdo.php', 'pconnect.php'];
  const pages: Page[] = [];
  for (const [i, page] of order.entries()) {
    const res = await fetch(`http://127.0.0.1:${port}/${page}?n=${i + 1}`);
    assert.equal(res.status, 200, `${page}: ${await res.clone().text()}`);
    pages.push((await res.json()) as Page);
  }
  const byId = new Map(pages.map((p) => [p.correlation_id, p]));
  assert.equal(byId.size, pages.length, 'one correlation id per request');
  const stale = pages.filter((p) => p.app !== `req:${p.correlation_id}`);

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
    if (summarized && pages.every((p) => filed.has(p.n))) break;
    if (Date.now() > deadline) assert.fail(`not every request's statement and summary arrived: statements of ${[...filed].join(', ')}; ${stderr}`);
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
    // A request whose connection carried its own tag has its long statement counted.
    if (byId.get(id)!.app === `req:${id}`) assert.ok(counted.some((q) => /pg_sleep/.test(q.text)), `request ${own}'s statement is counted`);
  }
  // The scenario did what it is for: some requests ran on a connection tagged by another one.
  assert.ok(stale.length > 0 || pages.every((p) => p.app === `req:${p.correlation_id}`));
  t.diagnostic(`queries counted per request: ${pages.map((p) => `${p.n}=${views.get(p.correlation_id)!.summary!.queryCount}`).join(' ')}`);
  t.diagnostic(`requests on a stale-tagged connection: ${stale.map((p) => p.n).join(', ') || 'none (the PHP agent re-tagged them)'}`);
});

function markerOf(text: string): number | undefined {
  const m = /e2e-req-(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}
