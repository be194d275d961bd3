// PostgreSQL store, shared by several collector instances (node-postgres).
//
// Records live in a table partitioned by arrival day (`records_YYYYMMDD`, UTC), so retention
// drops whole partitions instead of deleting rows. Partitions are created `partitions_ahead`
// days ahead, and on demand when an insert finds none.
//
// Delivery progress is a queue table rather than SQLite's bitmask: `deliveries` holds one narrow
// row per record and exporter still to deliver, and delivering deletes it. So a record's
// `forwarded_to_graylog` for an exporter is "no deliveries row left". The reasons: claiming
// with FOR UPDATE SKIP LOCKED locks rows, and a queue row per exporter means two exporters
// never lock each other's work; a claim needs its own columns (claimed_by, claimed_until) per
// exporter; and the wide, append-only records rows are never updated (no write amplification,
// no dead tuples in the big table). The primary key (exporter, record_id) is the per-exporter
// FIFO index, as SQLite's partial index per exporter bit.
//
// Shared forwarding: pending() claims the exporter's oldest unclaimed rows (or rows whose claim
// has expired, or this instance's own earlier claim after a failed send) with SKIP LOCKED and
// commits the claim before the export starts; markDelivered() deletes them. A dead instance's
// claims expire after claim_timeout and are taken over, oldest first.
//
// Event-driven across instances: every append sends a NOTIFY in its own transaction, so every
// instance's exporters wake on every commit; an instance waiting on another's claims arms one
// timer for the claim's expiry.
import pg from 'pg';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { FlatRecord, StoredRecord } from '../model.js';
import { durationOf, projectOf, signalOf, sourceOf, timeOf } from '../model.js';
import type { ExporterRoute, Store, StoreStats, RequestQuery } from './store.js';

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
}

const DAY_MS = 86_400_000;
const STATS_REFRESH_MS = 15_000;
const LISTEN_RETRY_MAX_MS = 30_000;
const MAX_EXPORTERS = 32_000;

/** Each entry is one schema version, applied in order inside one transaction. */
const MIGRATIONS: ((s: string) => string)[] = [
  (s) => `
    CREATE SEQUENCE ${s}.records_id_seq AS bigint;
    CREATE TABLE ${s}.records (
      id bigint NOT NULL DEFAULT nextval('${s}.records_id_seq'),
      received_at_ms bigint NOT NULL,
      kind text NOT NULL,
      signal text NOT NULL,
      time_unix_nano bigint NOT NULL,
      correlation_id text,
      trace_id text,
      span_id text,
      project text,
      source text,
      name text,
      duration_ms double precision,
      body text NOT NULL,
      PRIMARY KEY (id, received_at_ms)
    ) PARTITION BY RANGE (received_at_ms);
    ALTER SEQUENCE ${s}.records_id_seq OWNED BY ${s}.records.id;
    CREATE INDEX records_correlation ON ${s}.records (correlation_id) WHERE correlation_id IS NOT NULL;
    CREATE INDEX records_time ON ${s}.records (time_unix_nano);
    -- Arrival time follows insertion order: a BRIN index finds "arrived since" ranges for the
    -- price of a few pages, with next to no cost on ingest.
    CREATE INDEX records_received ON ${s}.records USING brin (received_at_ms);
    -- Summaries are a small share of the rows: partial indexes over them alone find an id's
    -- newest summary (the correlation join) and the summaries of a time range (lookups).
    CREATE INDEX records_summary_by_correlation ON ${s}.records (correlation_id, id) WHERE kind = 'summary';
    CREATE INDEX records_summary_by_time ON ${s}.records (received_at_ms) WHERE kind = 'summary';
    -- num: the exporter's small number, used in the queue rows.
    CREATE TABLE ${s}.exporters (id text PRIMARY KEY, num smallint NOT NULL UNIQUE);
    -- One row per record still to deliver to an exporter; delivered = row gone.
    CREATE TABLE ${s}.deliveries (
      exporter smallint NOT NULL,
      record_id bigint NOT NULL,
      claimed_by text,
      claimed_until timestamptz,
      PRIMARY KEY (exporter, record_id)
    );
    CREATE TABLE ${s}.component_state (
      component text NOT NULL,
      key text NOT NULL,
      value text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (component, key)
    );`,
];

