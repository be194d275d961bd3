// The correlate processor in a real collector process: spans in over OTLP/HTTP, the summary
// stored after the window; pending joins survive kill -9; a late span re-summarizes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually, readStore, startCollector, type StoredRow } from '../../test/collector.js';
import { postTraces, querySpans, requestSpans, sampleRequest } from './traces.fixture.js';

const withCorrelate = (window: string) => ({
  processors: { correlate: { window } },
  service: { pipelines: { traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] } } },
});

const summariesOf = (dbPath: string, id: string): StoredRow[] => readStore(dbPath).filter((r) => r.kind === 'summary' && r.correlation_id === id);

test('spans pass through and a summary is stored once the id has been quiet for the window', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const r = sampleRequest();
  await postTraces(c.otlpUrl, querySpans(r, r.queries.slice(0, 3)));
  await postTraces(c.otlpUrl, requestSpans(r));
  await postTraces(c.otlpUrl, querySpans(r, r.queries.slice(3)));
  const postedAt = Date.now();

  const [row] = await eventually(() => {
    const found = summariesOf(c.dbPath, r.correlationId);
    return found.length > 0 ? found : undefined;
  }, 10_000, 'a stored summary');
  assert.ok(Date.now() - postedAt >= 250, 'not before the window has passed');
  const spans = readStore(c.dbPath).filter((x) => x.kind === 'span' && x.correlation_id === r.correlationId);
  assert.equal(spans.length, 9, 'every span is stored unchanged beside the summary');
  const a = row!.record.attributes;
  assert.equal(a['bitville.db_query_count'], 8);
  assert.equal(a['bitville.n_plus_one'], true);
  assert.equal(a['url.full'], r.url);
  assert.equal(row!.record.resource['bitville.source'], 'correlate');

  // Nothing new for the id: no second summary, even after more windows and sweeps.
  await c.stop();
  assert.equal(summariesOf(c.dbPath, r.correlationId).length, 1);
});

test('a join pending at kill -9 is completed after the restart (derived from the store)', async (t) => {
  const first = await startCollector(t, { config: withCorrelate('1h') });
  const r = sampleRequest();
  await postTraces(first.otlpUrl, requestSpans(r));
  await postTraces(first.otlpUrl, querySpans(r));
  await first.kill();
  assert.equal(summariesOf(first.dbPath, r.correlationId).length, 0);

  const second = await startCollector(t, { dir: first.dir, config: withCorrelate('300ms') });
  const [row] = await eventually(() => {
    const found = summariesOf(second.dbPath, r.correlationId);
    return found.length > 0 ? found : undefined;
  }, 10_000, 'the summary after restart');
  assert.equal(row!.record.attributes['bitville.db_query_count'], 8);
  await second.stop();
});

test('a DB span arriving after the summary yields a superseding summary', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('300ms') });
  const r = sampleRequest();
  await postTraces(c.otlpUrl, requestSpans(r));
  await postTraces(c.otlpUrl, querySpans(r));
  const [first] = await eventually(() => {
    const found = summariesOf(c.dbPath, r.correlationId);
    return found.length === 1 ? found : undefined;
  }, 10_000, 'the first summary');

  await postTraces(c.otlpUrl, querySpans(r, [{ sql: 'UPDATE carts SET seen = now()', atMs: 590, ms: 4 }]));
  const all = await eventually(() => {
    const found = summariesOf(c.dbPath, r.correlationId);
    return found.length === 2 ? found : undefined;
  }, 10_000, 'the superseding summary');
  const second = all[1]!.record;
  assert.equal(second.attributes['bitville.db_query_count'], 9);
  assert.equal(second.attributes['bitville.summary.revision'], 2);
  assert.equal(second.attributes['bitville.summary.supersedes'], first!.record.spanId);
  await c.stop();
});

test('records of an id that reach the store without passing the processor (another pipeline) are found by the sweep, each time', async (t) => {
  // Logs go to a pipeline without correlate: only the periodic sweep of the store sees them.
  const config = {
    processors: { correlate: { window: '300ms' } },
    service: {
      pipelines: {
        traces: { receivers: ['otlp'], processors: ['correlate'], exporters: [] },
        logs: { receivers: ['otlp'], processors: [], exporters: [] },
      },
    },
  };
  const c = await startCollector(t, { config });
  const r = sampleRequest();
  await postTraces(c.otlpUrl, requestSpans(r));
  await postTraces(c.otlpUrl, querySpans(r));
  await eventually(() => (summariesOf(c.dbPath, r.correlationId).length === 1 ? true : undefined), 10_000, 'the first summary');
  const postLog = async (text: string) => {
    const log = {
      resourceLogs: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: r.project } }] },
          scopeLogs: [{ logRecords: [{ timeUnixNano: `${Date.now()}000000`, body: { stringValue: text }, attributes: [{ key: 'bitville.correlation_id', value: { stringValue: r.correlationId } }] }] }],
        },
      ],
    };
    const res = await fetch(`${c.otlpUrl}/v1/logs`, { method: 'POST', body: JSON.stringify(log), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
  };
  for (const revision of [2, 3]) {
    await postLog(`a warning, revision ${revision}`);
    const found = await eventually(() => {
      const all = summariesOf(c.dbPath, r.correlationId);
      return all.length === revision ? all : undefined;
    }, 10_000, `summary revision ${revision}`);
    assert.equal(found.at(-1)!.record.attributes['bitville.summary.revision'], revision);
    assert.equal(found.at(-1)!.record.attributes['bitville.db_query_count'], 8, 'a log changes no figure');
  }
  await c.stop();
});

