#!/usr/bin/env node
// The `bitville` command line.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { BitvilleError } from '../common/errors.js';
import { registerCollector } from './collector-command.js';
import { registerValidate } from './validate.js';
import { registerRequests, registerTop, registerTrace } from './lookup-commands.js';
import type { RegisterCommand } from '../common/commands.js';
import { registerPgAgent } from '../../agents/pg/command.js';
import { registerPhpAgent } from '../../agents/php/command.js';

const commands: RegisterCommand[] = [registerCollector, registerValidate, registerRequests, registerTrace, registerTop, registerPhpAgent, registerPgAgent];

// dist/collector/app/cli.js -> the package.json at the root of the checkout or package.
const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('bitville')
  .description('Bitville Monitoring: agents and collector for PHP + PostgreSQL')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError();
for (const register of commands) register(program);

try {
  await program.parseAsync();
} catch (err) {
  // Known errors (config problems and the like) print their message alone; others their stack.
  process.stderr.write(`${err instanceof BitvilleError ? err.message : (err as Error).stack}\n`);
  process.exitCode = 1;
}
