// The join's inputs collected as records pass the processor, so a join need not read back and
// parse what was just stored. Memory is a cache the store validates: at join time the store's
// list of the id's records (ids, kinds and span ids, no bodies) must match what passed here,
// record for record in order; then the remembered records get their store ids and the join runs
// on them. Anything else (records that reached the store another way, a commit that failed, a
// restart, a late span after an earlier join) reads the records back, as before.
import type { Attributes, FlatRecord, RecordReader, SpanRecord, StoredRecord } from '../../collector/core/api.js';
import { SpanKind } from '../../collector/core/api.js';
import { END_UNCERTAINTY } from './join.js';
import { OPENER_HOST_KEY, OPENER_PID } from './workers.js';

/** The attributes of a DB span the join reads; the rest is not kept. */
const DB_ATTRIBUTES = ['db.system.name', 'db.system', 'db.query.text', 'db.statement', END_UNCERTAINTY, OPENER_PID, OPENER_HOST_KEY];
/** Records remembered per id; an id with more is read back from the store. */
const MAX_PER_ID = 5_000;
/**
 * Records remembered in all (about 450 bytes each: some 9 MiB); beyond it new ids are read back.
 * Memory saves a join the parse of its records but holds them for a window; the cap keeps the
 * collector's memory flat whatever the rate and the window (at 10,000 spans/s and a 10 s window
 * most ids are read back; at a PHP site's usual rates all are kept). 50,000 cost 19 MiB of RSS
 * in the pipelines bench.
 */
const MAX_KEPT = 20_000;
/** Distinct strings shared among kept records before the table starts over. */
const MAX_STRINGS = 50_000;

export interface JoinRead {
  records: StoredRecord[];
  /** True when the records came from memory (validated), false when read back. */
  fromMemory: boolean;
}

export class JoinInputs {
  /** id -> the records that passed, in order (null: too many, read back instead). */
  readonly #byId = new Map<string, Kept[] | null>();

  /** Strings that recur across records (trace ids of one request, statement texts, names), kept once. */
  readonly #strings = new Map<string, string>();

  /** Records kept now, over every id. */
  #kept = 0;

  /** Remembers a record of a pending id. */
  add(record: FlatRecord): void {
    const id = record.correlationId;
    const list = this.#byId.get(id);
    if (list === null) return;
    if (list === undefined) {
      // A new id over the cap is not kept at all (read back when joined).
      if (this.#kept >= MAX_KEPT) return;
      this.#byId.set(id, [this.#slim(record)]);
      this.#kept++;
    } else if (list.length >= MAX_PER_ID || this.#kept >= MAX_KEPT) {
      this.#kept -= list.length;
      this.#byId.set(id, null);
    } else {
      list.push(this.#slim(record));
      this.#kept++;
    }
  }

  /** One copy of each recurring string: a kept span is mostly strings, and most of them repeat. */
  #once(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= MAX_STRINGS) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  }

  /**
   * What the join needs of a record: request spans whole; other spans without their resource,
   * events and other attributes, built as one literal so every copy has the same shape (spread
   * copies are slower for the join to read than parsed JSON), recurring strings shared.
   */
  #slim(r: FlatRecord): Kept {
    if (r.kind !== 'span' || r.spanKind === SpanKind.SERVER) return { kind: r.kind, spanId: r.spanId, whole: r };
    const attributes: Attributes = {};
    for (const key of DB_ATTRIBUTES) {
      const v = r.attributes[key];
      if (v !== undefined) attributes[key] = typeof v === 'string' ? this.#once(v) : v;
    }
    const copy: StoredRecord = {
      kind: 'span',
      id: 0,
      receivedAtMs: 0,
      resource: NO_ATTRIBUTES,
      scope: r.scope,
      attributes,
      traceId: this.#once(r.traceId),
      spanId: r.spanId,
      correlationId: this.#once(r.correlationId),
      parentSpanId: this.#once(r.parentSpanId),
      traceState: this.#once(r.traceState),
      name: this.#once(r.name),
      spanKind: r.spanKind,
      startTimeUnixNano: r.startTimeUnixNano,
      endTimeUnixNano: r.endTimeUnixNano,
      durationMs: r.durationMs,
      status: r.status.code === 0 && r.status.message === '' ? UNSET : r.status,
      events: NO_EVENTS,
      links: NO_LINKS,
      flags: r.flags,
    };
    return { kind: 'span', spanId: r.spanId, slim: copy };
  }

  get size(): number {
    return this.#byId.size;
  }

  /**
   * The id's stored records: from memory when the store confirms it holds exactly those, else
   * read back. Memory of the id is handed over (records that pass later start a new list).
   */
  async read(reader: RecordReader, id: string): Promise<JoinRead> {
    const list = this.#byId.get(id);
    this.#byId.delete(id);
    if (list) this.#kept -= list.length;
    if (list) {
      const refs = await reader.correlationIndex(id);
      const others = refs.filter((r) => r.kind !== 'summary');
      if (others.length === list.length && others.every((r, i) => r.kind === list[i]!.kind && r.spanId === list[i]!.spanId)) {
        const records: StoredRecord[] = list.map((k, i) => {
          const { id, receivedAtMs } = others[i]!;
          // A slim copy is ours to stamp; a record kept whole belongs to the pipeline: copied.
          if (k.slim) {
            k.slim.id = id;
            k.slim.receivedAtMs = receivedAtMs;
            return k.slim;
          }
          return { ...k.whole!, id, receivedAtMs };
        });
        // A summary counts for the join by its store id and summary id (its span id) alone.
        for (const s of refs) if (s.kind === 'summary') records.push(summaryRef(id, s.id, s.spanId, s.receivedAtMs));
        return { records, fromMemory: true };
      }
    }
    return { records: await reader.byCorrelationId(id), fromMemory: false };
  }
}

/** A record as kept: its kind and span id (to compare with the store's index) and its content. */
interface Kept {
  kind: FlatRecord['kind'];
  spanId: string;
  /** Spans other than requests: a copy with what the join reads. */
  slim?: StoredRecord;
  /** Request spans, logs and the rest: the record itself. */
  whole?: FlatRecord;
}

// Shared by every kept span: the join never changes a record.
const NO_EVENTS: SpanRecord['events'] = [];
const NO_LINKS: SpanRecord['links'] = [];
const NO_ATTRIBUTES: Attributes = {};
const UNSET: SpanRecord['status'] = { code: 0, message: '' };

function summaryRef(correlationId: string, id: number, spanId: string, receivedAtMs: number): StoredRecord {
  return {
    kind: 'summary',
    id,
    receivedAtMs,
    spanId,
    correlationId,
    traceId: '',
    resource: {},
    scope: { name: '', version: '', attributes: {} },
    attributes: {},
    name: '',
    timeUnixNano: '0',
    durationMs: 0,
  };
}
