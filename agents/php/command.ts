// `bitville php-agent --config FILE`: run the daemon until SIGTERM/SIGINT.
import type { Command } from 'commander';
import { loadPhpAgentConfig } from './config.js';
import { BufferInUseError } from '../runtime/index.js';
import { DaemonError, PhpAgentDaemon } from './daemon.js';
import { onStopSignal } from '../../collector/common/commands.js';

export function registerPhpAgent(program: Command): void {
  program
    .command('php-agent')
    .description('receive slow-request events from agent.php on a Unix datagram socket and export them to the collector')
    .requiredOption('-c, --config <file>', 'php-agent config file (YAML; see docs/php-agent.md)')
    .action(async (opts: { config: string }) => {
      const daemon = new PhpAgentDaemon(loadPhpAgentConfig(opts.config));
      try {
        await daemon.start();
      } catch (err) {
        // Expected refusals (socket or buffer held by another daemon) print their message alone.
        if (!(err instanceof DaemonError || err instanceof BufferInUseError)) throw err;
        process.stderr.write(`php-agent: ${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      onStopSignal(async (signal) => {
        daemon.logger.info({ signal }, 'php-agent stopping');
        await daemon.stop();
        daemon.logger.info('php-agent stopped');
      });
    });
}
