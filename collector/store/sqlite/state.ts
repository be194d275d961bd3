// Components' durable values in the SQLite store (StateStore in core/store.ts).
import type Database from 'better-sqlite3';

export class SqliteState {
  readonly #get: Database.Statement;
  readonly #set: Database.Statement;
  readonly #now: () => number;

  constructor(db: Database.Database, now: () => number) {
    this.#now = now;
    this.#get = db.prepare('SELECT value FROM component_state WHERE component = ? AND key = ?');
    this.#set = db.prepare(
      `INSERT INTO component_state (component, key, value, updated_at_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (component, key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms`,
    );
  }

  get(component: string, key: string): string | undefined {
    return (this.#get.get(component, key) as { value: string } | undefined)?.value;
  }

  set(component: string, key: string, value: string): void {
    this.#set.run(component, key, value, this.#now());
  }
}
