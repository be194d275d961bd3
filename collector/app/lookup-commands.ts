// `bitville requests`, `bitville trace <correlation-id>` and `bitville top endpoints|queries`:
// the lookups on the command line. They open the collector's store read-only (beside a running collector is fine).
import type { Command } from 'commander';
import { builtinFactories } from './components.js';
import { loadConfig } from '../core/config.js';
import { formatRequests, formatWaterfall, listRequests, parseRequestFilters, traceOf } from '../../plugins/correlate/lookup.js';
import { endpoints, parseRange, statements, ENDPOINT_SORTS, STATEMENT_SORTS, type EndpointSort, type StatementSort } from '../../plugins/correlate/overview-queries.js';
import { formatEndpoints, formatStatements } from '../../plugins/correlate/overview-text.js';
import { BitvilleError } from '../common/errors.js';
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

interface TopOptions {
  config: string;
  range?: string;
  since?: string;
  until?: string;
  sort: string;
  limit: string;
  json?: boolean;
}

/** `bitville top endpoints` and `bitville top queries`: the overview's tables (docs/overview.md). */
export function registerTop(program: Command): void {
  const top = program.command('top').description('the overview on the command line: endpoints or statements of a time range, from the rollups');
  const common = (c: Command, sorts: readonly string[]) =>
    c
      .option('-c, --config <file>', 'collector config file (finds the store)', 'otel-config.yaml')
      .option('--range <duration>', 'the last 1h, 24h, 7d (default 24h)')
      .option('--since <when>', 'from: a duration back (2d) or an ISO 8601 time')
      .option('--until <when>', 'to: a duration back or an ISO 8601 time (default now)')
      .option('--sort <key>', `order by: ${sorts.join(', ')}`, 'total')
      .option('--limit <n>', 'at most this many rows', '20')
      .option('--json', 'print JSON');
  const parse = (opts: TopOptions, sorts: readonly string[]) => {
    if (!sorts.includes(opts.sort)) throw new BitvilleError('BV_BAD_FILTER', `--sort: one of ${sorts.join(', ')}`);
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new BitvilleError('BV_BAD_FILTER', '--limit: a positive whole number');
    return { range: parseRange({ range: opts.range, since: opts.since, until: opts.until }), limit };
  };
  common(top.command('endpoints').description('endpoints: requests, p50/p95/p99, error rate, DB share, N+1 count, total time'), ENDPOINT_SORTS).action(async (opts: TopOptions) => {
    const { range, limit } = parse(opts, ENDPOINT_SORTS);
    const rows = (await withStore(opts.config, (store) => endpoints(store, range, opts.sort as EndpointSort))).slice(0, limit);
    process.stdout.write(opts.json ? `${JSON.stringify({ range: iso(range), endpoints: rows }, null, 2)}\n` : formatEndpoints(rows, range));
  });
  common(top.command('queries').description('statements (normalized): calls, total and mean time, p95, requests, N+1, pg_stat_statements totals'), STATEMENT_SORTS).action(
    async (opts: TopOptions) => {
      const { range, limit } = parse(opts, STATEMENT_SORTS);
      const rows = (await withStore(opts.config, (store) => statements(store, range, opts.sort as StatementSort))).slice(0, limit);
      const width = Math.max(30, (process.stdout.columns ?? 160) - 75);
      process.stdout.write(opts.json ? `${JSON.stringify({ range: iso(range), statements: rows }, null, 2)}\n` : formatStatements(rows, range, width));
    },
  );
}

const iso = (r: { fromMs: number; untilMs: number }) => ({ from: new Date(r.fromMs).toISOString(), until: new Date(r.untilMs).toISOString() });
