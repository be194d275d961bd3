// Runs SQLite WAL checkpoints on a thread of their own. A checkpoint copies the WAL into the
// database file and fsyncs; done by the writer (SQLite's automatic checkpoint) it stalls the
// commit that triggers it for tens of milliseconds. Here the writer only says "I committed"
// and never waits; durability is unchanged (commits are in the WAL either way). Commits are
// gathered for a short while before a checkpoint runs: each checkpoint costs fsyncs, and one
// per commit at a hundred commits a second measurably loaded the machine. A checkpoint that
// fails for want of space or I/O is reported (it used to be swallowed); a busy database is not.
import Database from 'better-sqlite3';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const GATHER_MS = 250;

export class Checkpointer {
  readonly #worker: Worker;
  #busy = false;
  #again = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(path: string, onError: (err: Error) => void) {
    this.#worker = new Worker(new URL(import.meta.url), { workerData: { path } });
    this.#worker.on('message', (message: { error?: string; code?: string }) => {
      this.#busy = false;
      if (message.error) onError(Object.assign(new Error(`checkpoint failed: ${message.error}`), { code: message.code }));
      if (this.#again) this.requested();
    });
    this.#worker.unref(); // after the listener, which would otherwise keep the process alive
  }

  /** After a commit: a checkpoint follows within GATHER_MS, one for all commits until then. */
  requested(): void {
    if (this.#busy) {
      this.#again = true;
      return;
    }
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#busy = true;
      this.#again = false;
      this.#worker.postMessage('checkpoint');
    }, GATHER_MS);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#worker.terminate();
  }
}

if (!isMainThread && parentPort && (workerData as { path?: string })?.path) {
  const db = new Database((workerData as { path: string }).path);
  db.pragma('busy_timeout = 5000');
  const port = parentPort;
  port.on('message', () => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
      port.postMessage({});
    } catch (err) {
      const code = (err as { code?: string }).code;
      // A busy database: the next commit asks again. Anything else (a full disk) is reported.
      port.postMessage(code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' ? {} : { error: (err as Error).message, code });
    }
  });
}
