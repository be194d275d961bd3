// The attribute actions shared by the `attributes` and `resource` processors (otelcol shares
// them the same way, in its internal `attraction` package): insert, update, upsert, delete,
// hash, extract and convert, applied in the order written, each compiled once at config time
// into a small function over one attribute map.
import { createHash } from 'node:crypto';
import type { AttributeValue, Attributes, z as Z } from '../../collector/core/api.js';

export const ACTIONS = ['insert', 'update', 'upsert', 'delete', 'hash', 'extract', 'convert'] as const;
export type ActionName = (typeof ACTIONS)[number];

export interface ActionConfig {
  key?: string | undefined;
  action: ActionName;
  value?: AttributeValue | undefined;
  from_attribute?: string | undefined;
  default_value?: AttributeValue | undefined;
  pattern?: string | undefined;
  converted_type?: 'int' | 'double' | 'string' | undefined;
}

/** Compiled action list: mutates the map it is given. */
export type ApplyActions = (attrs: Attributes) => void;

/** The schema of one action, with the checks otelcol makes (each naming the offending key). */
export function actionSchema(z: typeof Z) {
  const scalar = z.union([z.string(), z.number(), z.boolean()]);
  const value: Z.ZodType<AttributeValue> = z.lazy(() => z.union([scalar, z.null(), z.array(value), z.record(z.string(), value)]));
  return z
    .strictObject({
      key: z.string().min(1).optional(),
      // otelcol accepts either case.
      action: z.string().transform((s) => s.toLowerCase()).pipe(z.enum(ACTIONS)),
      value: value.optional(),
      from_attribute: z.string().min(1).optional(),
      default_value: value.optional(),
      pattern: z.string().optional(),
      converted_type: z.enum(['int', 'double', 'string']).optional(),
    })
    .superRefine((a, ctx) => {
      const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
      const sources = [a.value !== undefined, a.from_attribute !== undefined].filter(Boolean).length;
      const regex = a.pattern === undefined ? undefined : compileRegex(a.pattern, (m) => problem('pattern', m));
      switch (a.action) {
        case 'insert':
        case 'update':
        case 'upsert':
          if (!a.key) problem('key', `missing: ${a.action} needs a key`);
          if (sources === 0 && a.default_value === undefined) problem('action', `${a.action} needs one of value, from_attribute or default_value`);
          if (sources > 1) problem('from_attribute', 'give value or from_attribute, not both');
          if (a.pattern !== undefined) problem('pattern', `${a.action} does not use pattern`);
          if (a.converted_type !== undefined) problem('converted_type', `${a.action} does not use converted_type`);
          break;
        case 'delete':
        case 'hash':
          if (!a.key && a.pattern === undefined) problem('key', `${a.action} needs key and/or pattern`);
          if (sources > 0 || a.default_value !== undefined) problem(a.value !== undefined ? 'value' : 'from_attribute', `${a.action} takes no value`);
          if (a.converted_type !== undefined) problem('converted_type', `${a.action} does not use converted_type`);
          break;
        case 'extract':
          if (!a.key) problem('key', 'missing: extract needs the key to read');
          if (a.pattern === undefined) problem('pattern', 'missing: extract needs a pattern with named groups');
          else if (regex) {
            const groups = namedGroups(a.pattern);
            if (groups.length === 0) problem('pattern', 'the pattern has no named group (write (?<name>...))');
            if (new RegExp(`${fromGo(a.pattern)}|`).exec('')!.length - 1 !== groups.length) problem('pattern', 'every group in the pattern must be named ((?:...) for a plain group)');
          }
          if (sources > 0 || a.default_value !== undefined) problem('value', 'extract takes no value');
          break;
        case 'convert':
          if (!a.key) problem('key', 'missing: convert needs a key');
          if (a.converted_type === undefined) problem('converted_type', 'missing: int, double or string');
          if (sources > 0 || a.pattern !== undefined) problem('value', 'convert takes only key and converted_type');
          break;
      }
    });
}

/** Compiles a regex, reporting a bad one through `fail` (undefined then). */
export function compileRegex(pattern: string, fail: (message: string) => void, flags = ''): RegExp | undefined {
  try {
    return new RegExp(fromGo(pattern), flags);
  } catch (err) {
    fail(`not a valid regular expression: ${(err as Error).message}`);
    return undefined;
  }
}

