// Correlation accuracy on a real PHP-FPM site, against the ground truth each request measures
// about itself (issue 12). nginx + php-fpm (4 static workers, agent.php prepended) serve pages
// with an ordinary connection, PDO persistent, pg_pconnect, an N+1 page, a transaction page and
// a PHP-only slow page (and one through pgbouncer in transaction mode when it is installed), at
// about 8 requests/s; the real collector (correlate), php-agent and
// pg-agent run as in the demo. Then the stored summaries and DB spans are compared with the
// truth, once with sampling only and once with the server log as well.
// `npm run bench -- accuracy` (60 s per run), `--long` (3 min per run), `--duration=SECONDS`,
// `--keep` (keep the files: truth, store, every process's log).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { freePort } from '../agents/php/harness.fixture.js';
import { PROJECT, REPO_ROOT, startStack } from '../demo/stack.js';
import { measure, type Measured, type StoredDbSpan, type StoredView, type TruthRequest } from './accuracy/measure.js';
import { findBinaries, FPM_WORKERS, type Server, startBouncer, startCluster, startWeb } from './accuracy/servers.js';

const RATE_PER_S = 8;
const THRESHOLD_MS = 300;
const APP_DIR = join(REPO_ROOT, 'bench', 'accuracy', 'app');
/** The pages (bench/accuracy/app), ordinary twice as often; `pgbouncer` joins them when it is installed. */
const PAGES = ['ordinary', 'ordinary', 'pconnect', 'pdo_persistent', 'nplus1', 'transaction', 'php_slow'];

function durationS(): number {
  const args = process.argv.slice(2);
  const given = args.find((a) => a.startsWith('--duration='));
  if (given) return Number(given.split('=')[1]);
  return args.includes('--long') ? 180 : 60;
}

/** A small deterministic generator, so both runs drive the same sequence of requests. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The next request's path: a page, slow (over the threshold) in 60 % of requests, fast otherwise. */
function nextPath(rnd: () => number, pages: readonly string[]): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const slow = rnd() < 0.6;
  const steps = () => {
    if (!slow) return [pick([1, 5, 10, 20]), pick([1, 5, 10, 20]), pick([1, 5, 10, 20])];
    for (;;) {
      const ms = [pick([30, 60, 110, 150, 200]), pick([30, 60, 110, 150, 200]), pick([30, 60, 110, 150, 200])];
      const sum = ms.reduce((a, b) => a + b, 0);
      if (sum >= 360 && sum <= 520) return ms;
    }
  };
  // Mostly back to back; now and then PHP works between statements.
  const gap = () => (slow && rnd() < 0.3 ? Math.floor(5 + rnd() * 25) : 0);
  const page = pick(pages);
  switch (page) {
    case 'nplus1':
      return slow ? '/nplus1.php?n=20&ms=20' : '/nplus1.php?n=6&ms=2';
    case 'php_slow':
      return `/php_slow.php?php=${slow ? 400 : 30}`;
    default:
      return `/${page}.php?ms=${steps().join(',')}&gap=${gap()}`;
  }
}

/** Open loop: one request every 1/RATE s for the duration, whatever the answers take. */
async function drive(port: number, seconds: number, pages: readonly string[]): Promise<{ sent: number; failed: number }> {
  const rnd = random(12);
  const inFlight: Promise<void>[] = [];
  let failed = 0;
  const started = Date.now();
  for (let i = 0; Date.now() - started < seconds * 1000; i++) {
    const path = nextPath(rnd, pages);
    inFlight.push(
      fetch(`http://127.0.0.1:${port}${path}`)
        .then(async (res) => {
          await res.text();
          if (res.status !== 200) failed++;
        })
        .catch(() => void failed++),
    );
    const next = started + ((i + 1) * 1000) / RATE_PER_S;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
  }
  await Promise.all(inFlight);
  return { sent: inFlight.length, failed };
}

