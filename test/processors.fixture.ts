// Test support for the processors' golden tests: records built from short partial objects,
// processors built through the collector's own config loader (so every fixture is also a config
// the collector accepts), run against a real SQLite store, with their metrics readable.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { parse, stringify } from 'yaml';
import type { FlatRecord, LogRecord, Processor, SpanRecord, DerivedRecord } from '../collector/core/api.js';
import { builtinFactories } from '../collector/app/components.js';
import { loadConfig } from '../collector/core/config.js';
import { componentState } from '../collector/core/component-state.js';
import { Telemetry } from '../collector/core/telemetry.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { repoRoot, tempDir } from './env.js';

/** Records are plain JSON; this is much faster than structuredClone for many small ones. */
const clone = <T>(x: T): T => (x === undefined ? x : JSON.parse(JSON.stringify(x)));

type Partial1<T> = { [K in keyof T]?: T[K] };

const BASE = {
  resource: { 'service.name': 'shop' },
  scope: { name: 'test', version: '', attributes: {} },
  attributes: {},
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  correlationId: '0af7651916cd43dd8448eb211c80319c',
};

/** A span with test defaults (a 10 ms INTERNAL span of `shop`). */
export function span(over: Partial1<SpanRecord> = {}): SpanRecord {
  return {
    ...clone(BASE),
    kind: 'span',
    parentSpanId: '',
    traceState: '',
    name: 'span',
    spanKind: 1,
    startTimeUnixNano: '1764400000000000000',
    endTimeUnixNano: '1764400000010000000',
    durationMs: 10,
    status: { code: 0, message: '' },
    events: [],
    links: [],
    flags: 0,
    ...clone(over),
  } as SpanRecord;
}

export function log(over: Partial1<LogRecord> = {}): LogRecord {
  return {
    ...clone(BASE),
    kind: 'log',
    timeUnixNano: '1764400000000000000',
    observedTimeUnixNano: '1764400000000000000',
    severityNumber: 9,
    severityText: 'INFO',
    body: 'hello',
    eventName: '',
    flags: 0,
    ...clone(over),
  } as LogRecord;
}

export function summary(over: Partial1<DerivedRecord> = {}): DerivedRecord {
  return { ...clone(BASE), kind: 'summary', name: 'GET /', timeUnixNano: '1764400000000000000', durationMs: 10, ...clone(over) } as DerivedRecord;
}

/** A record from a fixture object: `kind` picks the builder (span by default). */
export function record(o: Record<string, unknown>): FlatRecord {
  const kind = o.kind ?? 'span';
  return kind === 'log' ? log(o as Partial1<LogRecord>) : kind === 'summary' ? summary(o as Partial1<DerivedRecord>) : span(o as Partial1<SpanRecord>);
}

export interface Harness {
  processor: Processor;
  telemetry: Telemetry;
  store: SqliteStore;
  /** Records the processor committed on its own (ProcessorContext.emit). */
  emitted: FlatRecord[];
  /** Emits `emit` with the records after each ProcessorContext.emit commit. */
  events: EventEmitter;
  /** A counter's value for this processor (0 when never incremented). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/**
 * Builds processor `id` from a `processors:` section, through the collector's config loader
 * (the full config around it is a minimal valid one). Throws the loader's ConfigError.
 */
export async function buildProcessor(t: TestContext, processors: Record<string, unknown>, id: string, env: NodeJS.ProcessEnv = {}): Promise<Harness> {
  const dir = tempDir(t);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, configText(processors, dir));
  const config = await loadConfig(file, builtinFactories, env);
  const c = config.processors.get(id);
  assert.ok(c, `processor ${id} is not in the config`);
  const telemetry = new Telemetry(pino({ level: 'silent' }));
  const store = new SqliteStore({ path: join(dir, 'store.db'), retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, synchronous: 'NORMAL' });
  t.after(() => store.close());
  const emitted: FlatRecord[] = [];
  const events = new EventEmitter();
  if (c.factory.kind !== 'processor') throw new Error(`${id} is not a processor`);
  const processor = c.factory.create(c.config, {
    id,
    logger: telemetry.logger,
    metrics: telemetry.forComponent('processor', id),
    dataDir: dir,
    signals: c.signals,
    state: componentState(store, id),
    reader: store,
    emit: async (records) => {
      emitted.push(...records);
      await store.append(records);
      events.emit('emit', records);
    },
  });
  await processor.start(new AbortController().signal);
  t.after(() => processor.shutdown(new AbortController().signal));
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = await telemetry.registry.getSingleMetric(name)?.get();
    const want = { processor: id, ...labels };
    const v = m?.values.find((x) => Object.entries(want).every(([k, val]) => x.labels[k] === val));
    return v?.value ?? 0;
  };
  return { processor, telemetry, store, emitted, events, metric };
}

/** A minimal collector config using the given processors in both pipelines. */
export function configText(processors: Record<string, unknown>, dir: string): string {
  const ids = Object.keys(processors);
  return stringify({
    receivers: { otlp: { protocols: { http: { endpoint: '127.0.0.1:0' } } } },
    processors,
    exporters: { debug: {} },
    storage: { sqlite: { path: join(dir, 'store.db') } },
    service: {
      pipelines: {
        traces: { receivers: ['otlp'], processors: ids, exporters: ['debug'] },
        logs: { receivers: ['otlp'], processors: ids, exporters: ['debug'] },
      },
    },
  });
}

export interface GoldenCase {
  name: string;
  input: Record<string, unknown>[];
  expected: Record<string, unknown>[];
  env?: Record<string, string>;
}
export interface GoldenFile {
  /** The `processors:` section; the cases run the processors in this order. */
  processors: Record<string, unknown>;
  cases: GoldenCase[];
}

/**
 * Runs a golden file (YAML: processors, then cases of input and expected records): each case
 * through a fresh pipeline of those processors, asserting the output records exactly.
 */
export async function runGolden(t: TestContext, path: string): Promise<void> {
  const golden = parse(readFileSync(join(repoRoot, path), 'utf8')) as GoldenFile;
  for (const c of golden.cases) {
    await t.test(c.name, async (t) => {
      const harnesses = [];
      for (const id of Object.keys(golden.processors)) harnesses.push(await buildProcessor(t, golden.processors, id, c.env ?? {}));
      let out = c.input.map(record);
      for (const h of harnesses) out = await h.processor.process(out, out[0]?.kind === 'log' ? 'logs' : 'traces');
      assert.deepEqual(out, c.expected.map(record));
    });
  }
}
