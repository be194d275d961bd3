// The PostgreSQL store's durable queue, shared by several instances.
//
// Delivery progress is a table of id ranges rather than a flag on the record (see ../ranges.ts):
// `delivery_ranges` holds, per exporter, runs of consecutive ids still to deliver, one inserted
// per run an append queued (one per commit as a rule); delivering a batch deletes the ranges it
// covers and shortens or splits the rest. So a record's `forwarded_to_graylog` for an exporter
// is derived: "no range of the exporter holds its id". The reasons: claiming with FOR UPDATE
// SKIP LOCKED locks rows, and rows per exporter mean two exporters never lock each other's
// work; a claim needs its own columns (claimed_by, claimed_until) per exporter; and the wide,
// append-only records rows are never updated (no write amplification, no dead tuples in the
// big table). The primary key (exporter, from_id) is the per-exporter FIFO index.
//
// Shared forwarding: pending() claims the exporter's oldest unclaimed ranges (or ranges whose
// claim has expired, or this instance's own earlier claim after a failed send) with SKIP
// LOCKED, splitting the last one at the batch size, and commits the claim before the export
// starts; claimers of one exporter take turns (an advisory lock held for the claim), so each
// instance's claims stay in store order; markDelivered() takes the ids out. A dead instance's claims expire after
// claim_timeout and are taken over, oldest first; an instance waiting on another's claims arms
// one timer for the claim's expiry.
import type { FlatRecord, RecordKind, StoredText } from '../../core/model.js';
import { durationOf, projectOf, signalOf, sourceOf, timeOf } from '../../core/model.js';
import type { ExporterRoute, StoreStats } from '../../core/store.js';
import { notice, tx, type Db } from './db.js';
import { DAY_MS, type Partitions } from './schema.js';
import { sortedIds, subtract, type IdRange } from '../ranges.js';

