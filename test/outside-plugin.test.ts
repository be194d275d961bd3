// The README's example exporter, loaded from a temporary directory through the config's
// `plugins:` list, receives what the collector stores.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually, startCollector } from './collector.js';
import { repoRoot, tempDir } from './env.js';

function readmeExample(): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const m = /<!-- plugin-example:start -->\s*```js\n([\s\S]*?)```\s*<!-- plugin-example:end -->/.exec(readme);
  assert.ok(m, 'README.md has the plugin example between its markers');
  return m[1]!;
}

test('an outside exporter from a plugin file receives every stored record', async (t) => {
  const pluginDir = tempDir(t, 'bitville-plugin-');
  writeFileSync(join(pluginDir, 'file-exporter.mjs'), readmeExample());
  const out = join(pluginDir, 'records.jsonl');
  const c = await startCollector(t, {
    config: {
      plugins: [join(pluginDir, 'file-exporter.mjs')],
      exporters: { 'file/main': { path: out } },
      service: { pipelines: { traces: { receivers: ['otlp'], exporters: ['file/main'] } } },
    },
  });
  const spans = [1, 2, 3].map((n) => ({ traceId: 'ab'.repeat(16), spanId: `${n}`.padStart(16, '0'), name: `s${n}`, startTimeUnixNano: '1', endTimeUnixNano: '2' }));
  const res = await fetch(`${c.otlpUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans }] }] }),
  });
  assert.equal(res.status, 200);
  const lines = await eventually(() => {
    const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
    const l = text.split('\n').filter(Boolean);
    return l.length >= 3 ? l : undefined;
  }, 10_000, 'three records in the file');
  assert.deepEqual(lines.map((l) => JSON.parse(l).name), ['s1', 's2', 's3']);
  // The lines are in the file a moment before export() returns and the queue marks them.
  await eventually(async () => {
    const metrics = await (await fetch(`${c.adminUrl}/metrics`)).text();
    const done = /file_exporter_written_records\{exporter="file\/main"\} 3\n/.test(metrics) && /otelcol_exporter_queue_size\{exporter="file\/main"\} 0\n/.test(metrics);
    return done || undefined;
  }, 10_000, 'the exporter counted 3 records and its queue is empty');
});

test('a plugin that exports no factory is a config error naming the plugins entry', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'empty.mjs'), 'export const nothing = 1;\n');
  writeFileSync(join(dir, 'config.yaml'), 'plugins: [./empty.mjs]\nreceivers:\n  otlp:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n');
  const { loadConfig } = await import('../collector/core/config.js');
  const { builtinFactories } = await import('../collector/app/components.js');
  await assert.rejects(loadConfig(join(dir, 'config.yaml'), builtinFactories), (err: Error) => {
    assert.match(err.message, /config.yaml:1: plugins\[0\]: cannot load plugin ".\/empty.mjs": it exports no factory/);
    return true;
  });
});
