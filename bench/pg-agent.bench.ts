// pg-agent capture rate and cost, on the real PostgreSQL.
// - Sampling only (poll 100 ms): the share of statements of 100 ms or more that become spans
//   (aim: all), and for information the share of all statements.
// - Sampling + log source (log_min_duration_statement = 0 for the workload's sessions): the share
//   of all statements captured (aim: all) and the share with an exact / millisecond end.
// - Cost of one poll: the poll query's round trip and its server execution time, next to
//   `SELECT 1` (the raw baseline) measured in the same run.
// Medians of several runs.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { PG_DSN, postgresMissing } from '../test/env.js';
import { parseAgentConfig } from '../agents/runtime/index.js';
import { PgAgent } from '../agents/pg/agent.js';
import { pgAgentSchema } from '../agents/pg/config.js';
import { ACTIVITY_SQL } from '../agents/pg/sampler.js';
import { CollectingSink } from '../agents/pg/testing.fixture.js';

const RUNS = 3;
const SESSIONS = 4;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

interface Statement {
  tag: string;
  sql: string;
  long: boolean;
}

/** Per session: 8 statements of 100-300 ms, 8 of 10-90 ms, 24 of well under 1 ms, shuffled. */
function workload(run: number, session: number): Statement[] {
  const out: Statement[] = [];
  let n = 0;
  const add = (sql: string, long: boolean) => {
    const tag = `b${run}s${session}q${n++}`;
    out.push({ tag, sql: `${sql} /* ${tag} */`, long });
  };
  for (let i = 0; i < 8; i++) add(`SELECT pg_sleep(${(0.1 + Math.random() * 0.2).toFixed(3)})`, true);
  for (let i = 0; i < 8; i++) add(`SELECT pg_sleep(${(0.01 + Math.random() * 0.08).toFixed(3)})`, false);
  for (let i = 0; i < 24; i++) add(`SELECT ${i} + 1 AS v`, false);
  return out.sort(() => Math.random() - 0.5);
}

