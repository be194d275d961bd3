// The trace view: every span of a correlation id as a tree (parent/child by parentSpanId), with
// status, events and exceptions, and the id's log records in time order. Pure: stored records in,
// a plain view out; the web page, the JSON API and `bitville trace` render it.
import { projectOf, SpanKind } from '../../collector/core/api.js';
import type { AttributeValue, Attributes, StoredRecord } from '../../collector/core/api.js';

type StoredSpanRecord = Extract<StoredRecord, { kind: 'span' }>;
type StoredLogRecord = Extract<StoredRecord, { kind: 'log' }>;

const KIND_NAMES: Record<number, string> = {
  [SpanKind.UNSPECIFIED]: 'unspecified',
  [SpanKind.INTERNAL]: 'internal',
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.PRODUCER]: 'producer',
  [SpanKind.CONSUMER]: 'consumer',
};

export interface SpanException {
  type: string | null;
  message: string | null;
  stacktrace: string | null;
}

export interface TreeEvent {
  name: string;
  /** Relative to the trace's start (ms). */
  offsetMs: number;
  attributes: Attributes;
  /** Set for OpenTelemetry exception events (`exception.type`, `.message`, `.stacktrace`). */
  exception: SpanException | null;
}

export interface TreeSpan {
  spanId: string;
  traceId: string;
  /** '' for a root; a parent not stored for this id makes the span a root as well. */
  parentSpanId: string;
  /** Nesting level in the tree, 0 for roots. */
  depth: number;
  name: string;
  kind: string;
  /** `service.name` of the span's resource. */
  service: string;
  /** Relative to the trace's start (ms). */
  offsetMs: number;
  durationMs: number;
  status: { code: 'unset' | 'ok' | 'error'; message: string };
  events: TreeEvent[];
  attributes: Attributes;
  /** A DB statement's text (`db.query.text`, `db.statement`), else null. */
  statement: string | null;
  /** Nested under the request span by the correlation join (it named no stored parent). */
  joinedByCorrelation: boolean;
}

export interface TraceLog {
  /** ISO 8601 and relative to the trace's start (ms). */
  time: string;
  offsetMs: number;
  severity: string;
  severityNumber: number;
  service: string;
  body: string;
  /** The span it was emitted in, '' when none. */
  spanId: string;
  attributes: Attributes;
}

export interface SpanTree {
  /** Earliest span start (ISO 8601); null without spans. */
  start: string | null;
  /** From the earliest span start to the latest span end (ms). */
  extentMs: number;
  /** Depth-first, children by start time: the order to draw them in. */
  spans: TreeSpan[];
  /** Every log record of the id, oldest first. */
  logs: TraceLog[];
  services: string[];
  errorCount: number;
}

