// Test fixture: sample stored records as the OTLP receiver produces them, and an exporter
// context with a real pino logger whose lines the test can read.
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { z } from 'zod';
import { parseDuration, parseSize, type ComponentMetrics, type ComponentState, type ExporterContext, type StoredRecord } from '../../collector/core/api.js';
import { gelfConfigSchema, type GelfConfig } from './config.js';

const T0 = 1_714_564_800_123_456_789n; // 2024-05-01T12:00:00.123456789Z

export function spanRecord(id: number, overrides: Partial<StoredRecord> = {}): StoredRecord {
  return {
    id,
    receivedAtMs: 1_714_564_801_000,
    kind: 'span',
    resource: { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent' },
    scope: { name: 'bitville.php', version: '1.0.0', attributes: {} },
    attributes: {
      'bitville.correlation_id': '4bf92f3577b34da6a3ce929d0e0e4736',
      'http.request.method': 'GET',
      'url.full': 'https://shop.example/cart?id=7',
      'http.response.status_code': 200,
    },
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    correlationId: '4bf92f3577b34da6a3ce929d0e0e4736',
    parentSpanId: '',
    traceState: '',
    name: 'GET /cart',
    spanKind: 2,
    startTimeUnixNano: (T0 + BigInt(id) * 1_000_000n).toString(),
    endTimeUnixNano: (T0 + BigInt(id) * 1_000_000n + 612_500_000n).toString(),
    durationMs: 612.5,
    status: { code: 0, message: '' },
    events: [],
    links: [],
    flags: 1,
    ...overrides,
  } as StoredRecord;
}

export function logRecord(id: number, overrides: Partial<StoredRecord> = {}): StoredRecord {
  return {
    id,
    receivedAtMs: 1_714_564_801_000,
    kind: 'log',
    resource: { 'service.name': 'shop', 'bitville.source': 'pg_agent' },
    scope: { name: 'bitville.pg', version: '', attributes: {} },
    attributes: { 'db.system.name': 'postgresql' },
    traceId: '',
    spanId: '',
    correlationId: '',
    timeUnixNano: (T0 + BigInt(id) * 1_000_000n).toString(),
    observedTimeUnixNano: (T0 + BigInt(id) * 1_000_000n).toString(),
    severityNumber: 13,
    severityText: 'WARN',
    body: 'slow query',
    eventName: '',
    flags: 0,
    ...overrides,
  } as StoredRecord;
}

/** The config with defaults applied, overlaid with `overrides` (as a YAML section would be). */
export function gelfConfig(overrides: Record<string, unknown> = {}): GelfConfig {
  // The collector's helpers, rebuilt from the public API (plugins import nothing else).
  const helpers = {
    duration: () => z.union([z.string(), z.number()]).transform((v) => parseDuration(v)),
    size: () => z.union([z.string(), z.number()]).transform((v) => parseSize(v)),
    hostPort: () => z.string(),
  };
  // No start-up connection unless a test asks for one: tests count the connections a peer accepts.
  return gelfConfigSchema(z, helpers as never).parse({ startup_check: false, ...overrides });
}

export interface TestExporterContext {
  context: ExporterContext;
  /** Every log line written, parsed. */
  logs: Record<string, unknown>[];
  /** Emits 'log' with each line as it is written. */
  events: EventEmitter;
  /** Gauge readers and counter totals by metric name. */
  counters: Map<string, number>;
  gauges: Map<string, () => number>;
  dataDir: string;
}

export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'bitville-gelf-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A context like the collector's: real pino logger, metrics recorded in maps. */
export function exporterContext(dataDir: string, id = 'gelf/primary'): TestExporterContext {
  const logs: Record<string, unknown>[] = [];
  const events = new EventEmitter();
  const counters = new Map<string, number>();
  const gauges = new Map<string, () => number>();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        logs.push(parsed);
        events.emit('log', parsed);
      }
      done();
    },
  });
  const metrics: ComponentMetrics = {
    counter: (name) => ({ inc: (v = 1) => void counters.set(name, (counters.get(name) ?? 0) + v) }),
    gauge: (name, _help, collect) => {
      let value = 0;
      gauges.set(name, collect ?? (() => value));
      return { set: (v) => void (value = v), inc: (v = 1) => void (value += v), dec: (v = 1) => void (value -= v) };
    },
    histogram: () => ({ observe: () => {} }),
  };
  const logger = pino({ base: { exporter: id } }, sink);
  return { context: { id, logger, metrics, dataDir, signals: ['traces', 'logs'], state: memoryState() }, logs, events, counters, gauges, dataDir };
}

/** Component state for one test process (the store's table plays this part in a collector). */
export function memoryState(): ComponentState {
  const values = new Map<string, string>();
  return {
    get: async (key) => values.get(key),
    set: async (key, value) => void values.set(key, value),
    onChange: () => () => {},
  };
}
