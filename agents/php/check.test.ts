// `bitville php-agent --check`: the socket directory and the group that must write to the
// socket, the buffer path, and a real collector (token accepted, token refused, nobody there).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startCollector } from '../../test/collector.js';
import { tempDir } from '../../test/env.js';
import { groupNameOf, LINE, refusedPort, runCheck } from '../../test/agent-check.fixture.js';
import { groupId } from './check.js';

const TOKEN = 'check-test-token';
const ownGroup = () => groupNameOf(process.getgid!());

function configFile(t: TestContext, dir: string, over: { socketDir?: string; buffer?: string; endpoint: string; token?: string }): string {
  const file = join(dir, 'php-agent.yaml');
  writeFileSync(
    file,
    [
      'project: shop',
      `socket: { path: "${join(over.socketDir ?? join(dir, 'run'), 'php-agent.sock')}" }`,
      `buffer: { path: "${over.buffer ?? join(dir, 'state', 'buffer.db')}" }`,
      `exporter: { endpoint: "${over.endpoint}"${over.token ? `, token: "${over.token}"` : ''} }`,
    ].join('\n'),
  );
  return file;
}

// One collector (with a token) for all the cases: starting one costs seconds.
test('php-agent --check', async (top) => {
  const collector = await startCollector(top, { config: { receivers: { otlp: { protocols: { http: { auth: { bearer_token: TOKEN } } } } } } });

  await top.test('everything in order: one ok line per check and exit 0', async (t) => {
    const dir = tempDir(t);
    const run = await runCheck(['php-agent', '--check', '--config', configFile(t, dir, { endpoint: collector.otlpUrl, token: TOKEN }), '--php-group', ownGroup()]);
    assert.equal(run.code, 0, run.lines.join('\n') + run.stderr);
    for (const line of run.lines) assert.match(line, /^ok /);
    assert.match(run.lines.join('\n'), /^ok socket directory .*\/run can be created/m);
    assert.match(run.lines.join('\n'), new RegExp(`^ok group ${ownGroup()} can reach and write to the socket the daemon will create at .*php-agent\\.sock \\(group ${ownGroup()}, mode 0660\\)$`, 'm'));
    assert.match(run.lines.join('\n'), /^ok buffer directory .*\/state can be created/m);
    assert.match(run.lines.join('\n'), /^ok collector accepts traces at http:\/\/127\.0\.0\.1:\d+\/v1\/traces \(HTTP 200\)$/m);
    // The probe is an empty export: nothing is stored.
    const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
    assert.doesNotMatch(metrics, /otelcol_receiver_accepted_spans\{[^}]*\} [1-9]/);
  });

  await top.test('a wrong token and a collector that is not there are FAIL lines naming the fix, exit 1', async (t) => {
    const dir = tempDir(t);
    const wrong = await runCheck(['php-agent', '--check', '--config', configFile(t, dir, { endpoint: collector.otlpUrl, token: 'not-the-token' }), '--php-group', ownGroup()]);
    assert.equal(wrong.code, 1);
    assert.ok(wrong.lines.includes(`FAIL collector refuses this agent's token at ${collector.otlpUrl}/v1/traces (HTTP 401) (set exporter.token to the collector's receivers.otlp.protocols.http.auth.bearer_token)`), wrong.lines.join('\n'));

    const port = await refusedPort();
    const absent = await runCheck(['php-agent', '--check', '--config', configFile(t, dir, { endpoint: `http://127.0.0.1:${port}` }), '--php-group', ownGroup()]);
    assert.equal(absent.code, 1);
    assert.ok(absent.lines.includes(`FAIL collector does not answer at http://127.0.0.1:${port}/v1/traces: ECONNREFUSED (start the collector (systemctl start bitville-collector) or correct exporter.endpoint)`), absent.lines.join('\n'));
    for (const line of [...wrong.lines, ...absent.lines]) assert.match(line, LINE);
  });

  await top.test('a socket the PHP group could not write to, and a buffer path under a file, are FAIL', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'a-file'), '');
    // A group other than ours: the socket would carry our group, mode 0660, so that group cannot write.
    const other = groupId('nogroup') !== undefined && ownGroup() !== 'nogroup' ? 'nogroup' : 'root';
    if (other === ownGroup()) return t.skip('needs a group other than the test process\'s own (nogroup or root)');
    const run = await runCheck(['php-agent', '--check', '--config', configFile(t, dir, { endpoint: collector.otlpUrl, token: TOKEN, buffer: join(dir, 'a-file', 'buffer.db') }), '--php-group', other]);
    assert.equal(run.code, 1);
    const text = run.lines.join('\n');
    assert.match(text, new RegExp(`^FAIL group ${other} cannot write to the socket the daemon will create at .*\\(group ${ownGroup()}, mode 0660\\), so agent\\.php's sends would fail \\(run the daemon in group ${other}, as deploy/systemd/bitville-php-agent\\.service does`, 'm'));
    assert.match(text, /^FAIL buffer directory .*a-file cannot be created: .*a-file is not a directory \(set buffer\.path under a directory\)$/m);
    assert.match(text, /^ok collector accepts traces/m);

    const unknown = await runCheck(['php-agent', '--check', '--config', configFile(t, dir, { endpoint: collector.otlpUrl, token: TOKEN }), '--php-group', 'no-such-group-bv']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.lines[0]!, /^FAIL group no-such-group-bv \(PHP-FPM's\) does not exist on this machine \(pass --php-group/);
  });

  await top.test('as systemd sets it up: a www-data socket directory is ok; without search permission for the group it is FAIL', async (t) => {
    if (process.getuid!() !== 0) return t.skip('needs root to give a directory to group www-data');
    const wwwData = groupId('www-data');
    if (wwwData === undefined) return t.skip('no www-data group on this machine');
    const dir = tempDir(t);
    const socketDir = join(dir, 'run');
    mkdirSync(socketDir);
    // What RuntimeDirectory= with Group=www-data gives, minus the daemon's group: setgid passes it on.
    chownSync(socketDir, 0, wwwData);
    chmodSync(socketDir, 0o2750);
    const file = configFile(t, dir, { endpoint: collector.otlpUrl, token: TOKEN, socketDir });
    const good = await runCheck(['php-agent', '--check', '--config', file]);
    assert.equal(good.code, 0, good.lines.join('\n'));
    assert.match(good.lines.join('\n'), /^ok socket directory .*\/run exists \(owner uid 0, group www-data, mode 02750\)/m);
    assert.match(good.lines.join('\n'), /^ok group www-data can reach and write to the socket the daemon will create at .*\(group www-data, mode 0660\)$/m);

    chmodSync(socketDir, 0o2700);
    const closed = await runCheck(['php-agent', '--check', '--config', file]);
    assert.equal(closed.code, 1);
    assert.match(closed.lines.join('\n'), /^FAIL group www-data cannot enter .*\/run \(group www-data, mode 02700\), so agent\.php cannot reach the socket \(chgrp www-data .*\/run && chmod 0750/m);
  });
});
