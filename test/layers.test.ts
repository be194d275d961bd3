// The layers, checked on every source file's imports (tests and fixtures are exempt: they may
// reach anywhere to set things up). Arrows point down only:
//
//   collector/app     CLI, built-in registry, admin server      -> anything below
//   plugins/<name>    built-in components                       -> collector/core/api.ts (and proto)
//   collector/store   SQLite and PostgreSQL implementations     -> core, common
//   collector/core    pipeline, plugin API, config, contracts   -> common
//   agents/           the agents and their runtime              -> common, proto
//   collector/common  errors, config loading, command helpers   -> nothing of ours
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './env.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.fixture.ts') ? [path] : [];
  });
}

/** Repo-relative targets of a file's relative imports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => relative(repoRoot, resolve(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
}

function offenders(layer: string, allowed: (target: string, file: string) => boolean): string[] {
  return sources(join(repoRoot, layer)).flatMap((file) => {
    const from = relative(repoRoot, file);
    return importsOf(file)
      .filter((target) => !allowed(target, from))
      .map((target) => `${from} imports ${target}`);
  });
}

const under = (target: string, ...folders: string[]) => folders.some((f) => target.startsWith(`${f}/`));

test('collector/common imports nothing of the project outside itself', () => {
  assert.deepEqual(offenders('collector/common', (t) => under(t, 'collector/common') || t.startsWith('proto/')), []);
});

test('collector/core imports only core and common (no plugin, agent, store implementation or app)', () => {
  assert.deepEqual(offenders('collector/core', (t) => under(t, 'collector/core', 'collector/common')), []);
});

test('collector/store imports only core contracts and common', () => {
  assert.deepEqual(offenders('collector/store', (t) => under(t, 'collector/store', 'collector/core', 'collector/common')), []);
});

test('plugins import nothing of the collector but collector/core/api.ts, and nothing of another plugin', () => {
  const own = (t: string, file: string) => t.startsWith(`${file.split('/').slice(0, 2).join('/')}/`);
  assert.deepEqual(offenders('plugins', (t, file) => t === 'collector/core/api.ts' || own(t, file) || t.startsWith('proto/')), []);
});

test('agents import only common from the collector (never its core, store or app)', () => {
  assert.deepEqual(offenders('agents', (t) => under(t, 'agents', 'collector/common', 'proto')), []);
});

test('nothing but the app imports the app', () => {
  const notApp = ['collector/common', 'collector/core', 'collector/store', 'plugins', 'agents'];
  const bad = notApp.flatMap((layer) => offenders(layer, (t) => !under(t, 'collector/app')));
  assert.deepEqual(bad, []);
});
