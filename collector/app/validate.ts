// `bitville validate`: check a config without starting anything.
import type { Command } from 'commander';
import { builtinFactories } from './components.js';
import { loadConfig } from '../core/config.js';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check a config file without starting anything; lists every problem')
    .option('-c, --config <file>', 'config file', 'otel-config.yaml')
    .action(async (opts: { config: string }) => {
      await loadConfig(opts.config, builtinFactories);
      process.stdout.write(`${opts.config}: valid\n`);
    });
}
