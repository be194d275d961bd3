// Reads the server's structured log (jsonlog on PostgreSQL 15+, csvlog before) for the
// `duration: … ms  statement|execute …: <text>` lines that log_min_duration_statement writes,
// so queries shorter than a poll are captured, with durations to the microsecond.
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { QueryObservation } from './observation.js';

export type LogFormat = 'jsonlog' | 'csvlog';

/** The fields of one log record the agent uses. */
export interface LogEntry {
  /** Microseconds since the epoch (the log's resolution is milliseconds). */
  timeUs: bigint;
  pid: number;
  database: string | null;
  applicationName: string | null;
  severity: string;
  message: string;
  queryId: string | undefined;
  /** The client's address and port (TCP connections only). */
  remoteHost?: string;
  remotePort?: number;
}

/** `2024-05-01 12:00:00.123 UTC` (log_timezone should be UTC; numeric offsets and what Date.parse knows also work). */
export function parseLogTime(text: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))? ?(.*)$/.exec(text.trim());
  if (!m) return undefined;
  const zone = m[4]!.trim();
  const iso = `${m[1]}T${m[2]}${zone === '' || zone === 'UTC' || zone === 'GMT' ? 'Z' : /^[+-]\d\d(:?\d\d)?$/.test(zone) ? zone : ` ${zone}`}`;
  const seconds = Date.parse(iso);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0'));
}

export function parseJsonLogLine(line: string): LogEntry | undefined {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const timeUs = typeof rec.timestamp === 'string' ? parseLogTime(rec.timestamp) : undefined;
  if (timeUs === undefined || typeof rec.pid !== 'number' || typeof rec.message !== 'string') return undefined;
  return {
    timeUs,
    pid: rec.pid,
    database: typeof rec.dbname === 'string' ? rec.dbname : null,
    applicationName: typeof rec.application_name === 'string' ? rec.application_name : null,
    severity: String(rec.error_severity ?? ''),
    message: rec.message,
    // A 64-bit number: JSON.parse rounds it, so take the digits from the text.
    queryId: /"query_id":(-?\d+)/.exec(line)?.[1],
    ...(typeof rec.remote_host === 'string' && rec.remote_host !== '[local]' ? { remoteHost: rec.remote_host } : {}),
    ...(typeof rec.remote_port === 'number' ? { remotePort: rec.remote_port } : {}),
  };
}

// csvlog columns (stable since 9.0 for these; query_id added in 14).
const CSV = { time: 0, database: 2, pid: 3, connectionFrom: 4, severity: 11, message: 13, applicationName: 22, queryId: 25 } as const;

export function csvLogEntry(fields: string[]): LogEntry | undefined {
  const timeUs = parseLogTime(fields[CSV.time] ?? '');
  const pid = Number(fields[CSV.pid]);
  if (timeUs === undefined || !Number.isInteger(pid) || fields[CSV.message] === undefined) return undefined;
  const queryId = fields[CSV.queryId];
  // `host:port` for TCP, `[local]` for a Unix socket.
  const from = /^(.*):(\d+)$/.exec(fields[CSV.connectionFrom] ?? '');
  return {
    ...(from ? { remoteHost: from[1]!, remotePort: Number(from[2]) } : {}),
    timeUs,
    pid,
    database: fields[CSV.database] || null,
    applicationName: fields[CSV.applicationName] || null,
    severity: fields[CSV.severity] ?? '',
    message: fields[CSV.message]!,
    queryId: queryId && queryId !== '0' ? queryId : undefined,
  };
}

/**
 * Splits csvlog text into records (RFC 4180: quoted fields may hold commas, doubled quotes and
 * newlines). Incremental: an incomplete last record is kept for the next chunk. Hand-written
 * because it must resume mid-record across reads, which is all it does.
 */
export class CsvRecords {
  private rest = '';

  push(chunk: string): string[][] {
    const text = this.rest + chunk;
    const records: string[][] = [];
    let fields: string[] = [];
    let field = '';
    let quoted = false;
    let recordStart = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') fields.push(field), (field = '');
      else if (c === '\n') {
        fields.push(field);
        records.push(fields);
        (fields = []), (field = ''), (recordStart = i + 1);
      } else if (c !== '\r') field += c;
    }
    this.rest = text.slice(recordStart);
    return records;
  }
}

