// `bitville requests` and `bitville trace <correlation-id>`: the request lookups on the command
// line. They open the collector's store read-only (beside a running collector is fine).
import type { Command } from 'commander';
import { builtinFactories } from './components.js';
import { loadConfig } from '../core/config.js';
import { formatRequests, formatWaterfall, listRequests, parseRequestFilters, traceOf } from '../../plugins/correlate/lookup.js';
import { openStore } from '../store/index.js';
import type { Store } from '../core/store.js';
import type { Config } from '../core/config.js';

/** The configured correlate processor's join window (it decides whether a join is still pending). */
function joinWindowOf(config: Config): number {
  for (const c of config.processors.values()) {
    const window = (c.config as { window?: unknown } | undefined)?.window;
    if (c.type === 'correlate' && typeof window === 'number') return window;
  }
  return 10_000;
}

async function withStore<T>(configFile: string, use: (store: Store, config: Config) => Promise<T>): Promise<T> {
  const config = await loadConfig(configFile, builtinFactories);
  const store = openStore(config.storage, undefined, { readOnly: true });
  try {
    return await use(store, config);
  } finally {
    await store.close();
  }
}

export function registerRequests(program: Command): void {
  program
    .command('requests')
    .description('list recent requests (from their summaries): duration, DB time, query count, N+1 flag')
    .option('-c, --config <file>', 'collector config file (finds the store)', 'otel-config.yaml')
    .option('--since <duration>', 'how far back: 15m, 1h, 7d', '24h')
    .option('--slowest', 'longest first instead of newest first')
    .option('--project <name>', 'only this project (service.name)')
    .option('--url <text>', 'only URLs containing this text (case-insensitive)')
    .option('--min-duration <duration>', 'only requests that took at least this long: 500ms, 2s')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; since: string; slowest?: boolean; project?: string; url?: string; minDuration?: string; limit: string; json?: boolean }) => {
      const filters = parseRequestFilters({
        since: opts.since,
        slowest: opts.slowest ?? false,
        limit: opts.limit,
        ...(opts.project !== undefined ? { project: opts.project } : {}),
        ...(opts.url !== undefined ? { url: opts.url } : {}),
        ...(opts.minDuration !== undefined ? { min_duration: opts.minDuration } : {}),
      });
      const rows = await withStore(opts.config, (store) => listRequests(store, filters));
      process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : formatRequests(rows));
    });
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('show one trace: the request and its DB queries as a waterfall when it is one, then every span as a tree and its logs')
    .argument('<correlation-id>', 'the trace id, or a request\'s correlation id')
    .option('-c, --config <file>', 'collector config file (finds the store)', 'otel-config.yaml')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { config: string; json?: boolean }) => {
      const view = await withStore(opts.config, (store, config) => traceOf(store, id.trim(), undefined, { windowMs: joinWindowOf(config) }));
      if (!view) {
        process.stderr.write(`no records with correlation id ${id}\n`);
        process.exitCode = 1;
        return;
      }
      const width = Math.max(20, Math.min(60, (process.stdout.columns ?? 120) - 70));
      process.stdout.write(opts.json ? `${JSON.stringify(view, null, 2)}\n` : formatWaterfall(view, width));
    });
}
