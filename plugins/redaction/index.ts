// The `redaction` processor (otelcol's name and config shape: allow_all_keys, allowed_keys,
// ignored_keys, blocked_key_patterns, blocked_values, allowed_values, hash_function, summary,
// db_sanitizer.sql), plus what this project's senders need: built-in value patterns (emails,
// Luhn-checked card numbers, bearer tokens) and query parameters by deny-list in URL attributes.
// Every mask is counted, per kind. docs/processors.md has the rules and their order.
import { createHash } from 'node:crypto';
import { defineProcessor } from '../../collector/core/api.js';
import type { AttributeValue, Attributes, Counter, FlatRecord, Processor, z as Z } from '../../collector/core/api.js';
import { BUILTIN, BUILTIN_NAMES, MASK, maskQuery, userMasker, type BuiltinName, type Masker } from './patterns.js';
import { sanitizeSql } from './sql.js';

/** The PHP agent's default deny-list (agents/php/agent.php), so every sender is treated alike. */
export const DEFAULT_BLOCKED_PARAMS = 'password,passwd,pwd,secret,token,access_token,refresh_token,api_key,apikey,key,auth,session,sid,signature,sig,code'.split(',');

export interface RedactionConfig {
  allow_all_keys: boolean;
  allowed_keys: string[];
  ignored_keys: string[];
  blocked_key_patterns: string[];
  blocked_values: string[];
  allowed_values: string[];
  hash_function: 'none' | 'md5' | 'sha1' | 'sha3';
  summary: 'debug' | 'info' | 'silent';
  builtin_patterns: BuiltinName[];
  db_sanitizer: { sql: { enabled: boolean; attributes: string[] } };
  query_parameters: { enabled: boolean; attributes: string[]; blocked: string[] };
}

function regexList(z: typeof Z) {
  return z.array(z.string()).default([]).superRefine((list, ctx) => {
    list.forEach((p, i) => {
      try {
        new RegExp(p);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [i], message: `not a valid regular expression: ${(err as Error).message}` });
      }
    });
  });
}

export const factory = defineProcessor<RedactionConfig>({
  kind: 'processor',
  type: 'redaction',
  configSchema: (z) =>
    z.strictObject({
      /** Keep every attribute key (the allow list is then unused); values are still checked. */
      allow_all_keys: z.boolean().default(false),
      /** Attribute keys kept; every other key is removed. Fails closed: empty removes all (as otelcol). */
      allowed_keys: z.array(z.string()).default([]),
      /** Keys passed through untouched: never removed, never masked. */
      ignored_keys: z.array(z.string()).default([]),
      /** Keys matching one of these have their whole value masked. */
      blocked_key_patterns: regexList(z),
      /** Regexes whose matches inside values are masked. */
      blocked_values: regexList(z),
      /** A value matching one of these is never masked by value patterns. */
      allowed_values: regexList(z),
      /** Replace masked text by its hash instead of ****. */
      hash_function: z.enum(['none', 'md5', 'sha1', 'sha3']).default('none'),
      /** debug: counts and key names on the record; info: counts; silent: nothing. */
      summary: z.enum(['debug', 'info', 'silent']).default('info'),
      /** Built-in value patterns: email, credit_card (Luhn-checked), bearer_token. */
      builtin_patterns: z.array(z.enum(BUILTIN_NAMES as [BuiltinName, ...BuiltinName[]])).default([...BUILTIN_NAMES]),
      /** SQL literals replaced by `?` in these attributes. */
      db_sanitizer: z
        .strictObject({
          sql: z
            .strictObject({
              enabled: z.boolean().default(true),
              attributes: z.array(z.string().min(1)).default(['db.query.text', 'db.statement']),
            })
            .prefault({}),
        })
        .prefault({}),
      /** Values of these query parameters replaced by REDACTED in these attributes. */
      query_parameters: z
        .strictObject({
          enabled: z.boolean().default(true),
          attributes: z.array(z.string().min(1)).default(['url.full', 'url.query', 'http.url', 'http.target']),
          blocked: z.array(z.string().min(1)).default(DEFAULT_BLOCKED_PARAMS),
        })
        .prefault({}),
    }),
  create: (config, ctx) => new Redactor(config, ctx.metrics),
});

export default factory;

/** What one record's redaction did, for its summary attributes. */
interface Tally {
  redacted: string[];
  masked: string[];
}

const KINDS = ['removed', 'key', 'value', 'email', 'credit_card', 'bearer_token', 'sql', 'url_query'] as const;

class Redactor implements Processor {
  readonly #allowAll: boolean;
  readonly #allowed: ReadonlySet<string>;
  readonly #ignored: ReadonlySet<string>;
  readonly #blockedKeys: RegExp[];
  readonly #allowedValues: RegExp[];
  readonly #maskers: Masker[];
  readonly #sqlKeys: ReadonlySet<string>;
  readonly #urlKeys: ReadonlySet<string>;
  readonly #blockedParams: ReadonlySet<string>;
  readonly #replace: (found: string) => string;
  readonly #summary: RedactionConfig['summary'];
  readonly #counters: Record<(typeof KINDS)[number], Counter>;
  /** Per-kind counts of the batch in progress, added to the counters once per batch. */
  #counts: Record<string, number> = {};

