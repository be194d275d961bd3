// Every `bitville` sub-command, registered in one explicit list. Each module adds its own
// command (with --help) to the program.
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;
