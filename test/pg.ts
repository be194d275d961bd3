// PostgreSQL for tests: a fresh schema per test (dropped afterwards), so tests never collide
// with each other or with other suites on the shared database.
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { PG_DSN } from './env.js';

/** A schema name no other test uses; it and everything in it is dropped after the test. */
export function freshSchema(t: TestContext): string {
  const schema = `bv_test_${randomBytes(5).toString('hex')}`;
  t.after(() => sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  return schema;
}

/** Runs one statement on a connection of its own and returns the rows. */
export async function sql<T extends pg.QueryResultRow = any>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: PG_DSN });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}