  constructor(config: RedactionConfig, metrics: import('../../collector/core/api.js').ComponentMetrics) {
    this.#allowAll = config.allow_all_keys;
    this.#allowed = new Set(config.allowed_keys);
    this.#ignored = new Set(config.ignored_keys);
    this.#blockedKeys = config.blocked_key_patterns.map((p) => new RegExp(p));
    this.#allowedValues = config.allowed_values.map((p) => new RegExp(p));
    this.#maskers = [...config.builtin_patterns.map((n) => BUILTIN[n]()), ...config.blocked_values.map(userMasker)];
    this.#sqlKeys = new Set(config.db_sanitizer.sql.enabled ? config.db_sanitizer.sql.attributes : []);
    this.#urlKeys = new Set(config.query_parameters.enabled ? config.query_parameters.attributes : []);
    this.#blockedParams = new Set(config.query_parameters.blocked.map((p) => p.toLowerCase()));
    const algorithm = { none: undefined, md5: 'md5', sha1: 'sha1', sha3: 'sha3-256' }[config.hash_function];
    this.#replace = algorithm ? (found) => createHash(algorithm).update(found).digest('hex') : () => MASK;
    this.#summary = config.summary;
    // The metrics API labels a series by component only, so each kind of mask is its own counter.
    this.#counters = Object.fromEntries(
      KINDS.map((k) => [
        k,
        metrics.counter(`bitville_redaction_${k === 'removed' ? 'removed' : `masked_${k}`}_total`, k === 'removed' ? 'Attributes removed (not on the allow list).' : `Values masked: ${k}.`),
      ]),
    ) as Record<(typeof KINDS)[number], Counter>;
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  process(records: FlatRecord[]): FlatRecord[] {
    this.#counts = {};
    const resources = new Map<Attributes, Attributes>();
    for (const r of records) {
      const tally: Tally = { redacted: [], masked: [] };
      this.#attributes(r.attributes, tally);
      // Resource attributes describe the sender (service.name is the project): value patterns
      // apply to them, the allow list does not. Shared objects are changed copy-on-write, once.
      let res = resources.get(r.resource);
      if (!res) {
        res = this.#resource(r.resource);
        resources.set(r.resource, res);
      }
      r.resource = res;
      if (r.kind === 'log' && typeof r.body === 'string') {
        const masked = this.#maskValue(r.body);
        if (masked !== r.body) {
          r.body = masked;
          tally.masked.push('body');
        }
      }
      if (this.#summary !== 'silent') this.#addSummary(r.attributes, tally);
    }
    for (const [kind, n] of Object.entries(this.#counts)) this.#counters[kind as (typeof KINDS)[number]].inc(n);
    return records;
  }

  #count(kind: (typeof KINDS)[number], n = 1): void {
    this.#counts[kind] = (this.#counts[kind] ?? 0) + n;
  }

  #attributes(attrs: Attributes, tally: Tally): void {
    for (const key of Object.keys(attrs)) {
      // Our own metadata (the correlation id) is never redacted: the join needs it.
      if (this.#ignored.has(key) || key.startsWith('bitville.')) continue;
      if (!this.#allowAll && !this.#allowed.has(key)) {
        delete attrs[key];
        tally.redacted.push(key);
        this.#count('removed');
        continue;
      }
      const value = attrs[key]!;
      if (this.#blockedKeys.some((re) => re.test(key))) {
        attrs[key] = typeof value === 'string' ? this.#replace(value) : this.#replace(JSON.stringify(value));
        tally.masked.push(key);
        this.#count('key');
        continue;
      }
      const next = this.#value(key, value);
      if (next !== value) {
        attrs[key] = next;
        tally.masked.push(key);
      }
    }
  }

  #resource(from: Attributes): Attributes {
    let out: Attributes | undefined;
    for (const [key, value] of Object.entries(from)) {
      if (this.#ignored.has(key) || key.startsWith('bitville.')) continue;
      const next = this.#value(key, value);
      if (next !== value) (out ??= { ...from })[key] = next;
    }
    return out ?? from;
  }

  /** The value after the SQL, URL and pattern masks; the same value when nothing matched. */
  #value(key: string, value: AttributeValue): AttributeValue {
    if (typeof value === 'string') {
      let text = value;
      if (this.#sqlKeys.has(key)) {
        const s = sanitizeSql(text);
        if (s.count > 0) this.#count('sql', s.count);
        text = s.text;
      }
      if (this.#urlKeys.has(key)) {
        const q = maskQuery(text, this.#blockedParams, 'REDACTED');
        if (q.count > 0) this.#count('url_query', q.count);
        text = q.text;
      }
      return this.#maskValue(text);
    }
    if (Array.isArray(value)) {
      let changed = false;
      const out = value.map((v) => {
        const next = this.#value(key, v);
        changed ||= next !== v;
        return next;
      });
      return changed ? out : value;
    }
    return value;
  }

  #maskValue(text: string): string {
    if (this.#maskers.length === 0 || this.#allowedValues.some((re) => re.test(text))) return text;
    let out = text;
    for (const m of this.#maskers) {
      const r = m.mask(out, this.#replace);
      if (r.count > 0) {
        this.#count(m.kind as (typeof KINDS)[number], r.count);
        out = r.text;
      }
    }
    return out;
  }

  #addSummary(attrs: Attributes, tally: Tally): void {
    if (tally.redacted.length > 0) {
      attrs['redaction.redacted.count'] = tally.redacted.length;
      if (this.#summary === 'debug') attrs['redaction.redacted.keys'] = tally.redacted.sort().join(',');
    }
    if (tally.masked.length > 0) {
      attrs['redaction.masked.count'] = tally.masked.length;
      if (this.#summary === 'debug') attrs['redaction.masked.keys'] = tally.masked.sort().join(',');
    }
  }
}
