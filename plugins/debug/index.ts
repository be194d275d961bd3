// The `debug` exporter: writes what it receives to stderr, one line per record (`basic`) or
// the whole record as JSON (`detailed`), so a fresh `npm start` shows data flowing.
import { defineExporter, projectOf, sourceOf } from '../../collector/core/api.js';
import type { ExportResult, StoredRecord } from '../../collector/core/api.js';

export const factory = defineExporter({
  kind: 'exporter',
  type: 'debug',
  configSchema: (z) =>
    z.strictObject({
      /** `basic`: one summary line per record; `detailed`: the full record as JSON. */
      verbosity: z.enum(['basic', 'detailed']).default('basic'),
    }),
  create: (config) => {
    const line = config.verbosity === 'detailed' ? (r: StoredRecord) => JSON.stringify(r) : summary;
    return {
      async start() {},
      async shutdown() {},
      async export(batch: StoredRecord[]): Promise<ExportResult> {
        process.stderr.write(batch.map(line).join('\n') + '\n');
        return { kind: 'success' };
      },
    };
  },
});

export default factory;

function summary(r: StoredRecord): string {
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
