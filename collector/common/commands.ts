// Every `bitville` sub-command, registered in one explicit list. Each module adds its own
// command (with --help) to the program.
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;

/**
 * Runs `stop` once, on the first SIGTERM or SIGINT: the drain every long-running command
 * does. A second signal while draining is ignored rather than starting a second drain.
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    void stop(signal);
  };
  process.once('SIGTERM', handle);
  process.once('SIGINT', handle);
}
