// The PostgreSQL store's schema: migrations (one per version, under an advisory lock so
// instances starting together stay in line) and the daily partitions of `records`
// (`records_YYYYMMDD`, UTC), created `partitions_ahead` days ahead and on demand.
import { ROLLUP_RESOLUTIONS } from '../../core/rollup.js';
import type { Db } from './db.js';
import { tx } from './db.js';

export const DAY_MS = 86_400_000;

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
  // Version 2: rollups (core/rollup.ts), added to by a trigger in the transaction that inserts
  // the record a contribution came with (postgres/rollups.ts explains the hand-over), so
  // several instances add to the same rows atomically.
  (s) => `
    CREATE TABLE ${s}.rollups (
      series text NOT NULL,
      resolution_ms integer NOT NULL,
      bucket_ms bigint NOT NULL,
      key text NOT NULL,
      fields jsonb NOT NULL,
      PRIMARY KEY (series, resolution_ms, bucket_ms, key)
    );
    CREATE TABLE ${s}.rollup_once (once text PRIMARY KEY, added_at_ms bigint NOT NULL);
    CREATE INDEX rollup_once_time ON ${s}.rollup_once (added_at_ms);
    -- Key-wise sum of two objects of numbers; keys that reach zero go.
    CREATE FUNCTION ${s}.rollup_add(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
      SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb) FROM (
        SELECT k, sum(v) AS v FROM (
          SELECT key AS k, value::float8 AS v FROM jsonb_each_text(a)
          UNION ALL SELECT key, value::float8 FROM jsonb_each_text(b)) t
        GROUP BY k) s
      WHERE abs(v) >= 1e-9 $$;
    CREATE FUNCTION ${s}.records_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        doc jsonb;
        c jsonb;
        d jsonb;
        res integer;
      BEGIN
        -- One lock for every commit that adds to rollups: upserts of several rows in different
        -- orders by concurrent commits would otherwise deadlock. Such commits are few (summaries).
        PERFORM pg_advisory_xact_lock(hashtext('bitville:' || TG_TABLE_SCHEMA || ':rollups'));
        doc := NEW.body::jsonb;
        c := doc -> 'bitville.rollup';
        NEW.body := (doc - 'bitville.rollup')::text;
        INSERT INTO ${s}.rollup_once (once, added_at_ms) VALUES (c ->> 'once', NEW.received_at_ms) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN RETURN NEW; END IF;
        FOR d IN SELECT jsonb_array_elements(c -> 'deltas') LOOP
          FOREACH res IN ARRAY ARRAY[${ROLLUP_RESOLUTIONS.join(', ')}] LOOP
            INSERT INTO ${s}.rollups AS r (series, resolution_ms, bucket_ms, key, fields)
              VALUES (d ->> 'series', res, floor((d ->> 'atMs')::float8 / res)::bigint * res, d ->> 'key', ${s}.rollup_add('{}'::jsonb, d -> 'add'))
              ON CONFLICT (series, resolution_ms, bucket_ms, key) DO UPDATE SET fields = ${s}.rollup_add(r.fields, EXCLUDED.fields);
          END LOOP;
        END LOOP;
        RETURN NEW;
      END $$;
    -- The WHEN test runs without calling the function, so the records without a contribution
    -- (nearly all) cost the insert no function call.
    CREATE TRIGGER records_rollup BEFORE INSERT ON ${s}.records FOR EACH ROW
      WHEN (left(NEW.body, 20) = '{"bitville.rollup":{') EXECUTE FUNCTION ${s}.records_rollup();`,
  // Version 3: progress as id ranges (store/ranges.ts): one row per run of consecutive ids
  // still to deliver to an exporter, claimed as a whole, instead of one row per record. What
  // was pending stays pending; claims of instances running the old version are dropped.
  (s) => `
    CREATE TABLE ${s}.delivery_ranges (
      exporter smallint NOT NULL,
      from_id bigint NOT NULL,
      to_id bigint NOT NULL,
      claimed_by text,
      claimed_until timestamptz,
      PRIMARY KEY (exporter, from_id)
    );
    INSERT INTO ${s}.delivery_ranges (exporter, from_id, to_id)
      SELECT exporter, min(record_id), max(record_id) FROM (
        SELECT exporter, record_id, record_id - row_number() OVER (PARTITION BY exporter ORDER BY record_id) AS run FROM ${s}.deliveries) q
      GROUP BY exporter, run;
    DROP TABLE ${s}.deliveries;`,
];