/** Waits until the join has nothing pending and the store has stopped growing. */
async function settle(adminUrl: string, db: Database.Database): Promise<void> {
  const deadline = Date.now() + 90_000;
  let last = -1;
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
    const idle = /^bitville_correlate_pending\{processor="correlate"\} 0$/m.test(metrics);
    const count = (db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
    if (count !== last) (last = count), (stableSince = Date.now());
    if (idle && Date.now() - stableSince >= 4000) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  console.log('  (the join did not settle within 90 s; measuring what is stored)');
}

function storedSpans(db: Database.Database): StoredDbSpan[] {
  const rows = db.prepare(`SELECT correlation_id, body FROM records WHERE kind = 'span'`).all() as { correlation_id: string; body: string }[];
  const out: StoredDbSpan[] = [];
  for (const row of rows) {
    const r = JSON.parse(row.body) as { spanId: string; startTimeUnixNano: string; endTimeUnixNano: string; attributes: Record<string, unknown> };
    const a = r.attributes;
    if (a['db.system.name'] !== 'postgresql') continue;
    out.push({
      spanId: r.spanId,
      correlationId: row.correlation_id,
      pid: Number(a['postgresql.pid']),
      startUs: Number(BigInt(r.startTimeUnixNano) / 1000n),
      endUs: Number(BigInt(r.endTimeUnixNano) / 1000n),
      text: String(a['db.query.text'] ?? ''),
      endPrecision: String(a['bitville.db.end_precision'] ?? ''),
      endUncertaintyMs: Number(a['bitville.end_uncertainty_ms'] ?? 0),
    });
  }
  return out;
}

async function storedViews(adminUrl: string, ids: string[]): Promise<Map<string, StoredView>> {
  const views = new Map<string, StoredView>();
  for (const id of ids) {
    const res = await fetch(`${adminUrl}/api/requests/${id}`);
    if (res.status === 404) {
      views.set(id, { summary: null, counted: [] });
      continue;
    }
    const v = (await res.json()) as { summary: StoredView['summary']; queries: { spanId: string; placement: string }[] };
    views.set(id, { summary: v.summary, counted: v.queries.filter((q) => q.placement === 'counted').map((q) => q.spanId) });
  }
  return views;
}

interface Run {
  dir: string;
  clusterDsn: string;
  /** pgbouncer's port, when it runs. */
  bouncerPort: number | undefined;
  logSource: boolean;
  seconds: number;
  bins: Exclude<ReturnType<typeof findBinaries>, string>;
}

async function runOnce({ dir, clusterDsn, bouncerPort, logSource, seconds, bins }: Run): Promise<Measured> {
  const stack = await startStack({ dir, pgDsn: clusterDsn, window: '2s', logSource });
  try {
    const u = new URL(clusterDsn);
    const truthFile = join(dir, 'truth.jsonl');
    writeFileSync(truthFile, '');
    chmodSync(truthFile, 0o666);
    const port = await freePort();
    const web = await startWeb(bins, {
      dir,
      port,
      appDir: APP_DIR,
      agentPhp: join(REPO_ROOT, 'agents', 'php', 'agent.php'),
      env: {
        BITVILLE_SOCKET: stack.phpAgentSocket,
        BITVILLE_PROJECT: PROJECT,
        BITVILLE_THRESHOLD_MS: String(THRESHOLD_MS),
        BITVILLE_STATE_FILE: join(dir, 'php-agent.breaker'),
        BV_ACC_TRUTH: truthFile,
        BV_ACC_CONNINFO: `host=${u.hostname} port=${u.port} dbname=${u.pathname.slice(1)} user=${u.username}`,
        BV_ACC_PDO_DSN: `pgsql:host=${u.hostname};port=${u.port};dbname=${u.pathname.slice(1)}`,
        BV_ACC_PDO_USER: u.username,
        BV_ACC_BOUNCER_CONNINFO: `host=${u.hostname} port=${bouncerPort ?? 0} dbname=${u.pathname.slice(1)} user=${u.username}`,
      },
    });
    let load: { sent: number; failed: number };
    try {
      load = await drive(port, seconds, bouncerPort ? [...PAGES, 'pgbouncer'] : PAGES);
    } finally {
      // Stopping FPM closes the persistent connections too.
      await web.stop();
    }
    const db = new Database(join(dir, 'bitville.db'), { readonly: true, fileMustExist: true });
    try {
      await settle(stack.adminUrl, db);
      const truth = readFileSync(truthFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TruthRequest);
      const views = await storedViews(stack.adminUrl, truth.map((r) => r.id));
      const measured = measure(truth, storedSpans(db), views, THRESHOLD_MS);
      measured.notes.unshift(`${load.sent} requests sent, ${load.failed} failed, ${truth.length} logged their truth`);
      return measured;
    } finally {
      db.close();
    }
  } finally {
    await stack.stop();
  }
}

export default async function accuracy(): Promise<void> {
  const bins = findBinaries();
  if (typeof bins === 'string') {
    console.log(`skipped: ${bins}`);
    return;
  }
  const seconds = durationS();
  const dir = mkdtempSync(join(tmpdir(), 'bitville-accuracy-'));
  // The cluster's own user must reach its directory below this one.
  chmodSync(dir, 0o755);
  console.log(`nginx + php-fpm (${FPM_WORKERS} static workers), ${RATE_PER_S} req/s for ${seconds} s per run, PHP agent threshold ${THRESHOLD_MS} ms; files under ${dir}`);
  const cluster = await startCluster(bins.pgBin, join(dir, 'pg'), await freePort());
  const results: Measured[] = [];
  let bouncer: Server | undefined;
  try {
    const bouncerPort = await freePort();
    bouncer = await startBouncer(join(dir, 'pgbouncer'), bouncerPort, Number(new URL(cluster.dsn).port));
    if (!bouncer) console.log('pgbouncer is not installed (apt-get install pgbouncer): its page is left out');
    for (const logSource of [false, true]) {
      await cluster.logStatements(logSource);
      const uptime = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      console.log(`run: ${logSource ? 'sampling + log source' : 'sampling only'} (load average ${uptime})`);
      results.push(await runOnce({ dir: join(dir, logSource ? 'log' : 'sampling'), clusterDsn: cluster.dsn, bouncerPort: bouncer ? bouncerPort : undefined, logSource, seconds, bins }));
    }
  } finally {
    await bouncer?.stop();
    await cluster.stop();
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
  const [sampling, logged] = results as [Measured, Measured];
  console.log('\n| measured against ground truth | sampling only | sampling + log source |\n|---|---|---|');
  sampling.rows.forEach(([label, value], i) => console.log(`| ${label} | ${value} | ${logged.rows[i]![1]} |`));
  console.log(`\nsampling only: ${sampling.notes.join('; ')}\nsampling + log source: ${logged.notes.join('; ')}`);
  console.log(`load average after: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
}
