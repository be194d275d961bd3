// The sampler: 10,000 requests with their DB spans at a 1% base rate, delivered in both orders
// (DB spans before and after their request span): every slow and failed request kept whole,
// about 1% of the rest, never a partial request, and the same ids kept by a second instance
// that sees other batches. Then held records: released when the store has the id, else dropped.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { FlatRecord } from '../../collector/core/api.js';
import { buildProcessor, span, summary, type Harness } from '../../test/processors.fixture.js';
import { hashId, sampledIn } from './decide.js';

type Kind = 'slow' | 'error' | 'db_error' | 'normal';
interface Req {
  id: string;
  kind: Kind;
  dbFirst: boolean;
  server: FlatRecord;
  db: FlatRecord[];
}

/** A span literal (the fixture's builder is too slow for 40,000 records on a shared machine). */
function fastSpan(id: string, spanId: string, spanKind: number, durationMs: number, statusCode: number, attributes: Record<string, string | number>): FlatRecord {
  return {
    kind: 'span', resource: RESOURCE, scope: SCOPE, attributes: { 'bitville.correlation_id': id, ...attributes },
    traceId: id, spanId, correlationId: id, parentSpanId: '', traceState: '', name: spanKind === 2 ? 'GET /orders' : 'SELECT',
    spanKind, startTimeUnixNano: '1764400000000000000', endTimeUnixNano: '1764400000010000000', durationMs,
    status: { code: statusCode, message: '' }, events: [], links: [], flags: 0,
  };
}
const RESOURCE = { 'service.name': 'shop' };
const SCOPE = { name: 'test', version: '', attributes: {} };

function requests(n: number): Req[] {
  return Array.from({ length: n }, (_, i) => {
    const id = randomBytes(16).toString('hex');
    const kind: Kind = i % 20 === 0 ? 'slow' : i % 20 === 1 ? 'error' : i % 50 === 2 ? 'db_error' : 'normal';
    const server = fastSpan(id, `s${i}`, 2, kind === 'slow' ? 750 : 40, 0, { 'http.response.status_code': kind === 'error' ? 503 : 200 });
    const db = [0, 1, 2].map((k) => fastSpan(id, `d${i}-${k}`, 3, 5, kind === 'db_error' && k === 1 ? 2 : 0, { 'db.query.text': 'SELECT 1' }));
    return { id, kind, dbFirst: i % 2 === 0, server, db };
  });
}

/** Feeds the requests in groups: one batch with what arrives first, one with the rest. */
async function feed(h: Harness, reqs: Req[], group: number): Promise<FlatRecord[]> {
  const out: FlatRecord[] = [];
  // The sampler writes only attributes: a shallow copy with its own attribute map is enough.
  const copy = (r: FlatRecord): FlatRecord => ({ ...r, attributes: { ...r.attributes } });
  for (let g = 0; g < reqs.length; g += group) {
    const slice = reqs.slice(g, g + group);
    const first = slice.flatMap((r) => (r.dbFirst ? r.db : [r.server]).map(copy));
    const second = slice.flatMap((r) => (r.dbFirst ? [r.server] : r.db).map(copy));
    out.push(...(await h.processor.process(first, 'traces')), ...(await h.processor.process(second, 'traces')));
  }
  // Shutdown waits for every release (held records of decided ids) to be committed.
  await h.processor.shutdown(new AbortController().signal);
  return [...out, ...h.emitted];
}

const sampler = { sampler: { sampling_percentage: 1, slow_threshold: '500ms', hash_seed: 7 } };

