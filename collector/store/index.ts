// Opens the store the config names: SQLite (embedded default) or PostgreSQL (shared by several
// instances). The one place that picks the implementation.
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { StorageConfig } from '../core/config.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from '../core/store.js';

/** `readOnly` (SQLite): for lookups beside a running collector (nothing created, migrated or written). */
export function openStore(storage: StorageConfig, logger?: Logger, options: { readOnly?: boolean } = {}): Store {
  if (storage.postgres) {
    const p = storage.postgres;
    return new PostgresStore({
      dsn: p.dsn,
      schema: p.schema,
      poolSize: p.pool_size,
      claimTimeoutMs: p.claim_timeout,
      retentionMs: p.retention,
      maxSizeBytes: p.max_size,
      partitionsAhead: p.partitions_ahead,
      logger,
    });
  }
  const s = storage.sqlite;
  return new SqliteStore({
    readOnly: options.readOnly ?? false,
    path: resolve(s.path),
    retentionMs: s.retention,
    maxSizeBytes: s.max_size,
    synchronous: s.synchronous === 'full' ? 'FULL' : 'NORMAL',
    logger,
  });
}

