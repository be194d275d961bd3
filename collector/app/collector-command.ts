// `bitville collector`: load and validate the config, open the store, build the graph, start it,
// serve the admin endpoints (with the routes components contribute), and drain on SIGTERM/SIGINT.
import type { Command } from 'commander';
import { AdminServer } from './admin.js';
import { builtinFactories } from './components.js';
import { loadConfig } from '../core/config.js';
import { CollectorService } from '../core/service.js';
import { createLogger, Telemetry } from '../core/telemetry.js';
import { onStopSignal } from '../common/commands.js';
import { openStore } from '../store/index.js';

export function registerCollector(program: Command): void {
  program
    .command('collector')
    .description('run the collector')
    .option('-c, --config <file>', 'config file', 'otel-config.yaml')
    .action(async (opts: { config: string }) => {
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