/** Applies missing migrations. */
export async function migrate(db: Db): Promise<void> {
  await tx(db, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${db.options.schema}:migrate`]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${db.s}`);
    await c.query(`CREATE TABLE IF NOT EXISTS ${db.s}.schema_version (version integer NOT NULL)`);
    const { rows } = await c.query<{ version: number }>(`SELECT version FROM ${db.s}.schema_version`);
    const version = rows[0]?.version ?? 0;
    if (version > MIGRATIONS.length) {
      throw new Error(`schema ${db.options.schema} is at version ${version}, newer than this collector knows (${MIGRATIONS.length}); upgrade the collector`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) await c.query(MIGRATIONS[v]!(db.s));
    await c.query(`DELETE FROM ${db.s}.schema_version`);
    await c.query(`INSERT INTO ${db.s}.schema_version (version) VALUES ($1)`, [MIGRATIONS.length]);
  });
}

export class Partitions {
  /** Days whose partition this instance knows to exist. */
  readonly #known = new Set<number>();

  constructor(private readonly db: Db) {}

  /** Creates the daily partitions from the one holding `at` to partitions_ahead days after. */
  async ensure(at = this.db.now()): Promise<void> {
    const { db } = this;
    const first = Math.floor(at / DAY_MS) * DAY_MS;
    const days = Array.from({ length: db.options.partitionsAhead + 1 }, (_, i) => first + i * DAY_MS).filter((d) => !this.#known.has(d));
    if (days.length === 0) return;
    await tx(db, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bitville:${db.options.schema}:partitions`]);
      for (const day of days) {
        await c.query(`CREATE TABLE IF NOT EXISTS ${db.s}.${partitionName(day)} PARTITION OF ${db.s}.records FOR VALUES FROM (${day}) TO (${day + DAY_MS})`);
      }
    });
    for (const day of days) this.#known.add(day);
  }

  /** The partitions' days, oldest first. */
  async days(): Promise<number[]> {
    const { rows } = await this.db.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = $1::regclass`,
      [`${this.db.s}.records`],
    );
    return rows
      .map((r) => dayOfPartition(r.name))
      .filter((d): d is number => d !== undefined)
      .sort((a, b) => a - b);
  }

  /** Drops one day's partition and its queue rows; returns the rows dropped, or undefined when the table is busy. */
  async drop(day: number): Promise<number | undefined> {
    const { db } = this;
    const table = `${db.s}.${partitionName(day)}`;
    try {
      return await tx(db, async (c) => {
        // Dropping a partition locks the parent table briefly; never queue inserts behind it for long.
        await c.query("SET LOCAL lock_timeout = '5s'");
        const { rows } = await c.query<{ n: string; last: string | null }>(`SELECT count(*) AS n, max(id) AS last FROM ${table}`);
        const { n, last } = rows[0]!;
        await c.query(`DROP TABLE ${table}`);
        this.#known.delete(day);
        // Ids grow with arrival, so the queued ids of this day's records are those up to its last id.
        if (last !== null) {
          await c.query(`DELETE FROM ${db.s}.delivery_ranges WHERE to_id <= $1`, [last]);
          await c.query(`UPDATE ${db.s}.delivery_ranges SET from_id = $1 + 1 WHERE from_id <= $1`, [last]);
        }
        return Number(n);
      });
    } catch (err) {
      if ((err as { code?: string }).code === '55P03') return undefined; // lock_not_available
      throw err;
    }
  }

  /** Bytes of the records partitions and the delivery ranges. */
  async sizeBytes(): Promise<number> {
    const { rows } = await this.db.pool.query<{ bytes: string }>(
      `SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) + pg_total_relation_size($1::regclass) AS bytes
       FROM pg_inherits i WHERE i.inhparent = $2::regclass`,
      [`${this.db.s}.delivery_ranges`, `${this.db.s}.records`],
    );
    return Number(rows[0]!.bytes);
  }
}

/** `records_20260115` for the UTC day starting at `dayMs`. */
function partitionName(dayMs: number): string {
  return `records_${new Date(dayMs).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

function dayOfPartition(name: string): number | undefined {
  const m = /^records_(\d{4})(\d{2})(\d{2})$/.exec(name);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : undefined;
}
