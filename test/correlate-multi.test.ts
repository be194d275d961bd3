// Two collector instances on one PostgreSQL store, each with the correlate processor: the
// request span reaches one, its DB spans the other. Both can join the request (the sweep finds
// the other's records); whatever each does, the summaries agree (one deterministic id, the same
// content) and the lookups on either instance show the request once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { postTraces, querySpans, requestSpans, sampleRequest } from '../plugins/correlate/traces.fixture.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, eventually, startCollector, type RunningCollector } from './collector.js';
import { PG_DSN, skipWithoutPostgres } from './env.js';
import { freshSchema, sql } from './pg.js';

const run = promisify(execFile);

test('two instances on one PostgreSQL store: agreeing summaries, one request in the lookups', async (t) => {
  if (await skipWithoutPostgres(t)) return;
  const schema = freshSchema(t);
  const instance = () =>
    startCollector(t, {
      config: {
        processors: { correlate: { window: '300ms' } },
        storage: { postgres: { dsn: PG_DSN, schema, pool_size: 4 } },
        service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
      },
    });
  const a: RunningCollector = await instance();
  const b: RunningCollector = await instance();
  const r = sampleRequest();
  await postTraces(a.otlpUrl, requestSpans(r));
  await postTraces(b.otlpUrl, querySpans(r));

  const summaries = await eventually(async () => {
    const rows = await sql<{ body: string }>(`SELECT body FROM "${schema}".records WHERE kind = 'summary' AND correlation_id = $1 ORDER BY id`, [r.correlationId]);
    const all = rows.map((row) => JSON.parse(row.body));
    return all.some((s) => s.attributes['bitville.db_query_count'] === 8) ? all : undefined;
  }, 15_000, 'a summary covering all 8 queries');
  // Let both instances' windows and sweeps pass, then look again.
  const { setTimeout: delay } = await import('node:timers/promises');
  await delay(1000);
  const rows = await sql<{ body: string }>(`SELECT body FROM "${schema}".records WHERE kind = 'summary' AND correlation_id = $1 ORDER BY id`, [r.correlationId]);
  const final = rows.map((row) => JSON.parse(row.body));
  t.diagnostic(`summaries stored: ${final.map((s) => `rev ${s.attributes['bitville.summary.revision']} ${s.spanId} (${s.attributes['bitville.db_query_count']} queries)`).join(', ')}`);
  assert.ok(final.length >= summaries.length);
  const complete = final.filter((s) => s.attributes['bitville.db_query_count'] === 8);
  // Every complete summary is the same summary: same id, same content.
  assert.equal(new Set(complete.map((s) => s.spanId)).size, 1, 'one summary id for the complete join');
  assert.equal(new Set(complete.map((s) => JSON.stringify(s))).size, 1, 'identical content');
  assert.equal(complete[0].attributes['bitville.n_plus_one'], true);

  for (const c of [a, b]) {
    const list = (await (await fetch(`${c.adminUrl}/api/requests`)).json()) as { requests: { correlationId: string; queryCount: number }[] };
    const mine = list.requests.filter((x) => x.correlationId === r.correlationId);
    assert.equal(mine.length, 1, 'the request is listed once');
    assert.equal(mine[0]!.queryCount, 8);
  }
  // The CLI finds the same PostgreSQL store through the config.
  const { stdout } = await run(process.execPath, [CLI, 'trace', r.correlationId, '--config', a.configPath, '--json']);
  assert.equal(JSON.parse(stdout).queries.length, 8);
  await a.stop();
  await b.stop();
});
