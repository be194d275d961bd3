// Opens the store the config names. SQLite is the embedded default; other implementations
// of the Store interface plug in here.
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

/** `readOnly`: for lookups beside a running collector (nothing created, migrated or written). */
export function openStore(storage: Config['storage'], options: { readOnly?: boolean } = {}): Store {
  const s = storage.sqlite;
  return new SqliteStore({
    readOnly: options.readOnly ?? false,
    path: resolve(s.path),
    retentionMs: s.retention,
    maxSizeBytes: s.max_size,
    synchronous: s.synchronous === 'full' ? 'FULL' : 'NORMAL',
  });
}

/** Directory for components' own durable state (circuit breaker files and the like). */
export function stateDir(storage: Config['storage']): string {
  return resolve(storage.sqlite.path, '..');
}
