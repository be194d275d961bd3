// The attributes, resource and enrich processors: golden cases (testdata/*.golden.yaml), the
// copy-on-write of shared resources, the collector version, and config errors by key path.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildProcessor, runGolden, span } from '../../test/processors.fixture.js';
import { repoRoot } from '../../test/env.js';

const golden = (name: string) => join('plugins', 'attributes', 'testdata', name);
test('attributes: actions and exclude (golden)', (t) => runGolden(t, golden('attributes.golden.yaml')));
test('attributes: include by regexp, ${env:} values (golden)', (t) => runGolden(t, golden('include.golden.yaml')));
test('resource then enrich (golden)', (t) => runGolden(t, golden('resource.golden.yaml')));

test('a resource shared by a batch is hashed once and the sender object is not changed', async (t) => {
  const h = await buildProcessor(t, { resource: { attributes: [{ key: 'host.name', action: 'hash' }] } }, 'resource');
  const shared = { 'service.name': 'shop', 'host.name': 'web-1' };
  const records = [span(), span(), span()].map((r) => ({ ...r, resource: shared }));
  const out = await h.processor.process(records, 'traces');
  const hashed = out.map((r) => r.resource['host.name']);
  assert.equal(new Set(hashed).size, 1);
  assert.match(String(hashed[0]), /^[0-9a-f]{64}$/);
  assert.equal(shared['host.name'], 'web-1');
  assert.equal(await h.metric('bitville_resource_records_total'), 3);
});

test('enrich adds the collector version from package.json by default', async (t) => {
  const h = await buildProcessor(t, { enrich: null }, 'enrich');
  const [r] = await h.processor.process([span({ resource: { 'service.name': 'shop' } })], 'traces');
  const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version;
  assert.equal(r!.resource['bitville.collector.version'], version);
  assert.equal(typeof r!.resource['host.name'], 'string');
  assert.equal(r!.resource['deployment.environment'], undefined, 'no environment configured, none invented');
});

test('config errors name the action and key', async (t) => {
  const err = await buildProcessor(
    t,
    {
      attributes: {
        actions: [
          { key: 'a', action: 'insert' },
          { key: 'b', action: 'extract', pattern: '^(?<x>a)(b)' },
          { key: 'c', action: 'extract', pattern: '([' },
          { key: 'd', action: 'rename', value: 1 },
          { action: 'hash' },
        ],
        include: { match_type: 'strict', span_kinds: ['SERVERISH'] },
      },
    },
    'attributes',
  ).then(
    () => assert.fail('should not load'),
    (e: Error) => e.message,
  );
  for (const expect of [
    /processors\.attributes\.actions\[0\]\.action: insert needs one of value, from_attribute or default_value/,
    /processors\.attributes\.actions\[1\]\.pattern: every group in the pattern must be named/,
    /processors\.attributes\.actions\[2\]\.pattern: not a valid regular expression/,
    /processors\.attributes\.actions\[3\]\.action: /,
    /processors\.attributes\.actions\[4\]\.key: hash needs key and\/or pattern/,
    /processors\.attributes\.include\.span_kinds\[0\]: "SERVERISH" is not a span kind/,
  ]) {
    assert.match(err, expect);
  }
});
