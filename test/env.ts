// What the machine offers to tests. Tests that need PostgreSQL or PHP skip with a message
// naming what is missing (never silently); CI installs and starts both, so there they run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

/** The repository root (tests run from dist/, fixtures live in the sources). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export const PG_DSN = process.env.BITVILLE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

let pgProbe: Promise<string | undefined> | undefined;
/** Resolves to undefined when PostgreSQL answers, else to the reason it does not. */
export function postgresMissing(): Promise<string | undefined> {
  pgProbe ??= (async () => {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: PG_DSN, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return undefined;
    } catch (err) {
      return `PostgreSQL is not answering at ${PG_DSN} (${(err as Error).message}); .ci/run starts it`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return pgProbe;
}

let phpProbe: string | undefined | null = null;
/** undefined when `php` (CLI, with pgsql) runs, else the reason it does not. */
export function phpMissing(): string | undefined {
  if (phpProbe === null) {
    try {
      const mods = execFileSync('php', ['-m'], { encoding: 'utf8' });
      phpProbe = /^pgsql$/m.test(mods) ? undefined : 'php has no pgsql module (apt-get install php-pgsql)';
    } catch {
      phpProbe = 'php is not installed (apt-get install php-cli php-pgsql; .ci/run does this)';
    }
  }
  return phpProbe;
}

/** Skips the test with the reason when PostgreSQL is missing; returns true when it did. */
export async function skipWithoutPostgres(t: TestContext): Promise<boolean> {
  const reason = await postgresMissing();
  if (reason) t.skip(reason);
  return reason !== undefined;
}

export function skipWithoutPhp(t: TestContext): boolean {
  const reason = phpMissing();
  if (reason) t.skip(reason);
  return reason !== undefined;
}

/** A fresh temporary directory, removed after the test. */
export function tempDir(t: TestContext, prefix = 'bitville-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
