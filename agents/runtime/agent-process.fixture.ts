// Test support: an agent process to kill -9. Starts a runtime with the JSON config in argv[2],
// submits argv[3] spans, prints its /metrics URL, and runs until killed.
import { z } from 'zod';
import { AgentRuntime } from './runtime.js';
import { parseAgentConfig, runtimeConfigShape } from './config.js';
import { testSpan } from './events.fixture.js';

const config = parseAgentConfig('argv', JSON.parse(process.argv[2]!), z.strictObject(runtimeConfigShape({ bufferPath: '', metricsAddress: '127.0.0.1:0' })));
const runtime = new AgentRuntime({ source: 'php_agent', config, scope: { name: 'test', version: '0' } });
await runtime.start();
for (let i = 0; i < Number(process.argv[3]); i++) runtime.submit(testSpan(i));
process.stdout.write(`${runtime.metricsUrl}\n`);
