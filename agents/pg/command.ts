// `bitville pg-agent --config FILE`: the Postgres agent as a daemon. Capture (PgAgent) feeds
// the shared agent runtime, which buffers and exports to the collector; SIGTERM/SIGINT stop
// capture first, then the runtime (what is unsent stays in its disk buffer).
// `--check` verifies the set-up without running (agents/pg/check.ts).
import type { Command } from 'commander';
import { AgentRuntime, loadAgentConfig } from '../runtime/index.js';
import { PgAgent } from './agent.js';
import { pgAgentSchema } from './config.js';
import { reportChecks } from '../runtime/check.js';
import { checkPgAgent } from './check.js';
import { onStopSignal } from '../../collector/common/commands.js';

export const PG_AGENT_SCOPE = { name: 'bitville.pg-agent', version: '0.1.0' };

export function registerPgAgent(program: Command): void {
  program
    .command('pg-agent')
    .description('capture the queries of PHP requests from PostgreSQL (pg_stat_activity, the server log, pg_stat_statements) and send them to the collector')
    .requiredOption('-c, --config <file>', 'pg-agent config file (YAML); see docs/pg-agent.md')
    .option('--check', 'verify the PostgreSQL connection and grants, pg_stat_statements, the log source, the buffer path and the collector without running; one line per check, exit 1 on any FAIL')
    .action(async (opts: { config: string; check?: boolean }) => {
      const config = loadAgentConfig(opts.config, pgAgentSchema);
      if (opts.check) {
        process.exitCode = reportChecks(await checkPgAgent(config));
        return;
      }
      const runtime = new AgentRuntime({ source: 'pg_agent', config, scope: PG_AGENT_SCOPE });
      await runtime.start();
      const agent = new PgAgent({ config, sink: runtime, logger: runtime.logger, registry: runtime.metrics.registry });
      try {
        await agent.start();
      } catch (err) {
        await agent.stop();
        await runtime.stop();
        throw err;
      }
      onStopSignal(async (signal) => {
        runtime.logger.info({ signal }, 'pg-agent: stopping');
        await agent.stop();
        await runtime.stop();
      });
    });
}
