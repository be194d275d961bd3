// The join's inputs collected as records pass the processor, so a join need not read back and
// parse what was just stored. Memory is a cache the store validates: at join time the store's
// list of the id's records (ids, kinds and span ids, no bodies) must match what passed here,
// record for record in order; then the remembered records get their store ids and the join runs
// on them. Anything else (records that reached the store another way, a commit that failed, a
// restart, a late span after an earlier join) reads the records back, as before.
//
// Each statement is kept small, so that more fit under the cap: what varies from one statement
// to the next (name, text, times, status) in a Statement, what the statements of a request share
// (trace, parent, scope, the other DB attributes) once, in a Shape, and recurring names and texts
// once. The join gets full span records, built when it runs.
import type { Attributes, FlatRecord, RecordReader, RecordRef, SpanRecord, StoredRecord } from '../../collector/core/api.js';
import { SpanKind } from '../../collector/core/api.js';
import { END_UNCERTAINTY, queryTextOf } from './join.js';
import { OPENER_HOST_KEY, OPENER_PID } from './workers.js';

/** The attributes of a DB span the join reads besides its text and uncertainty; the rest is not kept. */
const SHAPE_ATTRIBUTES = ['db.system.name', 'db.system', OPENER_PID, OPENER_HOST_KEY];
/** Records remembered per id; an id with more is read back from the store. */
const MAX_PER_ID = 5_000;
/** Distinct names and texts shared among kept statements before the table starts over. */
const MAX_STRINGS = 50_000;
/**
 * Records remembered in all (a statement costs about 255 bytes of heap: some 10 MiB at the cap);
 * beyond it new ids are read back. A 10 s window at 4,000 statements/s fits. Holding more did
 * not pay (docs/correlation.md): at 10,000 spans/s, 120,000 records saved no CPU that could be
 * told from the noise and cost 25 MiB more RSS.
 */
const MAX_KEPT = 40_000;

export interface JoinRead {
  records: StoredRecord[];
  /** True when the records came from memory (validated), false when read back. */
  fromMemory: boolean;
}

export class JoinInputs {
  /** id -> the records that passed, in order (null: too many, read back instead). */
  readonly #byId = new Map<string, Kept | null>();
  readonly #maxKept: number;
  /** Records kept now, over every id. */
  #kept = 0;
  /** Names and statement texts, one copy each: a site runs the same statements over and over. */
  readonly #strings = new Map<string, string>();
  readonly #once = (value: string): string => {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= MAX_STRINGS) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  };

  constructor(maxKept = MAX_KEPT) {
    this.#maxKept = maxKept;
  }

