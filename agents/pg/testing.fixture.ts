// Test support for the pg-agent: an AgentSink that collects what capture code submits (the
// runtime contract itself, not a stand-in for the runtime), an agent started on the real
// PostgreSQL, and client sessions tagged with a correlation id.
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PG_DSN } from '../../test/env.js';
import type { AgentEvent, AgentLog, AgentSink, AgentSpan } from '../runtime/types.js';
import { parseAgentConfig } from '../runtime/index.js';
import { PgAgent } from './agent.js';
import { pgAgentSchema } from './config.js';

export class CollectingSink implements AgentSink {
  readonly events: AgentEvent[] = [];
  private waiters: (() => void)[] = [];

  submit(event: AgentEvent): void {
    this.events.push(event);
    for (const w of this.waiters.splice(0)) w();
  }

  spans(correlationId?: string): AgentSpan[] {
    return this.events.flatMap((e) => (e.type === 'span' && (correlationId === undefined || e.span.attributes['bitville.correlation_id'] === correlationId) ? [e.span] : []));
  }

  logs(): AgentLog[] {
    return this.events.flatMap((e) => (e.type === 'log' ? [e.log] : []));
  }

  /** Resolves when predicate holds (checked now and after each event); rejects after timeoutMs, naming what it waited for. */
  async until(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${this.events.length} events`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }
}

export const newCorrelationId = () => randomBytes(16).toString('hex');
export const durationMs = (s: AgentSpan) => Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1e6;

/** A running agent on the test server with the given config overrides; stopped after the test. */
export async function startAgent(t: TestContext, overrides: Record<string, unknown> = {}) {
  const sink = new CollectingSink();
  const registry = new Registry();
  const applicationName = `bitville-pg-agent-test-${randomBytes(4).toString('hex')}`;
  const raw = {
    project: 'test',
    buffer: { path: '/nonexistent/unused.db' },
    ...overrides,
    postgres: { dsn: PG_DSN, application_name: applicationName, ...(overrides.postgres as object) },
  };
  const config = parseAgentConfig('test config', raw, pgAgentSchema);
  const agent = new PgAgent({ config, sink, logger: pino({ level: process.env.BITVILLE_TEST_LOG ?? 'silent' }), registry });
  t.after(() => agent.stop());
  await agent.start();
  return { agent, sink, registry, applicationName, config };
}

/** A client session, as PHP would open it with PGAPPNAME set; closed after the test. */
export async function connectClient(t: TestContext, applicationName: string, options?: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: PG_DSN, application_name: applicationName, ...(options ? { options } : {}) });
  await client.connect();
  t.after(() => client.end().catch(() => {}));
  return client;
}

/** Runs sql and returns how long the client waited for it, in ms. */
export async function timed(client: pg.Client, sql: string, values?: unknown[]): Promise<number> {
  const started = performance.now();
  await client.query(sql, values);
  return performance.now() - started;
}

/** A superuser session for set-up. */
export async function admin(t: TestContext): Promise<pg.Client> {
  return connectClient(t, 'bitville-pg-agent-test-admin');
}

/** Runs statements in a fresh superuser session when the test ends (after hooks run in registration order, so set-up sessions may be closed by then). */
export function cleanupSql(t: TestContext, ...statements: string[]): void {
  t.after(async () => {
    const client = new pg.Client({ connectionString: PG_DSN, application_name: 'bitville-pg-agent-test-admin' });
    await client.connect();
    try {
      for (const sql of statements) await client.query(sql);
    } finally {
      await client.end();
    }
  });
}