type RangeRow = { from_id: string; to_id: string; claimed_by: string | null; claimed_until: Date | null };

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

  /** Commits the records and a range per exporter and run of consecutive ids of its signals. */
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
    // One statement, so one round trip and one implicit transaction: the records, a range per
    // exporter and run of consecutive ids of its signals, and the NOTIFY (delivered at commit).
    const insert = () =>
      db.pool.query(
        `WITH inserted AS (
           INSERT INTO ${db.s}.records (received_at_ms, kind, signal, time_unix_nano, correlation_id, trace_id, span_id,
             project, source, name, duration_ms, body)
           SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
             $9::text[], $10::text[], $11::float8[], $12::text[])
           RETURNING id, signal
         ), routed AS (
           SELECT route.exporter, inserted.id, inserted.id - row_number() OVER (PARTITION BY route.exporter ORDER BY inserted.id) AS run
           FROM inserted JOIN unnest($13::text[], $14::smallint[]) AS route (signal, exporter) USING (signal)
         ), queued AS (
           INSERT INTO ${db.s}.delivery_ranges (exporter, from_id, to_id)
           SELECT exporter, min(id), max(id) FROM routed GROUP BY exporter, run
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

  async pendingTexts(exporterId: string, limit: number, afterId = 0): Promise<StoredText[]> {
    const { db } = this;
    const exporter = this.#num(exporterId);
    const { records, claimed } = await tx(db, async (c) => {
      // Claimers of one exporter take turns (for the length of a claim): a range is claimed
      // whole or split, and one claimer skipping a range another is splitting would take newer
      // records first. SKIP LOCKED then only passes over ranges being marked delivered.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${db.options.schema}:claim:${exporter}`]);
      // At most `limit` ranges hold at least `limit` ids.
      const { rows } = await c.query<RangeRow>(
        `SELECT from_id, to_id, claimed_by, claimed_until FROM ${db.s}.delivery_ranges
         WHERE exporter = $1 AND to_id > $2 AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $3)
         ORDER BY from_id LIMIT $4
         FOR UPDATE SKIP LOCKED`,
        [exporter, afterId, db.instanceId, limit],
      );
      const take: IdRange[] = [];
      const froms: number[] = [];
      let n = 0;
      for (const row of rows) {
        if (n === limit) break;
        const from = Math.max(Number(row.from_id), afterId + 1);
        const to = Number(row.to_id);
        froms.push(Number(row.from_id));
        if (n + (to - from + 1) <= limit) {
          take.push([from, to]);
          n += to - from + 1;
          continue;
        }
        // Split: this batch claims the head; the tail keeps the claim it had (none, expired, ours).
        const cut = from + (limit - n) - 1;
        await c.query(`UPDATE ${db.s}.delivery_ranges SET to_id = $3 WHERE exporter = $1 AND from_id = $2`, [exporter, row.from_id, cut]);
        await c.query(`INSERT INTO ${db.s}.delivery_ranges (exporter, from_id, to_id, claimed_by, claimed_until) VALUES ($1, $2, $3, $4, $5)`, [
          exporter,
          cut + 1,
          to,
          row.claimed_by,
          row.claimed_until,
        ]);
        take.push([from, cut]);
        n = limit;
      }
      if (take.length === 0) return { records: [], claimed: 0 };
      await c.query(
        `UPDATE ${db.s}.delivery_ranges SET claimed_by = $2, claimed_until = now() + $3 * interval '1 millisecond' WHERE exporter = $1 AND from_id = ANY($4::bigint[])`,
        [exporter, db.instanceId, db.options.claimTimeoutMs, froms],
      );
      const found = await c.query<{ id: string; received_at_ms: string; kind: RecordKind; body: string }>(
        `SELECT r.id, r.received_at_ms, r.kind, r.body FROM unnest($1::bigint[], $2::bigint[]) AS g (lo, hi) JOIN ${db.s}.records r ON r.id BETWEEN g.lo AND g.hi ORDER BY r.id`,
        [take.map((r) => r[0]), take.map((r) => r[1])],
      );
      return { records: found.rows, claimed: n };
    });
    if (claimed < limit) await this.#wakeWhenClaimsExpire(exporterId, exporter);
    return records.map((r) => ({ id: Number(r.id), receivedAtMs: Number(r.received_at_ms), kind: r.kind, json: r.body }));
  }

  /** Other instances hold claims we may have to take over: wake our exporters when they expire. */
  async #wakeWhenClaimsExpire(exporterId: string, exporter: number): Promise<void> {
    const { db } = this;
    const { rows } = await db.pool.query<{ ms: number | null }>(
      `SELECT (extract(epoch FROM min(claimed_until) - now()) * 1000)::float8 AS ms FROM ${db.s}.delivery_ranges
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
    const { db } = this;
    const exporter = this.#num(exporterId);
    const sorted = sortedIds(ids);
    if (sorted.length === 0) return;
    await tx(db, async (c) => {
      // Only the ranges holding one of the ids, locked in FIFO order (so two markers never deadlock).
      const { rows } = await c.query<RangeRow>(
        `SELECT from_id, to_id, claimed_by, claimed_until FROM ${db.s}.delivery_ranges d
         WHERE exporter = $1 AND from_id <= $2 AND to_id >= $3 AND EXISTS (SELECT 1 FROM unnest($4::bigint[]) AS i (id) WHERE i.id BETWEEN d.from_id AND d.to_id)
         ORDER BY from_id FOR UPDATE`,
        [exporter, sorted.at(-1), sorted[0], sorted],
      );
      if (rows.length === 0) return;
      const left = rows.flatMap((row) => subtract([Number(row.from_id), Number(row.to_id)], sorted).map((range) => ({ range, row })));
      await c.query(`DELETE FROM ${db.s}.delivery_ranges WHERE exporter = $1 AND from_id = ANY($2::bigint[])`, [exporter, rows.map((r) => r.from_id)]);
      if (left.length === 0) return;
      // What is left of each range keeps that range's claim.
      await c.query(
        `INSERT INTO ${db.s}.delivery_ranges (exporter, from_id, to_id, claimed_by, claimed_until)
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[])`,
        [exporter, left.map((l) => l.range[0]), left.map((l) => l.range[1]), left.map((l) => l.row.claimed_by), left.map((l) => l.row.claimed_until)],
      );
    });
  }

  /** Records waiting for the exporter, across all instances (the queue is shared). */
  async backlog(exporterId: string): Promise<number> {
    const { rows } = await this.db.pool.query<{ n: string }>(
      `SELECT coalesce(sum(to_id - from_id + 1), 0) AS n FROM ${this.db.s}.delivery_ranges WHERE exporter = $1`,
      [this.#num(exporterId)],
    );
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
         UPDATE ${db.s}.delivery_ranges SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1 RETURNING 1
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
