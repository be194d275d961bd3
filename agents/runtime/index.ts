// The shared agent runtime's public surface (see README.md beside this file).
export type * from './types.js';
export { AgentRuntime, type AgentRuntimeOptions, type AgentSource } from './runtime.js';
export { runtimeConfigShape, loadAgentConfig, parseAgentConfig, type RuntimeConfig, type RuntimeDefaults } from './config.js';
export { BufferInUseError } from './buffer.js';
