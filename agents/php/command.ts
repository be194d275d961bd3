// `bitville php-agent --config FILE`: run the daemon until SIGTERM/SIGINT.
// `--check`: verify the socket, the buffer and the collector without running (agents/php/check.ts).
import type { Command } from 'commander';
import { loadPhpAgentConfig } from './config.js';
import { BufferInUseError } from '../runtime/index.js';
import { reportChecks } from '../runtime/check.js';
import { checkPhpAgent } from './check.js';
import { DaemonError, PhpAgentDaemon } from './daemon.js';
import { onStopSignal } from '../../collector/common/commands.js';

export function registerPhpAgent(program: Command): void {
  program
    .command('php-agent')
    .description('receive slow-request events from agent.php on a Unix datagram socket and export them to the collector')
    .requiredOption('-c, --config <file>', 'php-agent config file (YAML; see docs/php-agent.md)')
    .option('--check', 'verify the socket directory, the buffer path and the collector without running; one line per check, exit 1 on any FAIL')
    .option('--php-group <group>', "with --check: the group PHP-FPM runs as, which must be able to write to the socket", 'www-data')
    .action(async (opts: { config: string; check?: boolean; phpGroup: string }) => {
      const config = loadPhpAgentConfig(opts.config);
      if (opts.check) {
        process.exitCode = reportChecks(await checkPhpAgent(config, opts.phpGroup));
        return;
      }
      const daemon = new PhpAgentDaemon(config);
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