/** The span tree and logs of one id's stored records (re-delivered copies count once). */
export function spanTreeOf(records: readonly StoredRecord[], adopt?: { parentSpanId: string; spanIds: ReadonlySet<string> }): SpanTree {
  const seen = new Set<string>();
  const spans: StoredSpanRecord[] = [];
  for (const r of records) {
    if (r.kind !== 'span') continue;
    const key = `${r.traceId}/${r.spanId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    spans.push(r);
  }
  const logs = records.filter((r): r is StoredLogRecord => r.kind === 'log');
  const starts = [...spans.map((s) => BigInt(s.startTimeUnixNano))];
  // Without spans, the logs set the time origin.
  if (starts.length === 0) starts.push(...logs.map((l) => BigInt(l.timeUnixNano)));
  const startNs = starts.length ? starts.reduce((a, b) => (b < a ? b : a)) : 0n;
  const endNs = spans.length ? spans.map((s) => BigInt(s.endTimeUnixNano)).reduce((a, b) => (b > a ? b : a)) : startNs;
  const offset = (ns: string) => Number(BigInt(ns) - startNs) / 1e6;

  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, StoredSpanRecord[]>();
  const roots: StoredSpanRecord[] = [];
  const adopted = new Set<string>();
  for (const s of spans) {
    let parent = s.parentSpanId;
    // DB spans tied to the request by correlation id only (no sqlcommenter parent) go under it.
    if (adopt && (parent === '' || !ids.has(parent)) && s.spanId !== adopt.parentSpanId && adopt.spanIds.has(s.spanId) && ids.has(adopt.parentSpanId)) {
      parent = adopt.parentSpanId;
      adopted.add(s.spanId);
    }
    if (parent !== '' && parent !== s.spanId && ids.has(parent)) {
      const list = children.get(parent) ?? [];
      list.push(s);
      children.set(parent, list);
    } else roots.push(s);
  }
  const byStart = (a: StoredSpanRecord, b: StoredSpanRecord) => {
    const d = BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano);
    return d < 0n ? -1 : d > 0n ? 1 : a.id - b.id;
  };
  const out: TreeSpan[] = [];
  const placed = new Set<string>();
  const walk = (s: StoredSpanRecord, depth: number) => {
    // A parent cycle (bad ids from a sender) must not loop forever.
    if (placed.has(s.spanId)) return;
    placed.add(s.spanId);
    out.push({ ...treeSpanOf(s, depth, offset), joinedByCorrelation: adopted.has(s.spanId) });
    for (const c of (children.get(s.spanId) ?? []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  // Spans caught in a cycle have no root: show them at the top level rather than lose them.
  for (const s of spans.sort(byStart)) if (!placed.has(s.spanId)) walk(s, 0);

  const byTime = (a: StoredLogRecord, b: StoredLogRecord) => {
    const d = BigInt(a.timeUnixNano) - BigInt(b.timeUnixNano);
    return d < 0n ? -1 : d > 0n ? 1 : a.id - b.id;
  };
  return {
    start: starts.length ? isoOf(startNs) : null,
    extentMs: Number(endNs - startNs) / 1e6,
    spans: out,
    logs: logs.sort(byTime).map((l) => ({
      time: isoOf(BigInt(l.timeUnixNano)),
      offsetMs: offset(l.timeUnixNano),
      severity: l.severityText || severityName(l.severityNumber),
      severityNumber: l.severityNumber,
      service: projectOf(l),
      body: bodyText(l.body),
      spanId: l.spanId,
      attributes: l.attributes,
    })),
    services: [...new Set(out.map((s) => s.service).filter((s) => s !== ''))],
    errorCount: out.filter((s) => s.status.code === 'error').length,
  };
}

function treeSpanOf(s: StoredSpanRecord, depth: number, offset: (ns: string) => number): Omit<TreeSpan, 'joinedByCorrelation'> {
  return {
    spanId: s.spanId,
    traceId: s.traceId,
    parentSpanId: s.parentSpanId,
    depth,
    name: s.name,
    kind: KIND_NAMES[s.spanKind] ?? String(s.spanKind),
    service: projectOf(s),
    offsetMs: offset(s.startTimeUnixNano),
    durationMs: s.durationMs,
    status: { code: s.status.code === 2 ? 'error' : s.status.code === 1 ? 'ok' : 'unset', message: s.status.message },
    events: s.events.map((e) => ({
      name: e.name,
      offsetMs: offset(e.timeUnixNano),
      attributes: e.attributes,
      exception:
        e.name === 'exception'
          ? { type: str(e.attributes['exception.type']), message: str(e.attributes['exception.message']), stacktrace: str(e.attributes['exception.stacktrace']) }
          : null,
    })),
    attributes: s.attributes,
    statement: str(s.attributes['db.query.text']) ?? str(s.attributes['db.statement']),
  };
}

/** The span tree for terminals: indented names, bars to scale in `width` columns, then the logs. */
export function formatSpanTree(tree: SpanTree, width = 40): string[] {
  const scale = tree.extentMs > 0 ? width / tree.extentMs : 0;
  const bar = (offsetMs: number, durationMs: number, fill: string) => {
    const from = Math.max(0, Math.min(width - 1, Math.floor(offsetMs * scale)));
    const len = Math.max(1, Math.min(width - from, Math.round(durationMs * scale)));
    return `|${' '.repeat(from)}${fill.repeat(len)}${' '.repeat(width - from - len)}|`;
  };
  const lines = [`spans (${tree.spans.length}${tree.services.length ? `, services: ${tree.services.join(', ')}` : ''}${tree.errorCount ? `, ${tree.errorCount} with errors` : ''})`];
  for (const s of tree.spans) {
    const pad = '  '.repeat(s.depth);
    const err = s.status.code === 'error' ? `  [error${s.status.message ? `: ${oneLine(s.status.message, 80)}` : ''}]` : '';
    lines.push(`${bar(s.offsetMs, s.durationMs, s.status.code === 'error' ? '!' : '=')} ${`${s.durationMs.toFixed(1)} ms`.padStart(10)}  ${pad}${s.name} (${s.kind}${s.service ? `, ${s.service}` : ''})${s.statement ? `  ${oneLine(s.statement, 80)}` : ''}${err}`);
    for (const e of s.events) {
      const at = `@${e.offsetMs.toFixed(1)} ms`;
      if (e.exception) {
        const heading = [e.exception.type, e.exception.message].filter((x) => x).join(': ');
        lines.push(`${' '.repeat(width + 14)}${pad}  ! exception ${at}: ${heading}`);
        // A JS or Python stack repeats the heading on its first line.
        const stack = (e.exception.stacktrace ?? '').split('\n').filter((l) => l.trim() !== '');
        if (stack[0]?.trim() === heading) stack.shift();
        for (const l of stack.slice(0, 8)) lines.push(`${' '.repeat(width + 14)}${pad}      ${l.trim()}`);
        if (stack.length > 8) lines.push(`${' '.repeat(width + 14)}${pad}      ... ${stack.length - 8} more lines (--json for all)`);
      } else lines.push(`${' '.repeat(width + 14)}${pad}  * ${e.name} ${at}`);
    }
  }
  if (tree.logs.length > 0) {
    lines.push('', `logs (${tree.logs.length})`);
    for (const l of tree.logs) lines.push(`  ${`${l.offsetMs >= 0 ? '+' : ''}${l.offsetMs.toFixed(1)} ms`.padStart(12)}  ${l.severity.padEnd(5)}  ${l.service ? `${l.service}  ` : ''}${oneLine(l.body, 160)}`);
  }
  return lines;
}

function severityName(n: number): string {
  if (n <= 0) return '-';
  return ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'][Math.min(5, Math.floor((n - 1) / 4))]!;
}

function bodyText(v: AttributeValue): string {
  return typeof v === 'string' ? v : v === null ? '' : JSON.stringify(v);
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function isoOf(ns: bigint): string {
  const neg = ns < 0n ? 0n : ns;
  return `${new Date(Number(neg / 1_000_000n)).toISOString().slice(0, 23)}${(neg % 1_000_000n).toString().padStart(6, '0').slice(0, 3)}Z`;
}

function str(v: AttributeValue | undefined): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}
