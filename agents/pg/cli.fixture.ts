// Test support: `bitville` with only the pg-agent command registered, run as a child process
// (the lead adds registerPgAgent to collector/cli.ts; this stands in until then and for tests).
import { Command } from 'commander';
import { BitvilleError } from '../../collector/errors.js';
import { registerPgAgent } from './command.js';

const program = new Command('bitville');
registerPgAgent(program);
try {
  await program.parseAsync();
} catch (err) {
  process.stderr.write(`${err instanceof BitvilleError ? err.message : (err as Error).stack}\n`);
  process.exitCode = 1;
}