async function captureRun(run: number, logSource: boolean) {
  const sink = new CollectingSink();
  const config = parseAgentConfig(
    'bench',
    {
      project: 'bench',
      postgres: { dsn: PG_DSN, application_name: `bitville-pg-agent-bench-${randomBytes(3).toString('hex')}` },
      log_source: { enabled: logSource, match_window: '1s' },
      statements: { enabled: false },
    },
    pgAgentSchema,
  );
  const agent = new PgAgent({ config, sink, logger: pino({ level: 'silent' }) });
  await agent.start();
  const statements: Statement[] = [];
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, s) => {
      const client = new pg.Client({ connectionString: PG_DSN, application_name: `req:${randomBytes(16).toString('hex')}`, options: '-c log_min_duration_statement=0' });
      await client.connect();
      for (const st of workload(run, s)) {
        statements.push(st);
        await client.query(st.sql);
      }
      await client.end();
    }),
  );
  // Let the last statements be polled / read, then send everything still waiting.
  await sink.until(() => sink.spans().filter((sp) => /\/\* b\d+s\d+q\d+ \*\//.test(String(sp.attributes['db.query.text']))).length >= (logSource ? statements.length : statements.filter((s) => s.long).length), 'the workload', 5000).catch(() => {});
  await agent.stop();
  const byTag = new Map(sink.spans().map((sp) => [/\/\* (b\d+s\d+q\d+) \*\//.exec(String(sp.attributes['db.query.text']))?.[1], sp]));
  const captured = statements.filter((s) => byTag.has(s.tag));
  const long = statements.filter((s) => s.long);
  const exact = captured.filter((s) => ['exact', 'millisecond'].includes(byTag.get(s.tag)!.attributes['bitville.db.end_precision'] as string));
  const sleepMs = (s: Statement) => Number(/pg_sleep\(([\d.]+)\)/.exec(s.sql)?.[1] ?? 0) * 1000;
  return {
    missedLongMs: long.filter((s) => !byTag.has(s.tag)).map(sleepMs),
    longShare: long.filter((s) => byTag.has(s.tag)).length / long.length,
    allShare: captured.length / statements.length,
    exactShare: exact.length / statements.length,
    duplicates: sink.spans().length - byTag.size,
  };
}

async function pollCost() {
  const client = new pg.Client({ connectionString: PG_DSN, application_name: 'bitville-pg-agent-bench-cost' });
  await client.connect();
  // Background: 20 idle correlated sessions and 4 running ones, for the poll to see.
  const others = await Promise.all(
    Array.from({ length: 24 }, async (_, i) => {
      const c = new pg.Client({ connectionString: PG_DSN, application_name: `req:${randomBytes(16).toString('hex')}` });
      await c.connect();
      if (i < 4) void c.query('SELECT pg_sleep(30)').catch(() => {});
      return c;
    }),
  );
  const roundTrip = async (sql: string, values?: unknown[]) => {
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      await client.query(sql, values);
      times.push(performance.now() - t0);
    }
    return median(times.slice(50));
  };
  const serverMs = async (sql: string, values?: unknown[]) => {
    const times: number[] = [];
    for (let i = 0; i < 100; i++) {
      const { rows } = await client.query<{ 'QUERY PLAN': { 'Execution Time': number }[] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, values);
      times.push(rows[0]!['QUERY PLAN'][0]!['Execution Time']);
    }
    return median(times.slice(20));
  };
  const params = [[], true];
  const result = {
    pollRoundTrip: await roundTrip(ACTIVITY_SQL, params),
    baselineRoundTrip: await roundTrip('SELECT 1'),
    pollServer: await serverMs(ACTIVITY_SQL, params),
    baselineServer: await serverMs('SELECT 1'),
  };
  await client.query('SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1::int[])', [others.map((c) => (c as unknown as { processID: number }).processID)]);
  await Promise.all(others.map((c) => c.end().catch(() => {})));
  await client.end();
  return result;
}

export default async function (): Promise<void> {
  const missing = await postgresMissing();
  if (missing) {
    console.log(`pg-agent bench skipped: ${missing}`);
    return;
  }
  const probe = new pg.Client({ connectionString: PG_DSN });
  await probe.connect();
  const { rows } = await probe.query<{ c: string; d: string }>(`SELECT current_setting('logging_collector') AS c, current_setting('log_destination') AS d`);
  await probe.end();
  const logReady = rows[0]!.c === 'on' && /jsonlog|csvlog/.test(rows[0]!.d);

  const sampling = [];
  for (let r = 0; r < RUNS; r++) sampling.push(await captureRun(r, false));
  console.log(`pg-agent sampling (poll 100 ms, ${SESSIONS} sessions x 40 statements, ${RUNS} runs, medians):`);
  console.log(`  statements >= 100 ms captured: ${pct(median(sampling.map((s) => s.longShare)))}   all statements captured: ${pct(median(sampling.map((s) => s.allShare)))}`);
  const missed = sampling.flatMap((s) => s.missedLongMs);
  if (missed.length > 0) console.log(`  missed >= 100 ms statements lasted (ms): ${missed.sort((a, b) => a - b).join(', ')} (shorter than the actual gap between two snapshots)`);
  if (logReady) {
    const logged = [];
    for (let r = 0; r < RUNS; r++) logged.push(await captureRun(RUNS + r, true));
    console.log(`pg-agent sampling + log source:`);
    console.log(
      `  all statements captured: ${pct(median(logged.map((s) => s.allShare)))}   with exact/millisecond ends: ${pct(median(logged.map((s) => s.exactShare)))}   duplicates: ${median(logged.map((s) => s.duplicates))}`,
    );
  } else {
    console.log('pg-agent log source skipped: needs logging_collector = on and jsonlog/csvlog in log_destination (agents/pg/testdata/setup-server.sh)');
  }
  const runs: Awaited<ReturnType<typeof pollCost>>[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await pollCost());
  const m = (k: keyof Awaited<ReturnType<typeof pollCost>>) => median(runs.map((x) => x[k]));
  console.log(`pg-agent cost of one poll (24 correlated sessions visible, medians):`);
  console.log(`  round trip ${m('pollRoundTrip').toFixed(3)} ms vs SELECT 1 ${m('baselineRoundTrip').toFixed(3)} ms (x${(m('pollRoundTrip') / m('baselineRoundTrip')).toFixed(2)})`);
  console.log(`  server execution ${m('pollServer').toFixed(3)} ms vs SELECT 1 ${m('baselineServer').toFixed(3)} ms (x${(m('pollServer') / m('baselineServer')).toFixed(1)}); at 10 polls/s: ${(m('pollServer') * 10).toFixed(2)} ms of server time per second`);
}

