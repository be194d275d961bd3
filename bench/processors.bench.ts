// Cost per span of each processor: process() over 100,000 flat records (batches of 100: a
// request span and 9 DB spans per correlation id, with realistic attributes), each processor
// with a representative config, against a pass-through processor doing nothing. Each batch is
// built fresh just before its process() call and only process() is timed: processors change
// records in place, and a whole 100,000-record copy alive at once made GC dominate the figures.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { z } from 'zod';
import type { FlatRecord, Processor, ProcessorFactory, SpanRecord } from '../collector/core/api.js';
import { schemaHelpers } from '../collector/common/schema.js';
import { Telemetry } from '../collector/core/telemetry.js';
import { factory as attributes, resourceFactory as resource, enrichFactory as enrich } from '../plugins/attributes/index.js';
import { factory as redaction } from '../plugins/redaction/index.js';
import { factory as filter } from '../plugins/filter/index.js';
import { factory as sampler } from '../plugins/sampler/index.js';
import { median } from './util.js';

const RECORDS = 100_000;
const BATCH = 100;
const RUNS = 5;

/** One batch: BATCH / 10 requests, numbered from `first`. */
function batch(first: number): FlatRecord[] {
  const out: FlatRecord[] = [];
  for (let r = first; out.length < BATCH; r++) {
    const id = randomBytes(16).toString('hex');
    const resource = { 'service.name': 'shop', 'host.name': 'web-1', 'bitville.source': 'php_agent', 'process.pid': 4242 };
    const scope = { name: 'bitville.php', version: '0.1.0', attributes: {} };
    for (let i = 0; i < 10; i++) {
      const server = i === 0;
      const s: SpanRecord = {
        kind: 'span',
        resource,
        scope,
        traceId: id,
        spanId: randomBytes(8).toString('hex'),
        correlationId: id,
        parentSpanId: '',
        traceState: '',
        name: server ? 'GET /checkout' : 'SELECT orders',
        spanKind: server ? 2 : 3,
        startTimeUnixNano: '1764400000000000000',
        endTimeUnixNano: '1764400000004500000',
        durationMs: server ? (r % 20 === 0 ? 800 : 45) : 4.5,
        status: { code: 0, message: '' },
        events: [],
        links: [],
        flags: 0,
        attributes: server
          ? {
              'bitville.correlation_id': id,
              'http.request.method': 'GET',
              'url.full': `https://shop.example/checkout?step=2&token=abc${r}`,
              'http.route': '/checkout',
              'http.response.status_code': 200,
              'user_agent.original': 'Mozilla/5.0 (X11; Linux x86_64)',
            }
          : {
              'bitville.correlation_id': id,
              'db.system.name': 'postgresql',
              'db.namespace': 'shop',
              'db.query.text': `SELECT id, total FROM orders WHERE customer_id = ${r} AND status = 'paid' LIMIT 10`,
              'db.operation.name': 'SELECT',
              'server.address': '10.0.0.5',
              'server.port': 5432,
            },
      };
      out.push(s);
    }
  }
  return out;
}

const passThrough: Processor = { start: async () => {}, shutdown: async () => {}, process: (r) => r };

function build(factory: ProcessorFactory<any>, given: unknown, telemetry: Telemetry): Processor {
  const result = factory.configSchema(z, schemaHelpers)['~standard'].validate(given);
  if (result instanceof Promise || result.issues) throw new Error(`${factory.type}: bad bench config ${JSON.stringify(result)}`);
  return factory.create(result.value, {
    id: factory.type,
    logger: telemetry.logger,
    metrics: telemetry.forComponent('processor', factory.type),
    dataDir: '/nonexistent',
    signals: ['traces'],
    state: { get: async () => undefined, set: async () => {}, onChange: () => () => {} },
    reader: { idsFollowCommits: true, byCorrelationId: async () => [], latestPerCorrelation: async () => [], correlationsAfterKind: async () => [], correlationIndex: async () => [], spansStartingBetween: async () => [], rollups: async () => [] },
    emit: async () => {},
  });
}

/** Median ns per record of one processor over RECORDS records. */
async function measure(p: Processor): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    let ns = 0n;
    for (let i = 0; i < RECORDS; i += BATCH) {
      const b = batch(i / 10);
      const started = process.hrtime.bigint();
      await p.process(b, 'traces');
      ns += process.hrtime.bigint() - started;
    }
    times.push(Number(ns) / RECORDS);
  }
  return median(times);
}

export default async function (): Promise<void> {
  const telemetry = new Telemetry(pino({ level: 'silent' }));
  const cases: [string, Processor][] = [
    ['pass-through', passThrough],
    ['attributes (4 actions, include)', build(attributes, {
      actions: [
        { key: 'deployment.region', action: 'insert', value: 'eu-west-1' },
        { key: 'user_agent.original', action: 'delete' },
        { key: 'server.address', action: 'hash' },
        { key: 'url.full', action: 'extract', pattern: '^https://(?<url_host>[^/]+)' },
      ],
      include: { match_type: 'strict', services: ['shop'] },
    }, telemetry)],
    ['resource (2 actions)', build(resource, { attributes: [{ key: 'deployment.environment', action: 'upsert', value: 'prod' }, { key: 'process.pid', action: 'delete' }] }, telemetry)],
    ['enrich (defaults)', build(enrich, { deployment_environment: 'prod', service_version: '1.2.3' }, telemetry)],
    ['redaction (allow all, built-ins, SQL, URL)', build(redaction, { allow_all_keys: true }, telemetry)],
    ['filter (3 span conditions)', build(filter, {
      traces: { span: ['attributes["http.route"] == "/health"', 'kind == SPAN_KIND_INTERNAL and duration_ms < 5', 'IsMatch(name, "^OPTIONS ")'] },
    }, telemetry)],
    ['sampler (1%)', build(sampler, { sampling_percentage: 1 }, telemetry)],
  ];
  let base = 0;
  const rows: string[] = [];
  for (const [name, p] of cases) {
    await p.start(new AbortController().signal);
    const ns = await measure(p);
    await p.shutdown(new AbortController().signal);
    if (name === 'pass-through') base = ns;
    rows.push(`${name.padEnd(44)} ${ns.toFixed(0).padStart(7)} ns/span  ${(ns / base).toFixed(1).padStart(7)}x pass-through`);
  }
  process.stdout.write(`processors: ${RECORDS} flat spans in batches of ${BATCH}, median of ${RUNS} runs\n${rows.join('\n')}\n`);
}
