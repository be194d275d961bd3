// What the PostgreSQL store's parts share: the pool, the schema, the instance's name in claims
// and notices, and a transaction helper.
import type pg from 'pg';
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { parseStoredJson, type StoredRecord } from '../../core/model.js';

export interface PostgresStoreOptions {
  /** Connection string; undefined uses libpq's PG* environment variables. */
  dsn?: string;
  schema: string;
  poolSize: number;
  claimTimeoutMs: number;
  retentionMs: number;
  maxSizeBytes: number;
  partitionsAhead: number;
  logger?: Logger;
  now?: () => number;
  /** How often an unwritable store tries a small write (ms). */
  probeEveryMs?: number;
}

export type Notice = { from: string; type: 'commit' } | { from: string; type: 'state'; component: string; key: string };

export interface Db {
  readonly options: PostgresStoreOptions;
  readonly now: () => number;
  readonly pool: pg.Pool;
  /** Schema-qualified name prefix, quoted. */
  readonly s: string;
  /** The LISTEN/NOTIFY channel of this schema. */
  readonly channel: string;
  /** Names this process in claims and notices; a restarted instance is a new claimer. */
  readonly instanceId: string;
  /** `commit` (records to export, here or elsewhere) and `state` (component, key, value). */
  readonly events: EventEmitter;
  /** Resolves once migrations, partitions and LISTEN are in place. */
  readonly ready: Promise<void>;
  readonly closed: () => boolean;
}

export function notice(db: Db, body: { type: 'commit' } | { type: 'state'; component: string; key: string }): string {
  return JSON.stringify({ from: db.instanceId, ...body });
}

export async function tx<T>(db: Db, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

export function toStored(row: { id: string; received_at_ms: string; body: string }): StoredRecord {
  return parseStoredJson(row.body, Number(row.id), Number(row.received_at_ms));
}
