// The condition language of the filter processor: OTTL's simplest subset (paths, literals,
// enums, comparisons, IsMatch, and/or/not, parentheses), plus two conveniences OTTL lacks
// (`duration_ms` and the `=~` regex match). A condition is parsed once, at config time, into a
// closure over a record: there is no eval and no new Function. A parse error names the column.
import type { AttributeValue, FlatRecord, SpanEvent } from '../../collector/core/api.js';

/** Where a condition runs: otelcol's OTTL contexts that this collector has. */
export type ContextName = 'span' | 'spanevent' | 'log_record';

/** What a condition sees: the record, and for `spanevent` one event of it. */
export interface Subject {
  record: FlatRecord;
  event?: SpanEvent;
}

type Value = AttributeValue | undefined;
type Getter = (s: Subject) => Value;
export type Predicate = (s: Subject) => boolean;

export class ConditionError extends Error {
  constructor(
    readonly column: number,
    message: string,
  ) {
    super(`column ${column}: ${message}`);
  }
}

const ENUMS: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
  STATUS_CODE_UNSET: 0,
  STATUS_CODE_OK: 1,
  STATUS_CODE_ERROR: 2,
  SEVERITY_NUMBER_UNSPECIFIED: 0,
  SEVERITY_NUMBER_TRACE: 1,
  SEVERITY_NUMBER_DEBUG: 5,
  SEVERITY_NUMBER_INFO: 9,
  SEVERITY_NUMBER_WARN: 13,
  SEVERITY_NUMBER_ERROR: 17,
  SEVERITY_NUMBER_FATAL: 21,
};

const span = (s: Subject) => (s.record.kind === 'span' ? s.record : undefined);
const log = (s: Subject) => (s.record.kind === 'log' ? s.record : undefined);

/** The plain paths of each context (attribute maps are handled apart). */
const PATHS: Record<ContextName, Record<string, Getter>> = {
  span: {
    name: (s) => (s.record.kind === 'log' ? undefined : s.record.name),
    kind: (s) => span(s)?.spanKind,
    'status.code': (s) => span(s)?.status.code,
    'status.message': (s) => span(s)?.status.message,
    duration_ms: (s) => (s.record.kind === 'span' || s.record.kind === 'summary' ? s.record.durationMs : undefined),
    start_time_unix_nano: (s) => (span(s) ? Number(span(s)!.startTimeUnixNano) : undefined),
    end_time_unix_nano: (s) => (span(s) ? Number(span(s)!.endTimeUnixNano) : undefined),
    'trace_id.string': (s) => s.record.traceId,
    'span_id.string': (s) => s.record.spanId,
    'parent_span_id.string': (s) => span(s)?.parentSpanId,
    'instrumentation_scope.name': (s) => s.record.scope.name,
    'instrumentation_scope.version': (s) => s.record.scope.version,
  },
  spanevent: {
    name: (s) => s.event?.name,
    'span.name': (s) => (s.record.kind === 'span' ? s.record.name : undefined),
    'span.kind': (s) => span(s)?.spanKind,
  },
  log_record: {
    body: (s) => log(s)?.body,
    severity_number: (s) => log(s)?.severityNumber,
    severity_text: (s) => log(s)?.severityText,
    event_name: (s) => log(s)?.eventName,
    'trace_id.string': (s) => s.record.traceId,
    'span_id.string': (s) => s.record.spanId,
    'instrumentation_scope.name': (s) => s.record.scope.name,
  },
};

const MAPS: Record<string, (s: Subject) => Record<string, AttributeValue> | undefined> = {
  attributes: (s) => s.event?.attributes ?? s.record.attributes,
  'resource.attributes': (s) => s.record.resource,
  'instrumentation_scope.attributes': (s) => s.record.scope.attributes,
  'span.attributes': (s) => s.record.attributes,
};

// ---- tokens ----

type Token =
  | { t: 'str'; v: string; at: number }
  | { t: 'num'; v: number; at: number }
  | { t: 'ident'; v: string; at: number }
  | { t: 'op'; v: string; at: number }
  | { t: 'end'; at: number };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const at = i + 1;
    if (c === '"') {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= src.length) throw new ConditionError(at, 'unterminated string');
        const d = src[j]!;
        if (d === '"') break;
        if (d === '\\') {
          const e = src[j + 1];
          if (e === undefined) throw new ConditionError(at, 'unterminated string');
          v += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          j += 2;
          continue;
        }
        v += d;
        j++;
      }
      out.push({ t: 'str', v, at });
      i = j + 1;
      continue;
    }
    const num = /^-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+)/.exec(src.slice(i));
    // A leading minus is part of a number only where an operand is expected.
    if (num && (c !== '-' || out.length === 0 || out[out.length - 1]!.t === 'op')) {
      out.push({ t: 'num', v: Number(num[0]), at });
      i += num[0].length;
      continue;
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(i));
    if (ident) {
      out.push({ t: 'ident', v: ident[0], at });
      i += ident[0].length;
      continue;
    }
    const op = /^(==|!=|<=|>=|=~|<|>|\(|\)|\[|\]|,)/.exec(src.slice(i));
    if (op) {
      out.push({ t: 'op', v: op[0], at });
      i += op[0].length;
      continue;
    }
    throw new ConditionError(at, `unexpected character "${c}"`);
  }
  out.push({ t: 'end', at: src.length + 1 });
  return out;
}

// ---- parser: or > and > not > comparison > operand ----

const COMPARISONS = new Set(['==', '!=', '<', '<=', '>', '>=', '=~']);

