// Event-driven across instances: every append and state change sends a NOTIFY in its own
// transaction; a dedicated connection per instance LISTENs, so every instance's exporters wake
// on every commit and components hear of state set elsewhere. A lost LISTEN connection is
// re-made with a doubling delay, and one catch-up wake-up follows (commits may have been missed).
import pg from 'pg';
import type { Db, Notice } from './db.js';

const LISTEN_RETRY_MAX_MS = 30_000;

export class Listener {
  #client: pg.Client | undefined;
  #retryMs = 1000;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    /** Reads a state value another instance announced. */
    private readonly readState: (component: string, key: string) => Promise<string | undefined>,
  ) {}

  async listen(): Promise<void> {
    const { db } = this;
    const client = new pg.Client({ connectionString: db.options.dsn, application_name: 'bitville-collector-listen' });
    client.on('notification', (n) => this.#notified(n.payload));
    client.on('error', (err) => {
      db.options.logger?.warn({ err }, 'PostgreSQL LISTEN connection lost; reconnecting');
      this.#relisten(client);
    });
    client.on('end', () => this.#relisten(client));
    await client.connect();
    await client.query(`LISTEN "${db.channel}"`);
    this.#client = client;
    this.#retryMs = 1000;
  }

  #relisten(broken: pg.Client): void {
    const { db } = this;
    if (db.closed() || this.#client !== broken) return;
    this.#client = undefined;
    void broken.end().catch(() => {});
    const retry = () => {
      this.#timer = undefined;
      if (db.closed()) return;
      this.listen().then(
        () => db.events.emit('commit'),
        (err) => {
          db.options.logger?.warn({ err, retryInMs: this.#retryMs }, 'cannot LISTEN on PostgreSQL yet');
          this.#retryMs = Math.min(this.#retryMs * 2, LISTEN_RETRY_MAX_MS);
          this.#timer = setTimeout(retry, this.#retryMs);
        },
      );
    };
    this.#timer = setTimeout(retry, this.#retryMs);
  }

  #notified(payload: string | undefined): void {
    let notice: Notice;
    try {
      notice = JSON.parse(payload ?? '') as Notice;
    } catch {
      return;
    }
    if (notice.from === this.db.instanceId) return; // our own commits were announced locally
    if (notice.type === 'commit') {
      this.db.events.emit('commit');
    } else if (notice.type === 'state') {
      void this.readState(notice.component, notice.key).then(
        (value) => value !== undefined && this.db.events.emit('state', notice.component, notice.key, value),
        () => {},
      );
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
