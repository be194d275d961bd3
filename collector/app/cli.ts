#!/usr/bin/env node
// The `bitville` command line.
import { Command } from 'commander';
import { BitvilleError } from '../common/errors.js';
import { registerCollector } from './collector-command.js';
import { registerValidate } from './validate.js';
import { registerRequests, registerTrace } from './lookup-commands.js';
import type { RegisterCommand } from '../common/commands.js';
import { registerPgAgent } from '../../agents/pg/command.js';
import { registerPhpAgent } from '../../agents/php/command.js';

const commands: RegisterCommand[] = [registerCollector, registerValidate, registerRequests, registerTrace, registerPhpAgent, registerPgAgent];

const program = new Command('bitville').description('Bitville Monitoring: agents and collector for PHP + PostgreSQL').showHelpAfterError();
for (const register of commands) register(program);

try {
  await program.parseAsync();
} catch (err) {
  // Known errors (config problems and the like) print their message alone; others their stack.
  process.stderr.write(`${err instanceof BitvilleError ? err.message : (err as Error).stack}\n`);
  process.exitCode = 1;
}