/** Splits JSON-lines text; an incomplete last line is kept for the next chunk. */
export class JsonLines {
  private rest = '';

  push(chunk: string): string[] {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop()!;
    return lines.filter((l) => l !== '');
  }
}

const DURATION = /^duration: (\d+(?:\.\d+)?) ms {2}(statement|execute [^:]*): ([\s\S]*)$/;

/** The finished query a log entry reports, or undefined for any other line (parse/bind steps, errors, ...). */
/** The server log's timestamps are cut to the millisecond. */
const LOG_TIME_RESOLUTION_US = 1000n;

export function observationFromLog(entry: LogEntry): QueryObservation | undefined {
  if (entry.severity !== 'LOG') return undefined;
  const m = DURATION.exec(entry.message);
  if (!m) return undefined;
  const [whole, frac = ''] = m[1]!.split('.');
  const durationUs = BigInt(whole!) * 1000n + BigInt(frac.padEnd(3, '0').slice(0, 3));
  // The server writes the log time cut (not rounded) to the millisecond, so the statement ended
  // within the millisecond after it: the middle of it is the estimate (taking the time as the
  // end made every log-only span half a millisecond early, enough to start it inside the
  // previous back-to-back statement).
  const endUs = entry.timeUs + LOG_TIME_RESOLUTION_US / 2n;
  return {
    source: 'log',
    pid: entry.pid,
    startUs: endUs - durationUs,
    endUs,
    endPrecision: 'millisecond',
    endUncertaintyUs: LOG_TIME_RESOLUTION_US,
    ...(entry.remoteHost !== undefined ? { clientAddress: entry.remoteHost } : {}),
    ...(entry.remotePort !== undefined ? { clientPort: entry.remotePort } : {}),
    applicationName: entry.applicationName,
    query: m[3]!,
    database: entry.database,
    waitEvents: [],
    queryId: entry.queryId,
    // The log keeps the whole statement; track_activity_query_size only cuts pg_stat_activity.
    truncated: false,
    failed: false,
  };
}

/**
 * Follows the newest log file of one format in a directory: reads what was appended since the
 * last call, finishes a file before moving to a newer one (rotation), and starts at the end of
 * the newest file (history is not replayed). Looks for newer files at most once a second.
 */
export class LogTailer {
  private file: string | undefined;
  private offset = 0;
  private decoder = new StringDecoder('utf8');
  private lastScan = 0;

  constructor(
    readonly directory: string,
    readonly format: LogFormat,
  ) {}

  private get extension(): string {
    return this.format === 'jsonlog' ? '.json' : '.csv';
  }

  async start(): Promise<void> {
    this.file = await this.newest();
    this.offset = this.file ? (await stat(this.file)).size : 0;
    this.lastScan = Date.now();
  }

  /** The text appended since the previous call (possibly ending mid-record). */
  async read(): Promise<string> {
    let text = this.file ? await this.readRest(this.file) : '';
    if (Date.now() - this.lastScan >= 1000 || !this.file) {
      this.lastScan = Date.now();
      const newest = await this.newest();
      if (newest && newest !== this.file) {
        this.file = newest;
        this.offset = 0;
        this.decoder = new StringDecoder('utf8');
        text += await this.readRest(newest);
      }
    }
    return text;
  }

  private async readRest(file: string): Promise<string> {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch {
      return '';
    }
    try {
      const { size } = await handle.stat();
      if (size < this.offset) this.offset = 0; // truncated in place (log_truncate_on_rotation)
      if (size === this.offset) return '';
      const buffer = Buffer.alloc(Math.min(size - this.offset, 16 * 1024 * 1024));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.offset);
      this.offset += bytesRead;
      return this.decoder.write(buffer.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  }

  private async newest(): Promise<string | undefined> {
    const names = (await readdir(this.directory)).filter((n) => n.endsWith(this.extension));
    let best: { path: string; mtime: number } | undefined;
    for (const name of names) {
      const path = join(this.directory, name);
      const mtime = (await stat(path).catch(() => undefined))?.mtimeMs;
      if (mtime !== undefined && (!best || mtime > best.mtime || (mtime === best.mtime && path > best.path))) best = { path, mtime };
    }
    return best?.path;
  }
}