/** Go's `(?P<name>...)` (what otelcol configs use) is `(?<name>...)` in JavaScript. */
export function fromGo(pattern: string): string {
  return pattern.replaceAll('(?P<', '(?<');
}

function namedGroups(pattern: string): string[] {
  return [...fromGo(pattern).matchAll(/\(\?<([A-Za-z_$][\w$]*)>/g)].map((m) => m[1]!);
}

/**
 * SHA-256 as lowercase hex of the value's bytes, as otelcol's hash action does: a string's
 * UTF-8, a bool as one byte, an integer as 8 little-endian bytes (int64), any other number as
 * its float64 bits; other values (arrays, maps, null) become ''.
 */
export function hashValue(v: AttributeValue): string {
  let bytes: Buffer;
  if (typeof v === 'string') bytes = Buffer.from(v, 'utf8');
  else if (typeof v === 'boolean') bytes = Buffer.from([v ? 1 : 0]);
  else if (typeof v === 'number') {
    bytes = Buffer.alloc(8);
    if (Number.isInteger(v)) bytes.writeBigInt64LE(BigInt(v));
    else bytes.writeDoubleLE(v);
  } else return '';
  return createHash('sha256').update(bytes).digest('hex');
}

function convert(v: AttributeValue, to: 'int' | 'double' | 'string'): AttributeValue {
  if (to === 'string') return typeof v === 'string' ? v : JSON.stringify(v);
  const n = typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  // A value that does not convert is left as it is (as otelcol does).
  if (!Number.isFinite(n)) return v;
  return to === 'int' ? Math.trunc(n) : n;
}

/** Copies a config value so a record never shares (and mutates) the frozen config's arrays. */
const fresh = (v: AttributeValue): AttributeValue => (v !== null && typeof v === 'object' ? structuredClone(v) : v);

/** Compiles the list into one function; the config is valid (the schema checked it). */
export function compileActions(list: readonly ActionConfig[]): ApplyActions {
  const steps = list.map((a): ApplyActions => {
    const key = a.key ?? '';
    const regex = a.pattern !== undefined ? new RegExp(fromGo(a.pattern)) : undefined;
    const source = (attrs: Attributes): AttributeValue | undefined => {
      if (a.value !== undefined) return fresh(a.value);
      if (a.from_attribute !== undefined && Object.hasOwn(attrs, a.from_attribute)) return fresh(attrs[a.from_attribute]!);
      return a.default_value !== undefined ? fresh(a.default_value) : undefined;
    };
    const keysMatching = (attrs: Attributes) => (regex ? Object.keys(attrs).filter((k) => regex.test(k)) : []);
    switch (a.action) {
      case 'insert':
        return (attrs) => {
          if (Object.hasOwn(attrs, key)) return;
          const v = source(attrs);
          if (v !== undefined) attrs[key] = v;
        };
      case 'update':
        return (attrs) => {
          if (!Object.hasOwn(attrs, key)) return;
          const v = source(attrs);
          if (v !== undefined) attrs[key] = v;
        };
      case 'upsert':
        return (attrs) => {
          const v = source(attrs);
          if (v !== undefined) attrs[key] = v;
        };
      case 'delete':
        return (attrs) => {
          if (key) delete attrs[key];
          for (const k of keysMatching(attrs)) delete attrs[k];
        };
      case 'hash':
        return (attrs) => {
          const keys = new Set(keysMatching(attrs));
          if (key && Object.hasOwn(attrs, key)) keys.add(key);
          for (const k of keys) attrs[k] = hashValue(attrs[k]!);
        };
      case 'extract': {
        const names = namedGroups(a.pattern!);
        return (attrs) => {
          const v = attrs[key];
          if (typeof v !== 'string') return;
          const m = regex!.exec(v);
          if (!m?.groups) return;
          for (const name of names) {
            const got = m.groups[name];
            // otelcol puts '' for a group that did not take part in the match.
            attrs[name] = got ?? '';
          }
        };
      }
      case 'convert':
        return (attrs) => {
          if (Object.hasOwn(attrs, key)) attrs[key] = convert(attrs[key]!, a.converted_type!);
        };
    }
  });
  if (steps.length === 0) return () => {};
  if (steps.length === 1) return steps[0]!;
  return (attrs) => {
    for (const step of steps) step(attrs);
  };
}
