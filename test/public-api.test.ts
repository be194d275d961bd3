// Built-in plugins are written exactly as outside plugins are: the only collector module they
// import is the public API, collector/api.ts.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './env.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

test('plugins import nothing from collector/ but collector/api.ts', () => {
  const offenders: string[] = [];
  for (const file of sources(join(repoRoot, 'plugins'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/from\s+'([^']+)'/g)) {
      const target = m[1]!;
      if (/(^|\/)collector\//.test(target) && !/(^|\/)collector\/api\.js$/.test(target)) offenders.push(`${relative(repoRoot, file)} imports ${target}`);
    }
  }
  assert.deepEqual(offenders, []);
});