type Notice = { from: string; type: 'commit' } | { from: string; type: 'state'; component: string; key: string };

export class PostgresStore implements Store {
  readonly #options: PostgresStoreOptions;
  readonly #now: () => number;
  readonly #pool: pg.Pool;
  /** Schema-qualified name prefix, quoted. */
  readonly #s: string;
  readonly #channel: string;
  /** Names this process in claims; a restarted instance is a new claimer. */
  readonly instanceId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly #events = new EventEmitter();
  readonly #ready: Promise<void>;
  #listener: pg.Client | undefined;
  #listenRetryMs = 1000;
  #listenTimer: NodeJS.Timeout | undefined;
  #statsTimer: NodeJS.Timeout | undefined;
  /** Per exporter: a timer that wakes exporters when another instance's claim expires. */
  #claimTimers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #exporterNums = new Map<string, number>();
  /** Per signal, the exporter numbers that receive it (this instance's configuration). */
  #routes: { signals: string[]; exporters: number[] } = { signals: [], exporters: [] };
  /** Days whose partition this instance knows to exist. */
  #partitions = new Set<number>();
  #stats: StoreStats = { sizeBytes: 0, rows: 0, dropped: { retention: 0, size: 0 } };
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#s = `"${options.schema}"`;
    this.#channel = `bitville_${options.schema}`;
    this.#pool = new pg.Pool({ connectionString: options.dsn, max: options.poolSize, application_name: 'bitville-collector' });
    // An idle connection that breaks is replaced on next use; the error must not crash the process.
    this.#pool.on('error', (err) => options.logger?.warn({ err }, 'PostgreSQL connection lost (idle); it is replaced on next use'));
    this.#ready = this.#open();
    this.#ready.catch(() => {}); // reported by the first call that awaits it
  }

  async #open(): Promise<void> {
    await this.#migrate();
    await this.#ensurePartitions();
    await this.#listen();
    await this.#refreshStats();
    this.#statsTimer = setInterval(() => void this.#refreshStats().catch(() => {}), STATS_REFRESH_MS);
    this.#statsTimer.unref();
  }

  /** Applies missing migrations; an advisory lock keeps instances starting together in line. */
  async #migrate(): Promise<void> {
    await this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${this.#options.schema}:migrate`]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.#s}`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.#s}.schema_version (version integer NOT NULL)`);
      const { rows } = await c.query<{ version: number }>(`SELECT version FROM ${this.#s}.schema_version`);
      const version = rows[0]?.version ?? 0;
      if (version > MIGRATIONS.length) {
        throw new Error(`schema ${this.#options.schema} is at version ${version}, newer than this collector knows (${MIGRATIONS.length}); upgrade the collector`);
      }
      for (let v = version; v < MIGRATIONS.length; v++) await c.query(MIGRATIONS[v]!(this.#s));
      await c.query(`DELETE FROM ${this.#s}.schema_version`);
      await c.query(`INSERT INTO ${this.#s}.schema_version (version) VALUES ($1)`, [MIGRATIONS.length]);
    });
  }

  /** Creates the daily partitions from the one holding `at` to partitions_ahead days after. */
  async #ensurePartitions(at = this.#now()): Promise<void> {
    const first = Math.floor(at / DAY_MS) * DAY_MS;
    const days = Array.from({ length: this.#options.partitionsAhead + 1 }, (_, i) => first + i * DAY_MS).filter((d) => !this.#partitions.has(d));
    if (days.length === 0) return;
    await this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${this.#options.schema}:partitions`]);
      for (const day of days) {
        await c.query(
          `CREATE TABLE IF NOT EXISTS ${this.#s}.${partitionName(day)} PARTITION OF ${this.#s}.records FOR VALUES FROM (${day}) TO (${day + DAY_MS})`,
        );
      }
    });
    for (const day of days) this.#partitions.add(day);
  }

  /** A dedicated connection LISTENs for other instances' commits and state changes. */
  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.dsn, application_name: 'bitville-collector-listen' });
    client.on('notification', (n) => this.#notified(n.payload));
    client.on('error', (err) => {
      this.#options.logger?.warn({ err }, 'PostgreSQL LISTEN connection lost; reconnecting');
      this.#relisten(client);
    });
    client.on('end', () => this.#relisten(client));
    await client.connect();
    await client.query(`LISTEN "${this.#channel}"`);
    this.#listener = client;
    this.#listenRetryMs = 1000;
  }

  #relisten(broken: pg.Client): void {
    if (this.#closed || this.#listener !== broken) return;
    this.#listener = undefined;
    void broken.end().catch(() => {});
    const retry = () => {
      this.#listenTimer = undefined;
      if (this.#closed) return;
      this.#listen().then(
        // Commits may have happened while nobody listened: catch up once.
        () => this.#events.emit('commit'),
        (err) => {
          this.#options.logger?.warn({ err, retryInMs: this.#listenRetryMs }, 'cannot LISTEN on PostgreSQL yet');
          this.#listenRetryMs = Math.min(this.#listenRetryMs * 2, LISTEN_RETRY_MAX_MS);
          this.#listenTimer = setTimeout(retry, this.#listenRetryMs);
        },
      );
    };
    this.#listenTimer = setTimeout(retry, this.#listenRetryMs);
  }

  #notified(payload: string | undefined): void {
    let notice: Notice;
    try {
      notice = JSON.parse(payload ?? '') as Notice;
    } catch {
      return;
    }
    if (notice.from === this.instanceId) return; // our own commits were announced locally
    if (notice.type === 'commit') {
      this.#events.emit('commit');
    } else if (notice.type === 'state') {
      void this.getState(notice.component, notice.key).then(
        (value) => value !== undefined && this.#events.emit('state', notice.component, notice.key, value),
        () => {},
      );
    }
  }

  async configureExporters(routes: readonly ExporterRoute[]): Promise<void> {
    await this.#ready;
    const nums = new Map<string, number>();
    await this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${this.#options.schema}:exporters`]);
      const { rows } = await c.query<{ id: string; num: number }>(`SELECT id, num FROM ${this.#s}.exporters`);
      const used = new Set(rows.map((r) => r.num));
      for (const r of rows) nums.set(r.id, r.num);
      for (const { id } of routes) {
        if (nums.has(id)) continue;
        let num = 0;
        while (used.has(num)) num++;
        if (num >= MAX_EXPORTERS) throw new Error(`the store tracks at most ${MAX_EXPORTERS} exporter ids`);
        used.add(num);
        nums.set(id, num);
        await c.query(`INSERT INTO ${this.#s}.exporters (id, num) VALUES ($1, $2)`, [id, num]);
      }
    });
    this.#exporterNums = new Map(routes.map((r) => [r.id, nums.get(r.id)!]));
    // Flattened (signal, exporter) pairs, joined against the inserted rows by signal.
    this.#routes = { signals: [], exporters: [] };
    for (const r of routes) {
      for (const signal of r.signals) {
        this.#routes.signals.push(signal);
        this.#routes.exporters.push(nums.get(r.id)!);
      }
    }
  }

  async append(records: readonly FlatRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#ready;
    const columns: unknown[][] = Array.from({ length: 11 }, () => new Array(records.length));
    records.forEach((r, i) => {
      columns[0]![i] = r.kind;
      columns[1]![i] = signalOf(r);
      columns[2]![i] = timeOf(r);
      columns[3]![i] = r.correlationId || null;
      columns[4]![i] = r.traceId || null;
      columns[5]![i] = r.spanId || null;
      columns[6]![i] = projectOf(r) || null;
      columns[7]![i] = sourceOf(r);
      columns[8]![i] = r.kind === 'log' ? r.eventName || r.severityText || null : r.name;
      columns[9]![i] = durationOf(r) ?? null;
      columns[10]![i] = JSON.stringify(r);
    });
    const receivedAt = this.#now();
    // One statement, so one round trip and one implicit transaction: the records, their queue
    // rows for each exporter of their signal, and the NOTIFY (delivered at commit).
    const insert = () =>
      this.#pool.query(
        `WITH inserted AS (
           INSERT INTO ${this.#s}.records (received_at_ms, kind, signal, time_unix_nano, correlation_id, trace_id, span_id,
             project, source, name, duration_ms, body)
           SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
             $9::text[], $10::text[], $11::float8[], $12::text[])
           RETURNING id, signal
         ), queued AS (
           INSERT INTO ${this.#s}.deliveries (exporter, record_id)
           SELECT route.exporter, inserted.id FROM inserted JOIN unnest($13::text[], $14::smallint[]) AS route (signal, exporter) USING (signal)
         )
         SELECT pg_notify($15, $16)`,
        [receivedAt, ...columns, this.#routes.signals, this.#routes.exporters, this.#channel, this.#notice({ type: 'commit' })],
      );
    try {
      await insert();
    } catch (err) {
      // No partition for this day (the clock passed the partitions made ahead): make it, retry once.
      if ((err as { code?: string }).code !== '23514') throw err;
      await this.#ensurePartitions(receivedAt);
      await insert();
    }
    this.#events.emit('commit');
  }

  async pending(exporterId: string, limit: number, afterId = 0): Promise<StoredRecord[]> {
    await this.#ready;
    const exporter = this.#num(exporterId);
    const { rows } = await this.#pool.query<{ id: string; received_at_ms: string; body: string }>(
      `WITH next AS (
         SELECT record_id FROM ${this.#s}.deliveries
         WHERE exporter = $1 AND record_id > $5 AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $2)
         ORDER BY record_id LIMIT $3
         FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE ${this.#s}.deliveries d SET claimed_by = $2, claimed_until = now() + $4 * interval '1 millisecond'
         FROM next WHERE d.exporter = $1 AND d.record_id = next.record_id
         RETURNING d.record_id
       )
       SELECT r.id, r.received_at_ms, r.body FROM ${this.#s}.records r JOIN claimed ON r.id = claimed.record_id ORDER BY r.id`,
      [exporter, this.instanceId, limit, this.#options.claimTimeoutMs, afterId],
    );
    if (rows.length < limit) await this.#wakeWhenClaimsExpire(exporterId, exporter);
    return rows.map(toStored);
  }

  /** Other instances hold claims we may have to take over: wake our exporters when they expire. */
  async #wakeWhenClaimsExpire(exporterId: string, exporter: number): Promise<void> {
    const { rows } = await this.#pool.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM min(claimed_until) - now()) * 1000)::float8 AS ms FROM ${this.#s}.deliveries
       WHERE exporter = $1 AND claimed_until >= now() AND claimed_by <> $2`,
      [exporter, this.instanceId],
    );
    const ms = rows[0]?.ms;
    if (ms === null || ms === undefined || this.#closed) return;
    const at = Date.now() + ms;
    const armed = this.#claimTimers.get(exporterId);
    if (armed && armed.at <= at) return;
    if (armed) clearTimeout(armed.timer);
    const timer = setTimeout(() => {
      this.#claimTimers.delete(exporterId);
      this.#events.emit('commit');
    }, ms + 20);
    timer.unref();
    this.#claimTimers.set(exporterId, { at, timer });
  }

  async markDelivered(exporterId: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#ready;
    await this.#pool.query(`DELETE FROM ${this.#s}.deliveries WHERE exporter = $1 AND record_id = ANY($2::bigint[])`, [this.#num(exporterId), ids]);
  }

  /** Records waiting for the exporter, across all instances (the queue is shared). */
  async backlog(exporterId: string): Promise<number> {
    await this.#ready;
    const { rows } = await this.#pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#s}.deliveries WHERE exporter = $1`, [this.#num(exporterId)]);
    return Number(rows[0]!.n);
  }

  async byCorrelationId(correlationId: string): Promise<StoredRecord[]> {
    await this.#ready;
    const { rows } = await this.#pool.query<{ id: string; received_at_ms: string; body: string }>(
      `SELECT id, received_at_ms, body FROM ${this.#s}.records WHERE correlation_id = $1 ORDER BY id`,
      [correlationId],
    );
    return rows.map(toStored);
  }

  /** See StoreReader.unsummarizedCorrelations: the records that arrived since, grouped by id. */
  async unsummarizedCorrelations(sinceMs: number, limit: number): Promise<{ correlationId: string; lastReceivedAtMs: number }[]> {
    await this.#ready;
    const { rows } = await this.#pool.query<{ correlationId: string; lastReceivedAtMs: string }>(
      `SELECT r.correlation_id AS "correlationId", max(r.received_at_ms) AS "lastReceivedAtMs"
       FROM ${this.#s}.records r
       WHERE r.received_at_ms >= $1 AND r.correlation_id IS NOT NULL AND r.kind <> 'summary'
       GROUP BY r.correlation_id
       HAVING max(r.id) > coalesce(
         (SELECT max(s.id) FROM ${this.#s}.records s WHERE s.kind = 'summary' AND s.correlation_id = r.correlation_id), 0)
       ORDER BY 2, 1
       LIMIT $2`,
      [sinceMs, limit],
    );
    return rows.map((r) => ({ correlationId: r.correlationId, lastReceivedAtMs: Number(r.lastReceivedAtMs) }));
  }

  /** See Store.recentRequests: the newest summary per correlation id, filtered. */
  async recentRequests(query: RequestQuery): Promise<StoredRecord[]> {
    await this.#ready;
    // `recent`: by the request's own start (a summary arrives a window after its request).
    const order = query.order === 'slowest' ? 'r.duration_ms DESC, r.id DESC' : 'r.time_unix_nano DESC, r.id DESC';
    const { rows } = await this.#pool.query<{ id: string; received_at_ms: string; body: string }>(
      `SELECT r.id, r.received_at_ms, r.body FROM ${this.#s}.records r
       WHERE r.kind = 'summary' AND r.received_at_ms >= $1
         AND ($2::text IS NULL OR r.project = $2)
         AND ($3::text IS NULL OR strpos(lower(r.body::jsonb -> 'attributes' ->> 'url.full'), lower($3)) > 0)
         AND ($4::float8 IS NULL OR r.duration_ms >= $4)
         AND NOT EXISTS (SELECT 1 FROM ${this.#s}.records n
                         WHERE n.kind = 'summary' AND n.correlation_id = r.correlation_id AND n.id > r.id)
       ORDER BY ${order}
       LIMIT $5`,
      [query.sinceMs, query.project ?? null, query.urlContains ?? null, query.minDurationMs ?? null, query.limit],
    );
    return rows.map(toStored);
  }

  onCommit(listener: () => void): () => void {
    this.#events.on('commit', listener);
    return () => this.#events.off('commit', listener);
  }

  /**
   * Creates partitions ahead, then drops whole partitions past retention and, while the tables
   * are over max_size, the oldest ones (never the current day's). Queue rows of dropped records
   * go with them.
   */
  async enforceLimits(): Promise<number> {
    await this.#ready;
    const now = this.#now();
    await this.#ensurePartitions(now);
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    const cutoff = now - this.#options.retentionMs;
    let removed = 0;
    for (const day of await this.#partitionDays()) {
      let reason: 'retention' | 'size' | undefined;
      if (day + DAY_MS <= cutoff) reason = 'retention';
      else if (day < today && (await this.#sizeBytes()) > this.#options.maxSizeBytes) reason = 'size';
      if (!reason) break;
      const dropped = await this.#dropPartition(day);
      if (dropped === undefined) break; // busy: next check
      this.#stats.dropped[reason] += dropped;
      removed += dropped;
    }
    await this.#refreshStats();
    return removed;
  }

  /** The partitions' days, oldest first. */
  async #partitionDays(): Promise<number[]> {
    const { rows } = await this.#pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = $1::regclass`,
      [`${this.#s}.records`],
    );
    return rows
      .map((r) => dayOfPartition(r.name))
      .filter((d): d is number => d !== undefined)
      .sort((a, b) => a - b);
  }

  /** Drops one day's partition and its queue rows; returns the rows dropped, or undefined when the table is busy. */
  async #dropPartition(day: number): Promise<number | undefined> {
    const table = `${this.#s}.${partitionName(day)}`;
    try {
      return await this.#tx(async (c) => {
        // Dropping a partition locks the parent table briefly; never queue inserts behind it for long.
        await c.query("SET LOCAL lock_timeout = '5s'");
        const { rows } = await c.query<{ n: string; last: string | null }>(`SELECT count(*) AS n, max(id) AS last FROM ${table}`);
        const { n, last } = rows[0]!;
        await c.query(`DROP TABLE ${table}`);
        this.#partitions.delete(day);
        // Ids grow with arrival, so the queue rows of this day's records are those up to its last id.
        if (last !== null) await c.query(`DELETE FROM ${this.#s}.deliveries WHERE record_id <= $1`, [last]);
        return Number(n);
      });
    } catch (err) {
      if ((err as { code?: string }).code === '55P03') return undefined; // lock_not_available
      throw err;
    }
  }

  async #sizeBytes(): Promise<number> {
    const { rows } = await this.#pool.query<{ bytes: string }>(
      `SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) + pg_total_relation_size($1::regclass) AS bytes
       FROM pg_inherits i WHERE i.inhparent = $2::regclass`,
      [`${this.#s}.deliveries`, `${this.#s}.records`],
    );
    return Number(rows[0]!.bytes);
  }

  async #refreshStats(): Promise<void> {
    // Ids come from one sequence and rows leave whole days from the oldest end, so the id range
    // counts the rows (up to rolled-back inserts) without a full count(*).
    const { rows } = await this.#pool.query<{ lo: string | null; hi: string | null }>(`SELECT min(id) AS lo, max(id) AS hi FROM ${this.#s}.records`);
    const { lo, hi } = rows[0]!;
    this.#stats.rows = lo === null || hi === null ? 0 : Number(hi) - Number(lo) + 1;
    this.#stats.sizeBytes = await this.#sizeBytes();
  }

  /** Figures refreshed every 15 s and after each limits check (stats() is synchronous). */
  stats(): StoreStats {
    return { ...this.#stats, dropped: { ...this.#stats.dropped } };
  }

  async getState(component: string, key: string): Promise<string | undefined> {
    await this.#ready;
    const { rows } = await this.#pool.query<{ value: string }>(`SELECT value FROM ${this.#s}.component_state WHERE component = $1 AND key = $2`, [
      component,
      key,
    ]);
    return rows[0]?.value;
  }

  async setState(component: string, key: string, value: string): Promise<void> {
    await this.#ready;
    await this.#pool.query(
      `WITH saved AS (
         INSERT INTO ${this.#s}.component_state (component, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (component, key) DO UPDATE SET value = excluded.value, updated_at = now()
       )
       SELECT pg_notify($4, $5)`,
      [component, key, value, this.#channel, this.#notice({ type: 'state', component, key })],
    );
  }

  onStateChange(listener: (component: string, key: string, value: string) => void): () => void {
    this.#events.on('state', listener);
    return () => this.#events.off('state', listener);
  }

  /** Hands this instance's unfinished claims back at once (others are told), then disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#statsTimer);
    clearTimeout(this.#listenTimer);
    for (const { timer } of this.#claimTimers.values()) clearTimeout(timer);
    try {
      await this.#ready;
      await this.#pool.query(
        `WITH released AS (
           UPDATE ${this.#s}.deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1 RETURNING 1
         )
         SELECT pg_notify($2, $3) FROM (SELECT count(*) AS n FROM released) r WHERE r.n > 0`,
        [this.instanceId, this.#channel, this.#notice({ type: 'commit' })],
      );
    } catch (err) {
      this.#options.logger?.warn({ err }, 'cannot release claims at close; they expire after claim_timeout');
    } finally {
      const listener = this.#listener;
      this.#listener = undefined;
      await listener?.end().catch(() => {});
      await this.#pool.end();
    }
  }

  #notice(body: { type: 'commit' } | { type: 'state'; component: string; key: string }): string {
    return JSON.stringify({ from: this.instanceId, ...body });
  }

  #num(exporterId: string): number {
    const num = this.#exporterNums.get(exporterId);
    if (num === undefined) throw new Error(`exporter ${exporterId} is not configured in the store`);
    return num;
  }

  async #tx<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
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
}

function toStored(row: { id: string; received_at_ms: string; body: string }): StoredRecord {
  return { ...(JSON.parse(row.body) as FlatRecord), id: Number(row.id), receivedAtMs: Number(row.received_at_ms) };
}

/** `records_20260115` for the UTC day starting at `dayMs`. */
function partitionName(dayMs: number): string {
  return `records_${new Date(dayMs).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

function dayOfPartition(name: string): number | undefined {
  const m = /^records_(\d{4})(\d{2})(\d{2})$/.exec(name);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : undefined;
}
