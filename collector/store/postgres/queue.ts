// The PostgreSQL store's durable queue, shared by several instances.
//
// Delivery progress is a queue table rather than a flag on the record: `deliveries` holds one
// narrow row per record and exporter still to deliver, and delivering deletes it. So a record's
// `forwarded_to_graylog` for an exporter is "no deliveries row left". The reasons: claiming
// with FOR UPDATE SKIP LOCKED locks rows, and a queue row per exporter means two exporters
// never lock each other's work; a claim needs its own columns (claimed_by, claimed_until) per
// exporter; and the wide, append-only records rows are never updated (no write amplification,
// no dead tuples in the big table). The primary key (exporter, record_id) is the per-exporter
// FIFO index. The SQLite store uses the same table shape (without claims).
//
// Shared forwarding: pending() claims the exporter's oldest unclaimed rows (or rows whose claim
// has expired, or this instance's own earlier claim after a failed send) with SKIP LOCKED and
// commits the claim before the export starts; markDelivered() deletes them. A dead instance's
// claims expire after claim_timeout and are taken over, oldest first; an instance waiting on
// another's claims arms one timer for the claim's expiry.
import type { FlatRecord, StoredRecord } from '../../core/model.js';
import { durationOf, projectOf, signalOf, sourceOf, timeOf } from '../../core/model.js';
import type { ExporterRoute, StoreStats } from '../../core/store.js';
import { notice, toStored, tx, type Db } from './db.js';
import { DAY_MS, type Partitions } from './schema.js';

const MAX_EXPORTERS = 32_000;

export class PostgresQueue {
  /** Per exporter: a timer that wakes exporters when another instance's claim expires. */
  readonly #claimTimers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #exporterNums = new Map<string, number>();
  /** Flattened (signal, exporter number) pairs of this instance's configuration. */
  #routes: { signals: string[]; exporters: number[] } = { signals: [], exporters: [] };
  readonly stats: Omit<StoreStats, 'commitFailures'> = { sizeBytes: 0, rows: 0, dropped: { retention: 0, size: 0 } };

  constructor(
    private readonly db: Db,
    private readonly partitions: Partitions,
  ) {}

