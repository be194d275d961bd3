// The agent's one connection to PostgreSQL: its own application_name (so its sessions are
// recognised and never reported), a statement and lock timeout on everything it runs, read-only
// transactions, and reconnection with backoff when the server restarts or kills the session.
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from 'pino';
import { BitvilleError } from '../../collector/common/errors.js';

export interface ConnectionOptions {
  dsn: string | undefined;
  applicationName: string;
  statementTimeoutMs: number;
  reconnectBackoffMs: readonly number[];
  logger: Logger;
  /** Called after every successful (re)connection but the first. */
  onReconnect?: () => void;
}

export class MonitorConnection {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private readonly closed = new AbortController();
  private connectedOnce = false;

  constructor(private readonly options: ConnectionOptions) {}

  /** Where the server is, for server.address / server.port (known after the first connection). */
  server = { address: '', port: 0 };

  /** Runs one query, connecting first (with backoff) when needed; a lost connection is dropped so the next call reconnects. */
  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    const client = this.client ?? (await this.connect());
    try {
      return (await client.query<R>(text, values)).rows;
    } catch (err) {
      if (!isQueryError(err)) this.drop(client);
      throw err;
    }
  }

  /** Resolves once connected; retries with backoff until it works or close() is called. */
  connect(): Promise<pg.Client> {
    this.connecting ??= this.connectWithBackoff().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  async close(): Promise<void> {
    this.closed.abort();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connectWithBackoff(): Promise<pg.Client> {
    const { reconnectBackoffMs, logger } = this.options;
    for (let attempt = 0; ; attempt++) {
      if (this.closed.signal.aborted) throw new Error('the connection is closed');
      const client = new pg.Client({
        connectionString: this.options.dsn,
        application_name: this.options.applicationName,
        statement_timeout: this.options.statementTimeoutMs,
        lock_timeout: this.options.statementTimeoutMs,
        connectionTimeoutMillis: Math.max(this.options.statementTimeoutMs, 1000),
        keepAlive: true,
        // The agent only reads; a read-only session cannot take a write lock by mistake.
        options: '-c default_transaction_read_only=on',
      });
      client.on('error', (err) => {
        logger.warn({ err: err.message }, 'pg-agent: connection lost; reconnecting');
        this.drop(client);
      });
      try {
        await client.connect();
        this.client = client;
        this.server = { address: client.host, port: client.port };
        if (this.connectedOnce) this.options.onReconnect?.();
        if (this.connectedOnce || attempt > 0) logger.info({ attempt: attempt + 1 }, 'pg-agent: connected');
        this.connectedOnce = true;
        return client;
      } catch (err) {
        await client.end().catch(() => {});
        if (isFatalLoginError(err)) throw err;
        const wait = reconnectBackoffMs[Math.min(attempt, reconnectBackoffMs.length - 1)]!;
        logger.warn({ err: (err as Error).message, retryInMs: wait }, 'pg-agent: cannot connect; retrying');
        await sleep(wait, undefined, { signal: this.closed.signal }).catch(() => {});
      }
    }
  }

  private drop(client: pg.Client): void {
    if (this.client === client) this.client = undefined;
    client.end().catch(() => {});
  }
}

/** An error the server raised for the statement (the session is still fine), as opposed to a broken connection. */
function isQueryError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57P');
}

/** Wrong password, unknown role or database: retrying cannot help. */
function isFatalLoginError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '28P01' || code === '28000' || code === '3D000';
}

/**
 * Stops with a message naming the grant when the role would see other sessions' queries as
 * `<insufficient privilege>` (it needs superuser, pg_read_all_stats, or pg_monitor which includes it).
 */
export async function checkPrivileges(conn: MonitorConnection): Promise<void> {
  const [row] = await conn.query<{ role: string; ok: boolean }>(
    `SELECT current_user AS role, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role('pg_read_all_stats', 'USAGE') AS ok`,
  );
  if (!row!.ok) {
    throw new BitvilleError(
      'BV_PG_PRIVILEGES',
      `pg-agent: role "${row!.role}" cannot see other sessions' queries in pg_stat_activity (it is neither superuser nor a member of pg_read_all_stats or pg_monitor). ` +
        `Fix, as a superuser: GRANT pg_read_all_stats TO ${quoteIdent(row!.role)};`,
    );
  }
}

export function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}
