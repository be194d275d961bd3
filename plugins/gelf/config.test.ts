// The gelf section as the config loader reports it: a bad endpoint is an ordinary problem with
// file, line and key path, listed with the others, never a stack trace.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { builtinFactories } from '../../collector/app/components.js';
import { ConfigError, loadConfig } from '../../collector/core/config.js';
import { CLI } from '../../test/collector.js';
import { tempDir } from './exporter.fixture.js';

const CONFIG = `receivers:
  otlp:
exporters:
  gelf/bare:
    endpoint: 127.0.0.1:12201
  gelf/scheme:
    endpoint: foo://x:1
  gelf/nohost:
    endpoint: tcp://:12201
  gelf/path:
    endpoint: udp://graylog:12201/gelf
  gelf/good:
    endpoint: http://graylog:12201/gelf
    compression: zlib
    http: { bulk: true, max_body_size: 100 }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [gelf/bare, gelf/scheme, gelf/nohost, gelf/path, gelf/good] }
`;

const FORMS = /must be tcp:\/\/host:port, tls:\/\/host:port, udp:\/\/host:port or http\(s\):\/\/host:port\/path/;

test('bad gelf endpoints are reported as file:line: key: problem, all at once', async (t) => {
  const file = join(tempDir(t), 'bad-gelf.yaml');
  writeFileSync(file, CONFIG);
  const err = await loadConfig(file, builtinFactories, {}).then(
    () => assert.fail('should not load'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, String(err));
  const lines = err.message.split('\n');
  const expect = [
    [5, 'exporters.gelf/bare.endpoint', FORMS],
    [7, 'exporters.gelf/scheme.endpoint', /scheme "foo" is not supported/],
    [9, 'exporters.gelf/nohost.endpoint', /./],
    [11, 'exporters.gelf/path.endpoint', /takes no path/],
    [14, 'exporters.gelf/good.compression', /gzip or none/],
    [15, 'exporters.gelf/good.http.max_body_size', /at least 1 KiB/],
  ] as const;
  for (const [line, path, message] of expect) {
    const found = lines.find((l) => l.startsWith(`${file}:${line}: ${path}: `));
    assert.ok(found, `expected a problem at line ${line} for ${path}; got:\n${err.message}`);
    assert.match(found, message);
  }
  assert.doesNotMatch(err.message, /\n\s+at /, 'no stack');
});

test('bitville validate prints the problems and exits 1, without a stack', async (t) => {
  const file = join(tempDir(t), 'bad-gelf.yaml');
  writeFileSync(file, CONFIG);
  const failed = await promisify(execFile)(process.execPath, [CLI, 'validate', '--config', file]).then(
    () => assert.fail('validate should fail'),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  assert.equal(failed.code, 1);
  const output = failed.stdout + failed.stderr;
  assert.match(output, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5: exporters\\.gelf/bare\\.endpoint: .*must be tcp://`));
  assert.doesNotMatch(output, /\n\s+at /);
  assert.doesNotMatch(output, /ZodError|superRefine/);
});
