// `include` / `exclude` matching for the attributes processor: a subset of otelcol's
// filterconfig. Every property given must match (AND); within one list, any item matches (OR),
// except `attributes`, where every item must match. `match_type` is `strict` (equality) or
// `regexp` (an unanchored regular expression, as otelcol's). Compiled once at config time.
import type { AttributeValue, FlatRecord, z as Z } from '../../collector/core/api.js';
import { compileRegex, fromGo } from './actions.js';

const SPAN_KINDS = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];

export interface MatchConfig {
  match_type: 'strict' | 'regexp';
  services?: string[] | undefined;
  span_names?: string[] | undefined;
  span_kinds?: string[] | undefined;
  attributes?: { key: string; value?: AttributeValue | undefined }[] | undefined;
  resources?: { key: string; value?: AttributeValue | undefined }[] | undefined;
  libraries?: { name: string; version?: string | undefined }[] | undefined;
  log_bodies?: string[] | undefined;
  log_severity_texts?: string[] | undefined;
  log_severity_number?: { min: number; match_undefined: boolean } | undefined;
}

export function matchSchema(z: typeof Z) {
  const kv = z.strictObject({ key: z.string().min(1), value: z.union([z.string(), z.number(), z.boolean()]).optional() });
  const list = z.array(z.string()).min(1);
  return z
    .strictObject({
      match_type: z.enum(['strict', 'regexp']),
      services: list.optional(),
      span_names: list.optional(),
      span_kinds: list.optional(),
      attributes: z.array(kv).min(1).optional(),
      resources: z.array(kv).min(1).optional(),
      libraries: z.array(z.strictObject({ name: z.string(), version: z.string().optional() })).min(1).optional(),
      log_bodies: list.optional(),
      log_severity_texts: list.optional(),
      log_severity_number: z.strictObject({ min: z.number().int().min(0).max(24), match_undefined: z.boolean().default(false) }).optional(),
    })
    .superRefine((m, ctx) => {
      const given = Object.keys(m).filter((k) => k !== 'match_type');
      if (given.length === 0) ctx.addIssue({ code: 'custom', path: [], message: 'give at least one of services, span_names, span_kinds, attributes, resources, libraries, log_bodies, log_severity_texts, log_severity_number' });
      if (m.match_type !== 'regexp') {
        for (const [i, k] of (m.span_kinds ?? []).entries()) {
          if (!SPAN_KINDS.includes(k)) ctx.addIssue({ code: 'custom', path: ['span_kinds', i], message: `"${k}" is not a span kind (${SPAN_KINDS.join(', ')})` });
        }
        return;
      }
      const check = (path: (string | number)[], p: unknown) => {
        if (typeof p === 'string') compileRegex(p, (message) => ctx.addIssue({ code: 'custom', path, message }));
      };
      for (const k of ['services', 'span_names', 'span_kinds', 'log_bodies', 'log_severity_texts'] as const) m[k]?.forEach((p, i) => check([k, i], p));
      for (const k of ['attributes', 'resources'] as const) m[k]?.forEach((a, i) => check([k, i, 'value'], a.value));
      m.libraries?.forEach((l, i) => check(['libraries', i, 'name'], l.name));
    });
}

export type Matcher = (record: FlatRecord) => boolean;

export function compileMatch(m: MatchConfig): Matcher {
  const strict = m.match_type === 'strict';
  /** A test for one string item: equality or an unanchored regex. */
  const item = (p: string) => {
    if (strict) return (s: string) => s === p;
    const re = new RegExp(fromGo(p));
    return (s: string) => re.test(s);
  };
  const anyOf = (items: string[]) => {
    const tests = items.map(item);
    return (s: string) => tests.some((t) => t(s));
  };
  const value = (want: AttributeValue | undefined) => {
    if (want === undefined) return (has: boolean) => has;
    if (strict) return (has: boolean, v?: AttributeValue) => has && v === want;
    const re = new RegExp(fromGo(String(want)));
    return (has: boolean, v?: AttributeValue) => has && typeof v === 'string' && re.test(v);
  };
  const checks: Matcher[] = [];
  if (m.services) {
    const t = anyOf(m.services);
    checks.push((r) => t(String(r.resource['service.name'] ?? '')));
  }
  if (m.span_names) {
    const t = anyOf(m.span_names);
    checks.push((r) => r.kind === 'span' && t(r.name));
  }
  if (m.span_kinds) {
    const t = anyOf(m.span_kinds);
    checks.push((r) => r.kind === 'span' && t(SPAN_KINDS[r.spanKind] ?? ''));
  }
  if (m.attributes) {
    const tests = m.attributes.map((a) => ({ key: a.key, t: value(a.value) }));
    checks.push((r) => tests.every(({ key, t }) => t(Object.hasOwn(r.attributes, key), r.attributes[key])));
  }
  if (m.resources) {
    const tests = m.resources.map((a) => ({ key: a.key, t: value(a.value) }));
    checks.push((r) => tests.some(({ key, t }) => t(Object.hasOwn(r.resource, key), r.resource[key])));
  }
  if (m.libraries) {
    const tests = m.libraries.map((l) => ({ name: item(l.name), version: l.version }));
    checks.push((r) => tests.some((l) => l.name(r.scope.name) && (l.version === undefined || l.version === r.scope.version)));
  }
  if (m.log_bodies) {
    const t = anyOf(m.log_bodies);
    checks.push((r) => r.kind === 'log' && typeof r.body === 'string' && t(r.body));
  }
  if (m.log_severity_texts) {
    const t = anyOf(m.log_severity_texts);
    checks.push((r) => r.kind === 'log' && t(r.severityText));
  }
  if (m.log_severity_number) {
    const { min, match_undefined } = m.log_severity_number;
    checks.push((r) => r.kind === 'log' && (r.severityNumber === 0 ? match_undefined : r.severityNumber >= min));
  }
  return (r) => checks.every((c) => c(r));
}