  /** Remembers a record of a pending id. */
  add(record: FlatRecord): void {
    const id = record.correlationId;
    let kept = this.#byId.get(id);
    if (kept === null) return;
    if (kept === undefined) {
      // A new id over the cap is not kept at all (read back when joined).
      if (this.#kept >= this.#maxKept) return;
      kept = new Kept();
      this.#byId.set(id, kept);
    } else if (kept.spanIds.length >= MAX_PER_ID || this.#kept >= this.#maxKept) {
      this.#kept -= kept.spanIds.length;
      this.#byId.set(id, null);
      return;
    }
    kept.add(record, this.#once);
    this.#kept++;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Records remembered now, over every id. */
  get kept(): number {
    return this.#kept;
  }

  /**
   * The id's stored records: from memory when the store confirms it holds exactly those, else
   * read back. Memory of the id is handed over (records that pass later start a new list).
   */
  async read(reader: RecordReader, id: string): Promise<JoinRead> {
    const kept = this.#byId.get(id);
    this.#byId.delete(id);
    if (kept) {
      this.#kept -= kept.spanIds.length;
      const refs = await reader.correlationIndex(id);
      const others = refs.filter((r) => r.kind !== 'summary');
      if (kept.matches(others)) {
        const records = others.map((ref, i) => kept.record(i, ref.id, ref.receivedAtMs));
        // A summary counts for the join by its store id and summary id (its span id) alone.
        for (const s of refs) if (s.kind === 'summary') records.push(summaryRef(id, s.id, s.spanId, s.receivedAtMs));
        return { records, fromMemory: true };
      }
    }
    return { records: await reader.byCorrelationId(id), fromMemory: false };
  }
}

/** One id's records as they passed, in order. */
class Kept {
  /** Each record's span id ('' for records without one), to compare with the store's index. */
  readonly spanIds: string[] = [];
  /** Each record: a Statement for spans other than requests, else the record itself. */
  readonly items: (Statement | FlatRecord)[] = [];
  /** The shape the last statement had: a request's statements mostly share one. */
  #shape: Shape | undefined;

  /** `once`: the shared copy of a recurring string. */
  add(r: FlatRecord, once: (s: string) => string): void {
    this.spanIds.push(r.spanId);
    if (r.kind !== 'span' || r.spanKind === SpanKind.SERVER) {
      this.items.push(r);
      return;
    }
    if (!this.#shape || !this.#shape.fits(r)) this.#shape = new Shape(r);
    const u = r.attributes[END_UNCERTAINTY];
    const status = r.status.code === 0 && r.status.message === '' ? UNSET : r.status;
    this.items.push(
      new Statement(this.#shape, once(r.name), once(queryTextOf(r)), r.startTimeUnixNano, r.endTimeUnixNano, r.durationMs, status, typeof u === 'number' ? u : undefined),
    );
  }

  matches(refs: readonly RecordRef[]): boolean {
    return refs.length === this.items.length && refs.every((ref, i) => ref.kind === this.items[i]!.kind && ref.spanId === this.spanIds[i]);
  }

  /** The i-th record as stored: a statement rebuilt as a span; a record kept whole, copied (it belongs to the pipeline). */
  record(i: number, id: number, receivedAtMs: number): StoredRecord {
    const item = this.items[i]!;
    return item instanceof Statement ? item.span(this.spanIds[i]!, id, receivedAtMs) : { ...item, id, receivedAtMs };
  }
}

/** What one statement (any span but a request) has of its own. */
class Statement {
  constructor(
    readonly shape: Shape,
    readonly name: string,
    /** The text the join reads (queryTextOf): the query text, or the span's name without one. */
    readonly text: string,
    readonly start: string,
    readonly end: string,
    readonly durationMs: number,
    readonly status: SpanRecord['status'],
    readonly uncertainty: number | undefined,
  ) {}

  /** On the prototype, not in every instance. */
  get kind(): 'span' {
    return 'span';
  }

  /** The span as the join reads it: its shape's fields, its own, and no resource, events or links. */
  span(spanId: string, id: number, receivedAtMs: number): StoredRecord {
    const s = this.shape;
    const attributes: Attributes = { ...s.attributes, 'db.query.text': this.text };
    if (this.uncertainty !== undefined) attributes[END_UNCERTAINTY] = this.uncertainty;
    return {
      kind: 'span',
      id,
      receivedAtMs,
      resource: NO_ATTRIBUTES,
      scope: s.scope,
      attributes,
      traceId: s.traceId,
      spanId,
      correlationId: s.correlationId,
      parentSpanId: s.parentSpanId,
      traceState: s.traceState,
      name: this.name,
      spanKind: s.spanKind,
      startTimeUnixNano: this.start,
      endTimeUnixNano: this.end,
      durationMs: this.durationMs,
      status: this.status,
      events: NO_EVENTS,
      links: NO_LINKS,
      flags: s.flags,
    };
  }
}

/** What statements of one request share: everything the join reads of a span but what a Statement holds. */
class Shape {
  readonly traceId: string;
  readonly correlationId: string;
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly spanKind: number;
  readonly flags: number;
  readonly scope: SpanRecord['scope'];
  readonly attributes: Attributes = {};

  constructor(r: SpanRecord) {
    this.traceId = r.traceId;
    this.correlationId = r.correlationId;
    this.parentSpanId = r.parentSpanId;
    this.traceState = r.traceState;
    this.spanKind = r.spanKind;
    this.flags = r.flags;
    this.scope = r.scope;
    for (const key of SHAPE_ATTRIBUTES) {
      const v = r.attributes[key];
      if (v !== undefined) this.attributes[key] = v;
    }
  }

  /** Whether the span has this shape (the scope by identity: a batch's spans share one object). */
  fits(r: SpanRecord): boolean {
    if (
      r.traceId !== this.traceId ||
      r.parentSpanId !== this.parentSpanId ||
      r.spanKind !== this.spanKind ||
      r.flags !== this.flags ||
      r.traceState !== this.traceState ||
      r.scope !== this.scope
    )
      return false;
    for (const key of SHAPE_ATTRIBUTES) if (r.attributes[key] !== this.attributes[key]) return false;
    return true;
  }
}

// Shared by every rebuilt span: the join never changes a record.
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
