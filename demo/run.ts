// `npm run demo`: the whole pipeline on this machine. Starts a GELF receiver that prints what
// it gets, the collector, both agents and a small PHP shop under `php -S` running real
// PostgreSQL queries; makes a few slow requests (one with an N+1 pattern, one spending its time
// in a named PHP function, for the flame graph); prints where to look (the overview too); runs until Ctrl-C (or exits once the summaries arrived, with --once).
//
// Environment: BITVILLE_DEMO_PG (default postgres://postgres@127.0.0.1:5432/test).
import { rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Received } from './gelf-receiver.js';
import { REPO_ROOT, stackMissing, startStack } from './stack.js';

const PG_DSN = process.env.BITVILLE_DEMO_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const once = process.argv.includes('--once');
const dir = join(REPO_ROOT, 'data', 'demo');
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(`${s}\n`);

const missing = await stackMissing(PG_DSN);
if (missing) {
  process.stderr.write(`The demo needs PHP (with pgsql) and PostgreSQL: ${missing}\n`);
  process.exit(1);
}
rmSync(dir, { recursive: true, force: true });
say('Starting: GELF receiver, collector, php-agent, pg-agent, PHP application ...');
const stack = await startStack({ dir, pgDsn: PG_DSN });
say(`  PHP application   ${stack.appUrl}/`);
say(`  collector admin   ${stack.adminUrl}/`);
say(`  GELF receiver     tcp://127.0.0.1:${stack.gelf.port} (prints below)`);
say(`  pg-agent capture  ${stack.logSource ? 'sampling + server log (every statement, exact durations)' : 'sampling only (statements longer than 100 ms; enable the log source for all)'}`);
say();

const summaries = new Map<string, Received>();
let others = 0;
stack.gelf.on('message', (m: Received) => {
  if (m._kind !== 'summary') {
    others++;
    say(`gelf  ${String(m.short_message).padEnd(22)} ${String(m._kind).padEnd(7)} ${String(m._name ?? '')}`.slice(0, 140));
    return;
  }
  summaries.set(String(m._correlation_id), m);
  say(bold(`gelf  ${m.short_message}  REQUEST SUMMARY ${m._method} ${m._url} -> ${m._status_code}`));
  say(`      duration ${m._duration_ms} ms, DB ${m._db_time_ms} ms in ${m._db_query_count} queries, N+1: ${m._n_plus_one}${m._n_plus_one_query ? ` (${m._n_plus_one_count}x ${m._n_plus_one_query})` : ''}`);
  say(`      correlation id ${m._correlation_id}`);
});

const pages = ['/orders.php', '/report.php', '/customer.php?id=3', '/invoice.php', '/fast.php'];
const slow: string[] = [];
let invoice = '';
for (const page of pages) {
  const res = await fetch(stack.appUrl + page);
  const body = (await res.json()) as { page: string; correlation_id: string; queries: number; db_ms: number };
  say(`app   GET ${page.padEnd(20)} ${res.status}  ${body.page}; PHP timed ${body.queries} queries at ${body.db_ms} ms`);
  if (page !== '/fast.php') slow.push(body.correlation_id);
  if (page === '/invoice.php') invoice = body.correlation_id;
}
say();
say('Waiting for the request summaries (the join window is 4 s after the last span of a request) ...');
const deadline = Date.now() + 60_000;
while (slow.some((id) => !summaries.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));

const config = relative(process.cwd(), stack.collectorConfig);
say();
say(bold('Where to look'));
say(`  web page     ${stack.adminUrl}/   (slow requests; click one for its waterfall)`);
say(`  overview     ${stack.adminUrl}/overview   (endpoints, statements, latency over time; also bitville top endpoints)`);
say(`  N+1 request  ${stack.adminUrl}/requests/${slow[0]}`);
say(`  flame graph  ${stack.adminUrl}/requests/${invoice}#profile   (450 ms in demo_render_invoice(); needs PHP's excimer extension)`);
say(`  trace view   ${stack.adminUrl}/traces/${slow[0]}   (every span and log of the trace; paste any trace id on the list page)`);
say(`  JSON API     ${stack.adminUrl}/api/requests?slowest   and   ${stack.adminUrl}/api/requests/${slow[0]}`);
say(`  CLI          node dist/collector/app/cli.js requests --config ${config} --slowest`);
say(`               node dist/collector/app/cli.js trace ${slow[0]} --config ${config}`);
say(`               node dist/collector/app/cli.js top endpoints --config ${config}`);
say(`  files        ${relative(process.cwd(), dir)}/ (configs, the store, each process's log)`);
say(`  GELF         ${summaries.size} request summaries and ${others} other messages printed above`);
if (slow.some((id) => !summaries.has(id))) say('  (some summaries did not arrive within 60 s: see the logs under the files directory)');

if (once) {
  await stack.stop();
} else {
  say();
  say(`Running; open the pages above, or make more requests at ${stack.appUrl}/. Ctrl-C stops everything.`);
  const stop = async () => {
    say('\nstopping ...');
    await stack.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