  async configureExporters(routes: readonly ExporterRoute[]): Promise<void> {
    const { db } = this;
    const nums = new Map<string, number>();
    await tx(db, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${db.options.schema}:exporters`]);
      const { rows } = await c.query<{ id: string; num: number }>(`SELECT id, num FROM ${db.s}.exporters`);
      const used = new Set(rows.map((r) => r.num));
      for (const r of rows) nums.set(r.id, r.num);
      for (const { id } of routes) {
        if (nums.has(id)) continue;
        let num = 0;
        while (used.has(num)) num++;
        if (num >= MAX_EXPORTERS) throw new Error(`the store tracks at most ${MAX_EXPORTERS} exporter ids`);
        used.add(num);
        nums.set(id, num);
        await c.query(`INSERT INTO ${db.s}.exporters (id, num) VALUES ($1, $2)`, [id, num]);
      }
    });
    this.#exporterNums = new Map(routes.map((r) => [r.id, nums.get(r.id)!]));
    this.#routes = { signals: [], exporters: [] };
    for (const r of routes) {
      for (const signal of r.signals) {
        this.#routes.signals.push(signal);
        this.#routes.exporters.push(nums.get(r.id)!);
      }
    }
  }

  async append(records: readonly FlatRecord[]): Promise<void> {
    const { db } = this;
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
    const receivedAt = db.now();
    // One statement, so one round trip and one implicit transaction: the records, their queue
    // rows for each exporter of their signal, and the NOTIFY (delivered at commit).
    const insert = () =>
      db.pool.query(
        `WITH inserted AS (
           INSERT INTO ${db.s}.records (received_at_ms, kind, signal, time_unix_nano, correlation_id, trace_id, span_id,
             project, source, name, duration_ms, body)
           SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
             $9::text[], $10::text[], $11::float8[], $12::text[])
           RETURNING id, signal
         ), queued AS (
           INSERT INTO ${db.s}.deliveries (exporter, record_id)
           SELECT route.exporter, inserted.id FROM inserted JOIN unnest($13::text[], $14::smallint[]) AS route (signal, exporter) USING (signal)
         )
         SELECT pg_notify($15, $16)`,
        [receivedAt, ...columns, this.#routes.signals, this.#routes.exporters, db.channel, notice(db, { type: 'commit' })],
      );
    try {
      await insert();
    } catch (err) {
      // No partition for this day (the clock passed the partitions made ahead): make it, retry once.
      if ((err as { code?: string }).code !== '23514') throw err;
      await this.partitions.ensure(receivedAt);
      await insert();
    }
  }

  async pending(exporterId: string, limit: number, afterId = 0): Promise<StoredRecord[]> {
    const { db } = this;
    const exporter = this.#num(exporterId);
    const { rows } = await db.pool.query<{ id: string; received_at_ms: string; body: string }>(
      `WITH next AS (
         SELECT record_id FROM ${db.s}.deliveries
         WHERE exporter = $1 AND record_id > $5 AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $2)
         ORDER BY record_id LIMIT $3
         FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE ${db.s}.deliveries d SET claimed_by = $2, claimed_until = now() + $4 * interval '1 millisecond'
         FROM next WHERE d.exporter = $1 AND d.record_id = next.record_id
         RETURNING d.record_id
       )
       SELECT r.id, r.received_at_ms, r.body FROM ${db.s}.records r JOIN claimed ON r.id = claimed.record_id ORDER BY r.id`,
      [exporter, db.instanceId, limit, db.options.claimTimeoutMs, afterId],
    );
    if (rows.length < limit) await this.#wakeWhenClaimsExpire(exporterId, exporter);
    return rows.map(toStored);
  }

  /** Other instances hold claims we may have to take over: wake our exporters when they expire. */
  async #wakeWhenClaimsExpire(exporterId: string, exporter: number): Promise<void> {
    const { db } = this;
    const { rows } = await db.pool.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM min(claimed_until) - now()) * 1000)::float8 AS ms FROM ${db.s}.deliveries
       WHERE exporter = $1 AND claimed_until >= now() AND claimed_by <> $2`,
      [exporter, db.instanceId],
    );
    const ms = rows[0]?.ms;
    if (ms === null || ms === undefined || db.closed()) return;
    const at = Date.now() + ms;
    const armed = this.#claimTimers.get(exporterId);
    if (armed && armed.at <= at) return;
    if (armed) clearTimeout(armed.timer);
    const timer = setTimeout(() => {
      this.#claimTimers.delete(exporterId);
      db.events.emit('commit');
    }, ms + 20);
    timer.unref();
    this.#claimTimers.set(exporterId, { at, timer });
  }

  async markDelivered(exporterId: string, ids: readonly number[]): Promise<void> {
    await this.db.pool.query(`DELETE FROM ${this.db.s}.deliveries WHERE exporter = $1 AND record_id = ANY($2::bigint[])`, [this.#num(exporterId), ids]);
  }

  /** Records waiting for the exporter, across all instances (the queue is shared). */
  async backlog(exporterId: string): Promise<number> {
    const { rows } = await this.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.db.s}.deliveries WHERE exporter = $1`, [this.#num(exporterId)]);
    return Number(rows[0]!.n);
  }

  /**
   * Creates partitions ahead, then drops whole partitions past retention and, while the tables
   * are over max_size, the oldest ones (never the current day's). Queue rows of dropped records
   * go with them.
   */
  async enforceLimits(): Promise<number> {
    const { db, partitions } = this;
    const now = db.now();
    await partitions.ensure(now);
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    const cutoff = now - db.options.retentionMs;
    let removed = 0;
    for (const day of await partitions.days()) {
      let reason: 'retention' | 'size' | undefined;
      if (day + DAY_MS <= cutoff) reason = 'retention';
      else if (day < today && (await partitions.sizeBytes()) > db.options.maxSizeBytes) reason = 'size';
      if (!reason) break;
      const dropped = await partitions.drop(day);
      if (dropped === undefined) break; // busy: next check
      this.stats.dropped[reason] += dropped;
      removed += dropped;
    }
    await this.refreshStats();
    return removed;
  }

  async refreshStats(): Promise<void> {
    // Ids come from one sequence and rows leave whole days from the oldest end, so the id range
    // counts the rows (up to rolled-back inserts) without a full count(*).
    const { rows } = await this.db.pool.query<{ lo: string | null; hi: string | null }>(`SELECT min(id) AS lo, max(id) AS hi FROM ${this.db.s}.records`);
    const { lo, hi } = rows[0]!;
    this.stats.rows = lo === null || hi === null ? 0 : Number(hi) - Number(lo) + 1;
    this.stats.sizeBytes = await this.partitions.sizeBytes();
  }

  /** Hands this instance's unfinished claims back at once; the other instances are told. */
  async releaseClaims(): Promise<void> {
    for (const { timer } of this.#claimTimers.values()) clearTimeout(timer);
    const { db } = this;
    await db.pool.query(
      `WITH released AS (
         UPDATE ${db.s}.deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1 RETURNING 1
       )
       SELECT pg_notify($2, $3) FROM (SELECT count(*) AS n FROM released) r WHERE r.n > 0`,
      [db.instanceId, db.channel, notice(db, { type: 'commit' })],
    );
  }

  #num(exporterId: string): number {
    const num = this.#exporterNums.get(exporterId);
    if (num === undefined) throw new Error(`exporter ${exporterId} is not configured in the store`);
    return num;
  }
}
