// The `debug` exporter: shows on stderr that data flows, at the OpenTelemetry Collector's three
// verbosities. `basic` (the default) is one line per batch with counts, cheap enough to leave on;
// `normal` is one line per record; `detailed` the whole record as JSON. It takes batches as
// stored texts: `basic` needs only ids and kinds, so a backlog is never parsed for it.
import { defineExporter, parseStored, projectOf, sourceOf, storedRecordJson, textOf } from '../../collector/core/api.js';
import type { ExportResult, StoredRecord, StoredText } from '../../collector/core/api.js';

export const factory = defineExporter({
  kind: 'exporter',
  type: 'debug',
  apiVersion: 2,
  configSchema: (z) =>
    z.strictObject({
      verbosity: z.enum(['basic', 'normal', 'detailed']).default('basic'),
    }),
  create: (config) => {
    const text = {
      basic: batchLine,
      normal: (b: StoredText[]) => b.map((t) => recordLine(parseStored(t))).join('\n'),
      detailed: (b: StoredText[]) => b.map((t) => storedRecordJson(parseStored(t))).join('\n'),
    }[config.verbosity];
    const exportTexts = async (batch: StoredText[]): Promise<ExportResult> => {
      process.stderr.write(`${text(batch)}\n`);
      return { kind: 'success' };
    };
    return {
      async start() {},
      async shutdown() {},
      exportTexts,
      export: (batch: StoredRecord[]) => exportTexts(batch.map(textOf)),
    };
  },
});

export default factory;

function batchLine(batch: StoredText[]): string {
  const counts = new Map<string, number>();
  for (const r of batch) counts.set(r.kind, (counts.get(r.kind) ?? 0) + 1);
  const parts = [...counts].map(([kind, n]) => `${kind} ${n}`).join(', ');
  return `debug: ${batch.length} records (${parts}), ids ${batch[0]?.id}-${batch.at(-1)?.id}`;
}

function recordLine(r: StoredRecord): string {
  const who = `${sourceOf(r)} - ${projectOf(r) || '(no project)'}`;
  switch (r.kind) {
    case 'span':
      return `#${r.id} span ${who} "${r.name}" ${r.durationMs.toFixed(1)} ms trace=${r.traceId} span=${r.spanId}`;
    case 'log':
      return `#${r.id} log ${who} ${r.severityText || r.severityNumber} ${JSON.stringify(r.body)}`;
    case 'summary':
      return `#${r.id} summary ${who} "${r.name}" ${r.durationMs.toFixed(1)} ms correlation=${r.correlationId}`;
    case 'metric':
      return `#${r.id} metric ${who} ${r.metricType} "${r.name}" ${r.value ?? `count=${r.count}`}${r.unit ? ` ${r.unit}` : ''}`;
  }
}