/** Parses a condition for a context into a predicate; throws ConditionError. */
export function compileCondition(src: string, context: ContextName): Predicate {
  const tokens = tokenize(src);
  let p = 0;
  const peek = () => tokens[p]!;
  const next = () => tokens[p++]!;
  const describe = (t: Token) => (t.t === 'end' ? 'the end' : t.t === 'str' ? `"${t.v}"` : `"${t.v}"`);
  const expectOp = (v: string) => {
    const t = next();
    if (t.t !== 'op' || t.v !== v) throw new ConditionError(t.at, `expected "${v}", found ${describe(t)}`);
  };
  const isWord = (t: Token, w: string) => t.t === 'ident' && t.v === w;

  const orExpr = (): Predicate => {
    let left = andExpr();
    while (isWord(peek(), 'or')) {
      next();
      const l = left;
      const r = andExpr();
      left = (s) => l(s) || r(s);
    }
    return left;
  };
  const andExpr = (): Predicate => {
    let left = notExpr();
    while (isWord(peek(), 'and')) {
      next();
      const l = left;
      const r = notExpr();
      left = (s) => l(s) && r(s);
    }
    return left;
  };
  const notExpr = (): Predicate => {
    if (isWord(peek(), 'not')) {
      next();
      const inner = notExpr();
      return (s) => !inner(s);
    }
    return comparison();
  };
  const comparison = (): Predicate => {
    const start = peek();
    if (start.t === 'op' && start.v === '(') {
      next();
      const inner = orExpr();
      expectOp(')');
      return inner;
    }
    const left = operand();
    const op = peek();
    if (op.t === 'op' && COMPARISONS.has(op.v)) {
      next();
      if (op.v === '=~') {
        const pat = next();
        if (pat.t !== 'str') throw new ConditionError(pat.at, `=~ needs a regular expression in quotes, found ${describe(pat)}`);
        return isMatch(left.get, pat.v, pat.at);
      }
      const right = operand();
      return compare(left.get, op.v, right.get);
    }
    if (left.bool) return (s) => left.get(s) === true;
    throw new ConditionError(op.at, `expected a comparison (==, !=, <, <=, >, >=, =~) after ${src.slice(start.at - 1, op.at - 1).trim() || 'the operand'}, found ${describe(op)}`);
  };
  /** An operand; `bool` when it is a boolean on its own (true, false, IsMatch(...)). */
  const operand = (): { get: Getter; bool?: boolean } => {
    const t = next();
    if (t.t === 'str' || t.t === 'num') {
      const v = t.v;
      return { get: () => v };
    }
    if (t.t !== 'ident') throw new ConditionError(t.at, `expected a path, a value or a function, found ${describe(t)}`);
    if (t.v === 'true' || t.v === 'false') {
      const v = t.v === 'true';
      return { get: () => v, bool: true };
    }
    if (t.v === 'nil') return { get: () => undefined };
    if (t.v in ENUMS) {
      const v = ENUMS[t.v]!;
      return { get: () => v };
    }
    if (t.v === 'IsMatch') {
      expectOp('(');
      const target = operand();
      expectOp(',');
      const pat = next();
      if (pat.t !== 'str') throw new ConditionError(pat.at, `IsMatch needs a regular expression in quotes, found ${describe(pat)}`);
      expectOp(')');
      const test = isMatch(target.get, pat.v, pat.at);
      return { get: (s) => test(s), bool: true };
    }
    const map = MAPS[t.v];
    if (map && (context === 'spanevent' || !t.v.startsWith('span.'))) {
      expectOp('[');
      const key = next();
      if (key.t !== 'str') throw new ConditionError(key.at, `an attribute key is a string in quotes, found ${describe(key)}`);
      expectOp(']');
      const k = key.v;
      return { get: (s) => map(s)?.[k] ?? undefined };
    }
    const path = PATHS[context][t.v];
    if (path) return { get: path };
    if (peek().t === 'op' && (peek() as { v: string }).v === '(') throw new ConditionError(t.at, `unknown function "${t.v}" (this collector has IsMatch)`);
    const known = [...Object.keys(PATHS[context]), 'attributes["..."]', 'resource.attributes["..."]'];
    throw new ConditionError(t.at, `unknown path "${t.v}" in the ${context} context (known: ${known.join(', ')})`);
  };

  const result = orExpr();
  const end = peek();
  if (end.t !== 'end') throw new ConditionError(end.at, `unexpected ${describe(end)} (join conditions with and / or)`);
  return result;
}

function isMatch(get: Getter, pattern: string, at: number): Predicate {
  let re: RegExp;
  try {
    re = new RegExp(pattern.replaceAll('(?P<', '(?<'));
  } catch (err) {
    throw new ConditionError(at, `not a valid regular expression: ${(err as Error).message}`);
  }
  // OTTL's IsMatch also tests numbers and booleans by their text.
  return (s) => {
    const v = get(s);
    return (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && re.test(String(v));
  };
}

/** OTTL comparison rules: nil equals only nil; values of different types are never equal. */
function compare(l: Getter, op: string, r: Getter): Predicate {
  const eq = (a: Value, b: Value) => (a === undefined || a === null ? b === undefined || b === null : a === b);
  switch (op) {
    case '==':
      return (s) => eq(l(s), r(s));
    case '!=':
      return (s) => !eq(l(s), r(s));
  }
  const order = (a: Value, b: Value): number | undefined => {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
    return undefined; // not comparable: the comparison is false
  };
  const test = { '<': (n: number) => n < 0, '<=': (n: number) => n <= 0, '>': (n: number) => n > 0, '>=': (n: number) => n >= 0 }[op as '<']!;
  return (s) => {
    const n = order(l(s), r(s));
    return n !== undefined && test(n);
  };
}
