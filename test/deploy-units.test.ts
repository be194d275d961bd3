// The systemd units in deploy/systemd: `systemd-analyze verify` accepts them (no unknown keys,
// no bad values, an executable ExecStart), and each keeps the settings production relies on.
// verify needs ExecStart's program to exist, so the units are copied to a temporary directory
// with /usr/bin/node and /opt/bitville replaced by this machine's node and this checkout.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from './env.js';

const UNITS_DIR = join(repoRoot, 'deploy', 'systemd');
const units = readdirSync(UNITS_DIR).filter((f) => f.endsWith('.service'));

function systemdAnalyzeMissing(): string | undefined {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'systemd-analyze is not installed (apt-get install systemd; .ci/run does this)';
  }
}

/** The [Service] settings as key -> values (a key may repeat). */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

test('deploy/systemd holds the three units', () => {
  assert.deepEqual(units.sort(), ['bitville-collector.service', 'bitville-pg-agent.service', 'bitville-php-agent.service']);
});

test('systemd-analyze verify accepts every unit, with no warning about them', (t) => {
  const missing = systemdAnalyzeMissing();
  if (missing) return t.skip(missing);
  const dir = tempDir(t);
  const paths = units.map((name) => {
    const text = readFileSync(join(UNITS_DIR, name), 'utf8').replaceAll('/usr/bin/node', process.execPath).replaceAll('/opt/bitville/', repoRoot);
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
  const run = spawnSync('systemd-analyze', ['verify', '--man=no', ...paths], { encoding: 'utf8' });
  // Unknown keys and bad values are only warnings (exit 0): any line naming our files fails.
  const aboutOurs = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => units.some((u) => l.includes(u)));
  assert.deepEqual(aboutOurs, [], 'systemd-analyze verify complained');
  assert.equal(run.status, 0, run.stderr);
});

test('systemd-analyze verify reports a missing ExecStart program and an unknown key (so the check above is real)', (t) => {
  const missing = systemdAnalyzeMissing();
  if (missing) return t.skip(missing);
  const dir = tempDir(t);
  const path = join(dir, 'bitville-collector.service');
  writeFileSync(path, readFileSync(join(UNITS_DIR, 'bitville-collector.service'), 'utf8').replace('ProtectHome=yes', 'ProtectHme=yes').replace('/usr/bin/node', join(dir, 'no-such-node')));
  const run = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /not executable/);
  assert.match(run.stderr, /Unknown key 'ProtectHme'/);
});

for (const name of units) {
  test(`${name}: dedicated user, state directory, drain on SIGTERM, restart policy, hardening`, () => {
    const s = serviceSettings(readFileSync(join(UNITS_DIR, name), 'utf8'));
    const one = (key: string) => s.get(key)?.at(-1);
    assert.match(one('User') ?? '', /^bitville/, 'a dedicated named user');
    assert.equal(s.has('DynamicUser'), false);
    assert.match(one('StateDirectory') ?? '', /^bitville\//);
    assert.equal(one('StateDirectoryMode'), '0700');
    assert.equal(one('KillSignal'), 'SIGTERM');
    assert.ok(parseInt(one('TimeoutStopSec') ?? '0', 10) >= 30, 'TimeoutStopSec leaves time for the drain');
    assert.equal(one('Restart'), 'on-failure');
    assert.match(one('RestartSec') ?? '', /^\d+s$/);
    for (const [key, value] of Object.entries({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      CapabilityBoundingSet: '',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      UMask: '0077',
    })) {
      assert.equal(one(key), value, `${key}=${value}`);
    }
    assert.ok(s.get('SystemCallFilter')?.includes('@system-service'));
    assert.match(one('ExecStart') ?? '', new RegExp(`^/usr/bin/node /opt/bitville/dist/collector/app/cli\\.js ${name.replace(/^bitville-|\.service$/g, '')} --config /etc/bitville/`));
    if (name !== 'bitville-collector.service') {
      // The agents run their --check as themselves before each start, advisory only.
      assert.match(one('ExecStartPre') ?? '', new RegExp(`^-/usr/bin/node /opt/bitville/dist/collector/app/cli\\.js ${name.replace(/^bitville-|\.service$/g, '')} --check --config /etc/bitville/`));
    }
  });
}

test('the php-agent unit gives the socket directory to PHP-FPM\'s group', () => {
  const s = serviceSettings(readFileSync(join(UNITS_DIR, 'bitville-php-agent.service'), 'utf8'));
  assert.deepEqual(s.get('Group'), ['www-data']);
  assert.deepEqual(s.get('RuntimeDirectory'), ['bitville']);
  assert.deepEqual(s.get('RuntimeDirectoryMode'), ['0750']);
});
