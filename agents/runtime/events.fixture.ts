// Test support: well-formed events, numbered so a test can tell them apart.
import { randomBytes } from 'node:crypto';
import type { AgentEvent } from './types.js';

export function testSpan(n: number, extra: Record<string, string | number> = {}): AgentEvent {
  const start = BigInt(Date.now()) * 1_000_000n;
  return {
    type: 'span',
    span: {
      traceId: randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      parentSpanId: '',
      name: `GET /page/${n}`,
      kind: 'server',
      startTimeUnixNano: String(start),
      endTimeUnixNano: String(start + 600_000_000n),
      attributes: { 'test.n': n, ...extra },
    },
  };
}