test('10,000 requests at 1%: slow and failed kept whole, about 1% of the rest, never partial', async (t) => {
  const reqs = requests(10_000);
  const h = await buildProcessor(t, sampler, 'sampler');
  const kept = await feed(h, reqs, 50);
  const perId = new Map<string, FlatRecord[]>();
  for (const r of kept) perId.set(r.correlationId, [...(perId.get(r.correlationId) ?? []), r]);

  const partial = [...perId.values()].filter((l) => l.length !== 4);
  assert.equal(partial.length, 0, 'no request is kept in part');
  for (const kind of ['slow', 'error', 'db_error'] as const) {
    const all = reqs.filter((r) => r.kind === kind);
    const lost = all.filter((r) => !perId.has(r.id));
    assert.equal(lost.length, 0, `every ${kind} request is kept (${all.length})`);
  }
  const normal = reqs.filter((r) => r.kind === 'normal');
  const keptNormal = normal.filter((r) => perId.has(r.id));
  assert.ok(keptNormal.length >= normal.length * 0.005 && keptNormal.length <= normal.length * 0.016, `about 1% of ${normal.length} normal requests kept, got ${keptNormal.length}`);
  // Exactly those the hash selects.
  assert.deepEqual(new Set(keptNormal.map((r) => r.id)), new Set(normal.filter((r) => sampledIn(r.id, 7, 1)).map((r) => r.id)));

  // Counts scale back: request spans carry 1 when always kept, 100 when kept by the hash.
  const adjusted = (id: string) => perId.get(id)!.find((r) => r.kind === 'span' && r.spanKind === 2)!.attributes['sampling.adjusted_count'];
  for (const r of reqs) if (perId.has(r.id)) assert.equal(adjusted(r.id), r.kind === 'normal' ? 100 : 1, r.kind);
  const estimate = reqs.filter((r) => perId.has(r.id)).reduce((n, r) => n + (adjusted(r.id) as number), 0);
  assert.ok(Math.abs(estimate - 10_000) < 3_000, `scaled-back request count ${estimate} is near 10,000`);

  assert.equal(await h.metric('bitville_sampler_kept_total'), kept.length);
  assert.equal(await h.metric('bitville_sampler_dropped_total'), 40_000 - kept.length);
  assert.equal(await h.metric('bitville_sampler_held_expired_total'), 0);

  // Another instance, other batches, same seed: the same ids.
  const other = await buildProcessor(t, sampler, 'sampler');
  const keptOther = await feed(other, reqs, 7);
  assert.deepEqual(new Set(keptOther.map((r) => r.correlationId)), new Set(perId.keys()));
});

test('summaries and records without an id always pass; the hash is stable', async (t) => {
  const h = await buildProcessor(t, { sampler: { sampling_percentage: 0 } }, 'sampler');
  const out = await h.processor.process([summary({ correlationId: 'x' }), span({ correlationId: '', traceId: '' }), span({ correlationId: 'y', spanKind: 2 })], 'traces');
  assert.deepEqual(out.map((r) => r.kind), ['summary', 'span']);
  // Pinned values: a change of the hash would split requests across collector versions.
  assert.equal(hashId('0af7651916cd43dd8448eb211c80319c', 0), hashId('0af7651916cd43dd8448eb211c80319c', 0));
  assert.notEqual(hashId('0af7651916cd43dd8448eb211c80319c', 0), hashId('0af7651916cd43dd8448eb211c80319c', 1));
});

test('held records: kept when the store has the id (another instance kept it), else dropped after decision_wait', async (t) => {
  const h = await buildProcessor(t, { sampler: { sampling_percentage: 0, decision_wait: '100ms' } }, 'sampler');
  const db = (id: string, n: number) => span({ correlationId: id, traceId: id, spanId: `${id}-${n}`, spanKind: 3 });
  assert.deepEqual(await h.processor.process([db('lonely', 1), db('lonely', 2)], 'traces'), []);
  assert.deepEqual(await h.processor.process([db('elsewhere', 1)], 'traces'), []);
  // The slow request of `elsewhere` reached the store through another collector instance.
  await h.store.append([span({ correlationId: 'elsewhere', traceId: 'elsewhere', spanKind: 2, durationMs: 900 })]);
  const [released] = (await once(h.events, 'emit')) as [FlatRecord[]];
  assert.deepEqual(released.map((r) => r.spanId), ['elsewhere-1']);
  assert.equal(released[0]!.attributes['bitville.sampling.rate'], 1);
  // `lonely` was held first, so it was decided first: dropped and counted.
  assert.equal(await h.metric('bitville_sampler_held_expired_total'), 2);
  // A late DB span of a dropped id follows the verdict.
  assert.deepEqual(await h.processor.process([db('lonely', 3)], 'traces'), []);
});

test('held records are kept at shutdown (their verdict is unknown; nothing acknowledged is lost)', async (t) => {
  const h = await buildProcessor(t, { sampler: { sampling_percentage: 0 } }, 'sampler');
  await h.processor.process([span({ correlationId: 'q', spanId: 'q1', spanKind: 3 })], 'traces');
  await h.processor.shutdown(new AbortController().signal);
  assert.deepEqual(h.emitted.map((r) => r.spanId), ['q1']);
  assert.equal((await h.store.byCorrelationId('q')).length, 1);
});

test('config errors name the key', async (t) => {
  const err = await buildProcessor(t, { sampler: { sampling_percentage: 150, slow_threshold: 'slow', rate: 1 } }, 'sampler').then(
    () => assert.fail('should not load'),
    (e: Error) => e.message,
  );
  assert.match(err, /processors\.sampler\.sampling_percentage: /);
  assert.match(err, /processors\.sampler\.slow_threshold: "slow" is not a duration/);
  assert.match(err, /processors\.sampler\.rate: unknown key/);
});
