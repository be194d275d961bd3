// The SQLite store's schema, one migration per version (PRAGMA user_version). Every step is
// forward-only and keeps what earlier versions stored, delivery state included.
import type Database from 'better-sqlite3';

type Migration = string | ((db: Database.Database) => void);

/** Exporters whose delivery sets the `forwarded_to_graylog` column: ids `gelf` and `gelf/<name>`. */
export const GELF_EXPORTER = (id: string): boolean => id === 'gelf' || id.startsWith('gelf/');

const MIGRATIONS: Migration[] = [
  `CREATE TABLE records (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     signal TEXT NOT NULL,
     time_unix_nano INTEGER NOT NULL,
     received_at_ms INTEGER NOT NULL,
     correlation_id TEXT,
     trace_id TEXT,
     span_id TEXT,
     project TEXT,
     source TEXT,
     name TEXT,
     duration_ms REAL,
     body TEXT NOT NULL,
     forwarded_to_graylog INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX records_correlation ON records(correlation_id) WHERE correlation_id IS NOT NULL;
   CREATE INDEX records_time ON records(time_unix_nano);
   CREATE TABLE exporters (id TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE, start_after INTEGER NOT NULL);`,
  // Components' durable state (ComponentState in api.ts).
  `CREATE TABLE component_state (
     component TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     updated_at_ms INTEGER NOT NULL,
     PRIMARY KEY (component, key)
   ) WITHOUT ROWID;`,
  // Summaries are a small share of the rows: partial indexes over them alone find an id's
  // newest summary (the correlation join) and rank the summaries of a time range (lookups;
  // covering, so ranking reads no table rows).
  `CREATE INDEX records_summary_by_correlation ON records(correlation_id, id) WHERE kind = 'summary';
   CREATE INDEX records_summary_by_time ON records(received_at_ms, duration_ms, time_unix_nano, project, correlation_id) WHERE kind = 'summary';`,
  // Version 4: delivery progress moves from one bit per exporter in `forwarded_to_graylog` (at
  // most 62 exporters, and broken past 31 by 32-bit masks) to a queue table as in PostgreSQL:
  // one narrow row per record still to deliver to an exporter; delivering deletes it. The
  // primary key (exporter, record_id) is each exporter's FIFO index. `forwarded_to_graylog`
  // becomes the design's plain 0/1 flag: 1 once every GELF exporter that received the record
  // has delivered it. What was pending stays pending; what was delivered stays delivered.
  (db) => {
    db.exec(`
      CREATE TABLE deliveries (exporter INTEGER NOT NULL, record_id INTEGER NOT NULL, PRIMARY KEY (exporter, record_id)) WITHOUT ROWID;
      INSERT INTO deliveries (exporter, record_id)
        SELECT e.bit, r.id FROM exporters e JOIN records r ON r.id > e.start_after AND (r.forwarded_to_graylog & (1 << e.bit)) = 0;
      ALTER TABLE exporters RENAME COLUMN bit TO num;
      -- signals: the exporter's signals as last configured, comma-separated (for reading only).
      ALTER TABLE exporters ADD COLUMN signals TEXT NOT NULL DEFAULT '';`);
    const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'records_pending_%'").all() as { name: string }[];
    for (const { name } of indexes) db.exec(`DROP INDEX "${name}"`);
    // Old masks with several bits set become 1 or 0 by the GELF exporters' state; rows that
    // are already 0 or 1 (a single GELF exporter: the usual case) are not rewritten.
    const gelf = (db.prepare('SELECT id, num FROM exporters').all() as { id: string; num: number }[]).filter((e) => GELF_EXPORTER(e.id)).map((e) => e.num);
    db.prepare(
      `UPDATE records SET forwarded_to_graylog = CASE
         WHEN EXISTS (SELECT 1 FROM deliveries d, json_each(?) g WHERE d.exporter = g.value AND d.record_id = records.id) THEN 0 ELSE 1 END
       WHERE forwarded_to_graylog NOT IN (0, 1)`,
    ).run(JSON.stringify(gelf));
  },
  // Version 5: rollups (core/rollup.ts): named numbers per series, resolution, interval and key,
  // added to in the transaction of the record they came with; `rollup_once` remembers which
  // contributions were added, for an hour, so a duplicate is not counted twice.
  `CREATE TABLE rollups (
     series TEXT NOT NULL,
     resolution_ms INTEGER NOT NULL,
     bucket_ms INTEGER NOT NULL,
     key TEXT NOT NULL,
     fields TEXT NOT NULL,
     PRIMARY KEY (series, resolution_ms, bucket_ms, key)
   ) WITHOUT ROWID;
   CREATE TABLE rollup_once (once TEXT PRIMARY KEY, added_at_ms INTEGER NOT NULL) WITHOUT ROWID;
   CREATE INDEX rollup_once_time ON rollup_once(added_at_ms);`,
  // Version 6: progress as id ranges (store/ranges.ts): one row per run of consecutive ids still
  // to deliver to an exporter, instead of one row per record. Each exporter's queue rows become
  // the runs they form; what was pending stays pending.
  `CREATE TABLE delivery_ranges (exporter INTEGER NOT NULL, from_id INTEGER NOT NULL, to_id INTEGER NOT NULL, PRIMARY KEY (exporter, from_id)) WITHOUT ROWID;
   INSERT INTO delivery_ranges (exporter, from_id, to_id)
     SELECT exporter, min(record_id), max(record_id) FROM (
       SELECT exporter, record_id, record_id - row_number() OVER (PARTITION BY exporter ORDER BY record_id) AS run FROM deliveries)
     GROUP BY exporter, run;
   DROP TABLE deliveries;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Applies the missing migrations, each in its own transaction. */
export function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(`the store is at schema version ${version}, newer than this collector knows (${MIGRATIONS.length}); upgrade the collector`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      const step = MIGRATIONS[v]!;
      if (typeof step === 'string') db.exec(step);
      else step(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
