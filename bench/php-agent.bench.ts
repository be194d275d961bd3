// php-agent: per-request cost of agent.php (fast path, slow path with a send, daemon down with
// the breaker open) against the same loop without it, and daemon throughput socket -> collector.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startCollector } from '../test/collector.js';
import { phpMissing, repoRoot, tempDir } from '../test/env.js';
import { daemonConfig, excimer, startDaemon, withoutExcimer } from '../agents/php/harness.fixture.js';

const ROUNDS = 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Lets the test harness helpers run outside node:test: cleanups run at the end. */
function benchContext(): { t: TestContext; cleanup(): Promise<void> } {
  const cleanups: (() => unknown)[] = [];
  const t = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;
  return { t, cleanup: async () => { for (const fn of cleanups.reverse()) await fn(); } };
}

function phpNs(mode: string, iterations: number, env: Record<string, string>, args: string[] = []): number {
  const out = execFileSync('php', [...args, join(repoRoot, 'bench', 'php-agent.bench.php'), mode.replace(/@.*/, ''), String(iterations)], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return Number(out.trim());
}

export default async function (): Promise<void> {
  const missing = phpMissing();
  if (missing) {
    console.log(`php-agent bench skipped: ${missing}`);
    return;
  }
  const { t, cleanup } = benchContext();
  try {
    const dir = tempDir(t);
    const collector = await startCollector(t);
    const daemon = await startDaemon(t, daemonConfig(dir, collector.otlpUrl, { batch: { max_events: 100, timeout: '1s' } }));
    const live = { BITVILLE_SOCKET: daemon.socketPath, BITVILLE_STATE_FILE: join(dir, 'breaker-live') };
    // The fast path with and without the excimer profiler: `fast` runs without the extension
    // (the scan directory without its ini), `fast@excimer` with it and profiling on (10 ms,
    // started after 50 ms as with the default 500 ms threshold), `fast@excimer_from_start` with
    // the profiler started at once (profile_delay_ms=0).
    const ext = excimer();
    const noExcimer = withoutExcimer(dir) as Record<string, string>;
    const withExcimer = 'args' in ext ? ext.args : undefined;
    const modes: [string, number, Record<string, string>, string[]?][] = [
      ['baseline', 200_000, noExcimer],
      ['raw_send', 300, live],
      ['fast', 200_000, { ...noExcimer, ...live, BITVILLE_THRESHOLD_MS: '100000' }],
      ...(withExcimer
        ? ([
            ['excimer_bare', 100_000, {}, withExcimer],
            ['excimer_due_bare', 100_000, {}, withExcimer],
            ['sample_cost', 300, {}, withExcimer],
            ['fast@excimer', 100_000, { ...live, BITVILLE_THRESHOLD_MS: '100000', BITVILLE_PROFILE_DELAY_MS: '50' }, withExcimer],
            ['fast@excimer_from_start', 100_000, { ...live, BITVILLE_THRESHOLD_MS: '100000', BITVILLE_PROFILE_DELAY_MS: '0' }, withExcimer],
            ['fast@excimer_off', 200_000, { ...live, BITVILLE_THRESHOLD_MS: '100000', BITVILLE_PROFILE_PERIOD_MS: '0' }, withExcimer],
          ] as [string, number, Record<string, string>, string[]][])
        : []),
      ['slow', 300, { ...noExcimer, ...live, BITVILLE_THRESHOLD_MS: '0', BITVILLE_STATE_FILE: join(dir, 'breaker-slow') }],
      ['down', 20_000, { ...noExcimer, BITVILLE_SOCKET: join(dir, 'nobody.sock'), BITVILLE_STATE_FILE: join(dir, 'breaker-down'), BITVILLE_THRESHOLD_MS: '0' }],
    ];
    const results = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [mode, n, env, args] of modes) {
        // Each slow round starts with a closed breaker: one opened by a full queue would turn
        // the rest into the daemon-down path (the PHP side reports it on stderr if it happens).
        if (mode === 'slow') rmSync(env.BITVILLE_STATE_FILE!, { force: true });
        results.set(mode, [...(results.get(mode) ?? []), phpNs(mode, n, env, args)]);
      }
    }
    const m = (mode: string) => median(results.get(mode)!);
    const us = (ns: number) => (ns / 1000).toFixed(2);
    const base = m('baseline');
    console.log(`php-agent, per request (median of ${ROUNDS} runs, PHP ${execFileSync('php', ['-r', 'echo PHP_VERSION;'], { encoding: 'utf8' })}):`);
    console.log(`  baseline (same loop, no agent)  ${us(base)} µs`);
    console.log(`  raw non-blocking datagram send  ${us(m('raw_send'))} µs`);
    for (const [mode, label] of [['fast', 'fast path (below threshold)'], ['slow', 'slow path (event sent)'], ['down', 'daemon down (breaker open)']] as const) {
      const cost = m(mode) - base;
      console.log(`  ${label.padEnd(31)} ${us(cost)} µs added  (x${(m(mode) / base).toFixed(1)} the baseline loop; x${(cost / m('raw_send')).toFixed(2)} a raw send)`);
    }
    if (withExcimer) {
      console.log(`  excimer floor: new ExcimerProfiler + start + stop ${us(m('excimer_bare'))} µs (its own timer: timer_create, timer_settime x2, timer_delete; first expiry drawn within the period)`);
      console.log(`  excimer floor: one-shot ExcimerTimer due in 50 ms, armed + disarmed ${us(m('excimer_due_bare'))} µs (the same 4 syscalls, expiry after the next tick)`);
      console.log(`  excimer: one sample costs ${us(m('sample_cost'))} µs of CPU (1 ms period; a thread per expiry plus the stack walk)`);
      console.log(`  fast path, excimer, profiling on (10 ms), started after 50 ms (default)  ${us(m('fast@excimer') - base)} µs added; profiler's share ${us(m('fast@excimer') - m('fast'))} µs`);
      console.log(`  fast path, excimer, profiling on (10 ms), profile_delay_ms=0            ${us(m('fast@excimer_from_start') - base)} µs added; profiler's share ${us(m('fast@excimer_from_start') - m('fast'))} µs`);
      console.log(`  fast path, excimer loaded, profile_period_ms=0                          ${us(m('fast@excimer_off') - base)} µs added`);
    } else {
      console.log(`  excimer not loaded: ${(ext as { missing: string }).missing}`);
    }

    // Throughput: datagrams as fast as the socket takes them, until the collector acknowledged all.
    const total = 10_000;
    const before = await daemon.metric('bitville_agent_events_exported_total{signal="traces",agent="php_agent"}');
    const unix = createRequire(import.meta.url)('unix-dgram');
    const client = unix.createSocket('unix_dgram');
    client.on('error', () => {}); // a refused send also reaches the callback below
    const event = (i: number) => Buffer.from(JSON.stringify({
      v: 1, trace_id: i.toString(16).padStart(32, '0').replace(/^0/, 'a'), span_id: 'b'.repeat(16), parent_span_id: '', method: 'GET', url: `http://shop.example/p/${i}?q=1`,
      script: '/index.php', status: 200, start_us: Date.now() * 1000, duration_us: 600_000, peak_memory: 2_097_152, host: 'web-1', project: 'bench', php_version: '8.2.0', sapi: 'fpm-fcgi', error: null,
    }));
    const started = process.hrtime.bigint();
    let refused = 0;
    const deadline = Date.now() + 60_000;
    for (let i = 0; i < total && Date.now() < deadline; i++) {
      const buf = event(i);
      // Backpressure: a full queue refuses the datagram (EAGAIN); wait a moment and resend it.
      while (!(await new Promise<boolean>((resolve) => client.send(buf, 0, buf.length, daemon.socketPath, (err?: Error) => resolve(!err))))) {
        refused++;
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    const sentNs = Number(process.hrtime.bigint() - started);
    client.close(); // an open socket would keep the benchmark process alive
    for (let i = 0; i < 600; i++) {
      if ((await daemon.metric('bitville_agent_events_exported_total{signal="traces",agent="php_agent"}')) - before >= total) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const exported = (await daemon.metric('bitville_agent_events_exported_total{signal="traces",agent="php_agent"}')) - before;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`php-agent daemon throughput: ${exported}/${total} events socket -> collector in ${seconds.toFixed(2)} s = ${Math.round(exported / seconds)} events/s (sending took ${(sentNs / 1e9).toFixed(2)} s, ${refused} resends on a full queue; malformed ${await daemon.metric('bitville_agent_events_malformed_total{reason="invalid_event",agent="php_agent"}')})`);
  } finally {
    await cleanup();
  }
}
