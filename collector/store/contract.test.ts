// The one store contract suite (contract.fixture.ts), run against SQLite on a real file and
// PostgreSQL in a schema of its own per test (skipped, with the reason, when it does not answer).
import { join } from 'node:path';
import { PG_DSN, postgresMissing, tempDir } from '../../test/env.js';
import { freshSchema } from '../../test/pg.js';
import { storeContract } from './contract.fixture.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';

storeContract({
  name: 'SQLite',
  missing: async () => undefined,
  place: (t) => join(tempDir(t), 'store.db'),
  open: (t, path, o = {}) => {
    const store = new SqliteStore({ path, retentionMs: o.retentionMs ?? 7 * 86_400_000, maxSizeBytes: o.maxSizeBytes ?? 10 * 1024 ** 3, synchronous: 'NORMAL', now: o.now });
    t.after(() => store.close());
    return store;
  },
});

storeContract({
  name: 'PostgreSQL',
  missing: postgresMissing,
  place: (t) => freshSchema(t),
  open: (t, schema, o = {}) => {
    const store = new PostgresStore({
      dsn: PG_DSN,
      schema,
      poolSize: 4,
      claimTimeoutMs: 30_000,
      retentionMs: o.retentionMs ?? 7 * 86_400_000,
      maxSizeBytes: o.maxSizeBytes ?? 10 * 1024 ** 3,
      partitionsAhead: 2,
      now: o.now,
    });
    t.after(() => store.close());
    return store;
  },
});