test('DB spans without their request span: no summary, judged once; the request span arriving later completes it', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('200ms') });
  const r = sampleRequest();
  await postTraces(c.otlpUrl, querySpans(r));
  const metric = async (name: string) => {
    const text = await (await fetch(`${c.adminUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  await eventually(async () => ((await metric('bitville_correlate_incomplete_total')) === 1 ? true : undefined), 10_000, 'the incomplete join');
  // Several more windows (and sweeps that overlap these records) pass: nothing is joined again.
  const { setTimeout: delay } = await import('node:timers/promises');
  await delay(1000);
  assert.equal(await metric('bitville_correlate_incomplete_total'), 1);
  assert.equal(summariesOf(c.dbPath, r.correlationId).length, 0);

  await postTraces(c.otlpUrl, requestSpans(r));
  const [row] = await eventually(() => {
    const found = summariesOf(c.dbPath, r.correlationId);
    return found.length > 0 ? found : undefined;
  }, 10_000, 'the summary once the request span arrived');
  assert.equal(row!.record.attributes['bitville.db_query_count'], 8);
  assert.equal(row!.record.attributes['bitville.summary.revision'], 1);
  assert.equal(await metric('bitville_correlate_summaries_total'), 1);
  await c.stop();
});

test('re-delivery through the collector leaves the summary unchanged; a statement a minute later is not counted', async (t) => {
  const c = await startCollector(t, { config: withCorrelate('200ms') });
  const metric = async (name: string) => {
    const text = await (await fetch(`${c.adminUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const r = sampleRequest();
  r.queries.forEach((q, i) => (q.spanId = `${'e'.repeat(14)}${String(i).padStart(2, '0')}`));
  await postTraces(c.otlpUrl, requestSpans(r));
  await postTraces(c.otlpUrl, querySpans(r));
  const [first] = await eventually(() => {
    const found = summariesOf(c.dbPath, r.correlationId);
    return found.length === 1 ? found : undefined;
  }, 10_000, 'the first summary');
  const joins = await metric('bitville_correlate_joins_total');

  // The agent retries both batches (at-least-once delivery): every span is stored twice.
  await postTraces(c.otlpUrl, requestSpans(r));
  await postTraces(c.otlpUrl, querySpans(r));
  await eventually(async () => ((await metric('bitville_correlate_joins_total')) > joins ? true : undefined), 10_000, 'the join of the re-delivered spans');
  const spans = readStore(c.dbPath).filter((x) => x.kind === 'span' && x.correlation_id === r.correlationId);
  assert.equal(spans.length, 18, 'both copies are stored (nothing acknowledged is dropped)');
  assert.equal(summariesOf(c.dbPath, r.correlationId).length, 1, 'no new summary for re-delivered spans');

  // A statement a minute after the request, still carrying its id, and the driver's DEALLOCATE:
  // a new summary that says so, with the same count and DB time.
  await postTraces(c.otlpUrl, querySpans(r, [{ sql: 'DEALLOCATE pdo_stmt_00000001', atMs: 530, ms: 0.2 }, { sql: 'SELECT * FROM orders WHERE id = 9', atMs: 60_000, ms: 50 }]));
  const all = await eventually(() => {
    const found = summariesOf(c.dbPath, r.correlationId);
    return found.length === 2 ? found : undefined;
  }, 10_000, 'the summary after the late statement');
  const a = all[1]!.record.attributes;
  assert.equal(a['bitville.db_query_count'], first!.record.attributes['bitville.db_query_count']);
  assert.equal(a['bitville.db_time_ms'], first!.record.attributes['bitville.db_time_ms']);
  assert.equal(a['bitville.db_query_count'], 8);
  assert.equal(a['bitville.db_unattributed_count'], 1);
  assert.equal(a['bitville.db_housekeeping_count'], 1);

  // The lookup shows it, as unattributed, and the waterfall is not stretched to a minute.
  const view = (await (await fetch(`${c.adminUrl}/api/requests/${r.correlationId}`)).json()) as { queryCount: number; extentMs: number; queries: { placement: string }[] };
  assert.equal(view.queryCount, 8);
  assert.equal(view.queries.filter((q) => q.placement === 'outside_window').length, 1);
  assert.ok(view.extentMs <= 600, `extent ${view.extentMs} ms`);
  const page = await (await fetch(`${c.adminUrl}/requests/${r.correlationId}`)).text();
  assert.match(page, /class="row query housekeeping" data-placement="housekeeping">.*housekeeping<\/span> DEALLOCATE pdo_stmt_00000001/);
  assert.match(page, /<h2>Unattributed \(1\)<\/h2>/);
  assert.match(page, /<li data-placement="outside_window">.*SELECT \* FROM orders WHERE id = 9/);
  await c.stop();
});
