// `bitville collector`: load and validate the config, open the store, build the graph, start it,
// serve the admin endpoints (with the routes components contribute), and drain on SIGTERM/SIGINT.
import type { Command } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { AdminServer } from './admin.js';
import { builtinFactories } from './components.js';
import { loadConfig } from '../core/config.js';
import { CollectorService } from '../core/service.js';
import { createLogger, Telemetry } from '../core/telemetry.js';
import { onStopSignal } from '../common/commands.js';
import { openStore } from '../store/index.js';

/**
 * The old generation may grow to 1.5 times what survived the last full collection. V8's own
 * factor adapts to its measured speeds, and at a steady 10,000 spans/s it settled at random on
 * either about 45 or about 140 MiB of old space (RSS 180 or 275 MiB, run to run, with 30-40 MiB
 * live either way). With the factor fixed, RSS was 185-187 MiB in 4 of 4 runs at the same CPU.
 * V8 reads the flag at every full collection, so setting it at start takes effect.
 */
const HEAP_GROWING_PERCENT = 50;

export function registerCollector(program: Command): void {
  program
    .command('collector')
    .description('run the collector')
    .option('-c, --config <file>', 'config file', 'otel-config.yaml')
    .action(async (opts: { config: string }) => {
      setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
      const config = await loadConfig(opts.config, builtinFactories);
      const logger = createLogger(config.telemetry.logs.level);
      const telemetry = new Telemetry(logger);
      const service = new CollectorService(config, telemetry, openStore(config.storage, logger.child({ component: 'store' })));
      const admin = new AdminServer({
        address: config.telemetry.metrics.address,
        metrics: async () => {
          await service.refreshMetrics();
          return telemetry.metricsText();
        },
        contentType: telemetry.registry.contentType,
        ready: () => service.ready,
        logger: logger.child({ component: 'admin' }),
        bearerToken: config.telemetry.metrics.auth?.bearer_token,
      });
      try {
        for (const { id, route } of service.adminRoutes()) admin.mount(id, route);
        await admin.start();
        await service.start();
      } catch (err) {
        // Undo what did start (a listening admin server would keep the process alive), then report.
        logger.error({ err: (err as Error).message }, 'collector failed to start');
        await service.shutdown();
        await admin.shutdown();
        throw err;
      }

      onStopSignal(async (signal) => {
        logger.info({ signal }, 'draining for shutdown');
        const errors = await service.shutdown();
        await admin.shutdown();
        logger.info({ errors: errors.length }, 'collector stopped');
        process.exitCode = errors.length > 0 ? 1 : 0;
      });
    });
}
