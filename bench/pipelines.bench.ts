// The pipelines people run, side by side in one run (issue 13's table): peak ingest with
// 4 senders of 100-span batches and collector CPU (all threads, and the main thread alone) and
// RSS at a steady 10,000 spans/s, for
//  - no processors, no exporters (the store path alone),
//  - the default pipeline (correlate, and the debug exporter at `basic`),
//  - correlate with GELF forwarding to a loopback TCP receiver that reads and discards,
// each beside the bare decode + insert baseline measured in the same run. Medians of 3.
// Every pipeline is measured after WARMUP seconds of the same load: correlate joins nothing
// until its window (10 s by default) has passed, and a shorter run never sees its joins, the
// summaries they commit, or the memory they hold.
import { createServer, type AddressInfo } from 'node:net';
import { baseline, peak, steady } from './ingest.bench.js';
import { median } from './util.js';

const RUNS = 3;
const WARMUP = 12;
/** Seconds at the steady rate: 5 s could not separate CPU figures a tenth apart. */
const STEADY = 15;

function pipelines(gelfPort: number): { name: string; extra: Record<string, unknown> }[] {
  const traces = (processors: string[], exporters: string[]) => ({
    service: { pipelines: { traces: { receivers: ['otlp'], processors, exporters } }, telemetry: { metrics: { address: '127.0.0.1:0' } } },
  });
  return [
    { name: 'no processors, no exporters', extra: traces([], []) },
    { name: 'default: correlate + debug (basic)', extra: { processors: { correlate: {} }, exporters: { debug: {} }, ...traces(['correlate'], ['debug']) } },
    {
      name: 'correlate + GELF (TCP, loopback)',
      extra: { processors: { correlate: {} }, exporters: { gelf: { endpoint: `tcp://127.0.0.1:${gelfPort}` } }, ...traces(['correlate'], ['gelf']) },
    },
  ];
}

export default async function run(): Promise<void> {
  // A GELF TCP input that reads everything and keeps nothing.
  const sink = createServer((socket) => socket.resume()).listen(0, '127.0.0.1');
  await new Promise((r) => sink.once('listening', r));
  const variants = pipelines((sink.address() as AddressInfo).port);
  const base: number[] = [];
  const results = variants.map(() => ({ peaks: [] as number[], cpu: [] as number[], mainCpu: [] as number[], rss: [] as number[], peakRss: [] as number[] }));
  for (let r = 0; r < RUNS; r++) {
    base.push(await baseline());
    for (const [i, v] of variants.entries()) {
      results[i]!.peaks.push((await peak(4, 5, v.extra, WARMUP)).rate);
      const s = await steady(10_000, STEADY, v.extra, WARMUP);
      results[i]!.cpu.push(s.cpuPercent);
      results[i]!.mainCpu.push(s.mainCpuPercent);
      results[i]!.rss.push(s.rss);
      results[i]!.peakRss.push(s.peakRss);
    }
  }
  sink.close();
  const b = median(base);
  const none = median(results[0]!.peaks);
  const noneCpu = median(results[0]!.cpu);
  const noneMain = median(results[0]!.mainCpu);
  console.log(`baseline (decode + flatten + SQLite insert, one thread): ${b.toFixed(0)} spans/s (median of ${RUNS}); each pipeline measured after ${WARMUP} s of the same load`);
  for (const [i, v] of variants.entries()) {
    const p = median(results[i]!.peaks);
    const cpu = median(results[i]!.cpu);
    const main = median(results[i]!.mainCpu);
    console.log(
      `${v.name}: peak ${p.toFixed(0)} spans/s (${(p / b).toFixed(2)} of baseline, ${(p / none).toFixed(2)} of no-processor); ` +
        `steady 10k: CPU ${cpu.toFixed(1)}% of a core (${(cpu / noneCpu).toFixed(2)} of no-processor), main thread ${main.toFixed(1)}% (${(main / noneMain).toFixed(2)}), ` +
        `RSS ${median(results[i]!.rss).toFixed(0)} MiB (highest ${median(results[i]!.peakRss).toFixed(0)})`,
    );
  }
}
