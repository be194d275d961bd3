// The two bounded tiers events wait in until the collector acknowledges them.
//
// Memory is the intake tier: add() only appends to a list, so capture code never waits on I/O.
// persist() commits that list to SQLite in one transaction (group commit); the runtime calls it
// every `persist_interval` (100 ms) and whenever a batch's worth is waiting. The disk tier is
// the queue the exporter reads, oldest first, and rows are deleted only after a 2xx (or a
// permanent rejection). So an accepted event is on disk within persist_interval, and a kill -9
// loses at most what arrived in that window; everything older is replayed after a restart.
// The memory bound matters when the disk cannot take writes (full, I/O errors): events then
// wait in memory, and beyond the bound the oldest are dropped. Beyond the disk bound the oldest
// rows are dropped. Either way the drops are counted.
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export interface BufferLimits {
  memoryBytes: number;
  diskBytes: number;
}

export interface StoredEvent {
  id: number;
  json: string;
}

export type DropReason = 'memory_full' | 'disk_full';

interface Staged {
  json: string;
  size: number;
  acceptedAt: number;
}

export class BufferInUseError extends Error {}

export class EventBuffer {
  private readonly memory: Staged[] = [];
  private memoryHead = 0;
  private db!: Database.Database;
  private statements!: {
    insert: Database.Statement<[number, number, string]>;
    peek: Database.Statement<[number]>;
    oldest: Database.Statement<[]>;
    victims: Database.Statement<[number]>;
    remove: Database.Statement<[number]>;
  };
  private inFlightMaxId = 0;
  memoryBytes = 0;
  diskEvents = 0;
  diskBytes = 0;

  constructor(
    private readonly path: string,
    private readonly limits: BufferLimits,
    private readonly onDrop: (count: number, reason: DropReason) => void,
  ) {}

  get memoryEvents(): number {
    return this.memory.length - this.memoryHead;
  }

  /**
   * Opens (or creates) the disk tier and takes an exclusive lock on it. The file holds URLs and
   * error messages: it is created 0600 (and an existing one tightened) whatever the umask, and a
   * directory the runtime creates is 0700. SQLite gives its -wal and -shm files the database
   * file's mode; ones left by an older version are tightened too.
   */
  open(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    closeSync(openSync(this.path, 'a', 0o600));
    for (const file of [this.path, `${this.path}-wal`, `${this.path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
    this.db = new Database(this.path, { timeout: 0 });
    try {
      // Exclusive locking: a second agent on the same file fails here instead of exporting twice.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a process kill; only an OS crash can lose the last commits.
      this.db.pragma('synchronous = NORMAL');
      this.db.exec('BEGIN IMMEDIATE; COMMIT');
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new BufferInUseError(`the buffer file ${this.path} is in use by another agent process`);
      throw err;
    }
    this.db.exec(`CREATE TABLE IF NOT EXISTS events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      accepted_at INTEGER NOT NULL,
      size INTEGER NOT NULL,
      body TEXT NOT NULL)`);
    this.statements = {
      insert: this.db.prepare('INSERT INTO events (accepted_at, size, body) VALUES (?, ?, ?)'),
      peek: this.db.prepare('SELECT id, body AS json FROM events ORDER BY id LIMIT ?'),
      oldest: this.db.prepare('SELECT accepted_at AS acceptedAt FROM events ORDER BY id LIMIT 1'),
      victims: this.db.prepare('SELECT id, size FROM events WHERE id > ? ORDER BY id LIMIT 500'),
      remove: this.db.prepare('DELETE FROM events WHERE id = ? RETURNING size'),
    };
    const totals = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM events').get() as { n: number; bytes: number };
    this.diskEvents = totals.n;
    this.diskBytes = totals.bytes;
  }

  /** Accepts one serialized event into memory. Never does I/O. */
  add(json: string, acceptedAt = Date.now()): void {
    const size = Buffer.byteLength(json);
    this.memory.push({ json, size, acceptedAt });
    this.memoryBytes += size;
    let dropped = 0;
    while (this.memoryBytes > this.limits.memoryBytes && this.memoryEvents > 1) {
      this.memoryBytes -= this.memory[this.memoryHead++]!.size;
      dropped++;
    }
    if (dropped) this.onDrop(dropped, 'memory_full');
    if (this.memoryHead > 1024 && this.memoryHead * 2 > this.memory.length) this.memory.splice(0, this.memoryHead), (this.memoryHead = 0);
  }

  /** Commits everything in memory to disk in one transaction; on a disk error it stays in memory and the error is thrown. */
  persist(): void {
    if (this.memoryEvents === 0) return;
    const staged = this.memory.slice(this.memoryHead);
    this.db.transaction(() => {
      for (const e of staged) this.statements.insert.run(e.acceptedAt, e.size, e.json);
    })();
    this.memory.length = 0;
    this.memoryHead = 0;
    this.memoryBytes = 0;
    this.diskEvents += staged.length;
    this.diskBytes += staged.reduce((sum, e) => sum + e.size, 0);
    this.enforceDiskLimit();
  }

  /** Drops the oldest rows that are not being exported until the disk tier fits its bound. */
  private enforceDiskLimit(): void {
    let dropped = 0;
    this.db.transaction(() => {
      while (this.diskBytes > this.limits.diskBytes) {
        const victims = this.statements.victims.all(this.inFlightMaxId) as { id: number; size: number }[];
        if (victims.length === 0) break;
        for (const v of victims) {
          if (this.diskBytes <= this.limits.diskBytes) break;
          this.statements.remove.run(v.id);
          this.diskBytes -= v.size;
          this.diskEvents--;
          dropped++;
        }
      }
    })();
    if (dropped) this.onDrop(dropped, 'disk_full');
  }

  /** When the oldest waiting event was accepted (ms since epoch), or undefined when empty. */
  oldestAcceptedAt(): number | undefined {
    const onDisk = this.diskEvents > 0 ? (this.statements.oldest.get() as { acceptedAt: number } | undefined)?.acceptedAt : undefined;
    return onDisk ?? this.memory[this.memoryHead]?.acceptedAt;
  }

  /** The oldest `limit` events on disk; they are protected from drop-oldest until remove() or release(). */
  take(limit: number): StoredEvent[] {
    const rows = this.statements.peek.all(limit) as StoredEvent[];
    this.inFlightMaxId = rows.length ? rows[rows.length - 1]!.id : 0;
    return rows;
  }

  /** Deletes exported (or permanently rejected) events. */
  remove(ids: number[]): void {
    this.db.transaction(() => {
      for (const id of ids) {
        const row = this.statements.remove.get(id) as { size: number } | undefined;
        if (row) {
          this.diskBytes -= row.size;
          this.diskEvents--;
        }
      }
    })();
  }

  /** Ends the protection of the last take(). */
  release(): void {
    this.inFlightMaxId = 0;
  }

  close(): void {
    if (this.db?.open) this.db.close();
  }
}
