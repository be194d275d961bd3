// `bitville pg-agent --config FILE`: the Postgres agent as a daemon. Capture (PgAgent) feeds
// the shared agent runtime, which buffers and exports to the collector; SIGTERM/SIGINT stop
// capture first, then the runtime (what is unsent stays in its disk buffer).
import type { Command } from 'commander';
import { AgentRuntime, loadAgentConfig } from '../runtime/index.js';
import { PgAgent } from './agent.js';
import { pgAgentSchema } from './config.js';
import { onStopSignal } from '../../collector/common/commands.js';

export const PG_AGENT_SCOPE = { name: 'bitville.pg-agent', version: '0.1.0' };

export function registerPgAgent(program: Command): void {
  program
    .command('pg-agent')
    .description('capture the queries of PHP requests from PostgreSQL (pg_stat_activity, the server log, pg_stat_statements) and send them to the collector')
    .requiredOption('-c, --config <file>', 'pg-agent config file (YAML); see docs/pg-agent.md')
    .action(async (opts: { config: string }) => {
      const config = loadAgentConfig(opts.config, pgAgentSchema);
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
