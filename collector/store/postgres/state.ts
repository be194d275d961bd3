// Components' durable values in the PostgreSQL store, shared by every instance: a change is
// announced with NOTIFY in the same statement, so other instances hear of it (notify.ts).
import { notice, type Db } from './db.js';

export class PostgresState {
  constructor(private readonly db: Db) {}

  async get(component: string, key: string): Promise<string | undefined> {
    const { rows } = await this.db.pool.query<{ value: string }>(`SELECT value FROM ${this.db.s}.component_state WHERE component = $1 AND key = $2`, [component, key]);
    return rows[0]?.value;
  }

  async set(component: string, key: string, value: string): Promise<void> {
    await this.db.pool.query(
      `WITH saved AS (
         INSERT INTO ${this.db.s}.component_state (component, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (component, key) DO UPDATE SET value = excluded.value, updated_at = now()
       )
       SELECT pg_notify($4, $5)`,
      [component, key, value, this.db.channel, notice(this.db, { type: 'state', component, key })],
    );
  }

  /** A write that announces nothing: the store's probe while it cannot commit. */
  async probe(): Promise<void> {
    await this.db.pool.query(
      `INSERT INTO ${this.db.s}.component_state (component, key, value) VALUES ('bitville.store', 'write_probe', now()::text)
       ON CONFLICT (component, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
    );
  }
}
