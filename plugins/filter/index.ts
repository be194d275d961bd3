// The `filter` processor (otelcol's name and config shape): drops spans, span events and log
// records for which any condition holds. Conditions are OTTL's simplest subset (condition.ts),
// parsed at config time; an error names the key and the column.
import { defineProcessor } from '../../collector/core/api.js';
import type { FlatRecord, Processor, Signal, z as Z } from '../../collector/core/api.js';
import { compileCondition, ConditionError, type ContextName, type Predicate } from './condition.js';

export interface FilterConfig {
  error_mode: 'ignore' | 'silent' | 'propagate';
  traces?: { span: string[]; spanevent: string[] } | undefined;
  logs?: { log_record: string[] } | undefined;
}

function conditions(z: typeof Z, context: ContextName) {
  return z
    .array(z.string().min(1))
    .default([])
    .superRefine((list, ctx) => {
      list.forEach((text, i) => {
        try {
          compileCondition(text, context);
        } catch (err) {
          if (!(err instanceof ConditionError)) throw err;
          ctx.addIssue({ code: 'custom', path: [i], message: `${err.message} in '${text}'` });
        }
      });
    });
}

export const factory = defineProcessor<FilterConfig>({
  kind: 'processor',
  type: 'filter',
  configSchema: (z) =>
    z
      .strictObject({
        /** Accepted for otelcol configs; conditions here cannot fail at run time (a type mismatch is false). */
        error_mode: z.enum(['ignore', 'silent', 'propagate']).default('propagate'),
        traces: z.strictObject({ span: conditions(z, 'span'), spanevent: conditions(z, 'spanevent') }).optional(),
        logs: z.strictObject({ log_record: conditions(z, 'log_record') }).optional(),
        // Named so an otelcol config gets a clear answer instead of "unknown key".
        metrics: z.unknown().optional(),
      })
      .superRefine((c, ctx) => {
        if (c.metrics !== undefined) ctx.addIssue({ code: 'custom', path: ['metrics'], message: 'this collector has no metrics pipeline (only traces and logs); remove metrics' });
      })
      .transform(({ metrics: _unused, ...rest }) => rest),
  create: (config, ctx) => {
    const any = (list: readonly string[] | undefined, context: ContextName): Predicate | undefined => {
      if (!list || list.length === 0) return undefined;
      const ps = list.map((c) => compileCondition(c, context));
      return ps.length === 1 ? ps[0]! : (s) => ps.some((p) => p(s));
    };
    const dropSpan = any(config.traces?.span, 'span');
    const dropEvent = any(config.traces?.spanevent, 'spanevent');
    const dropLog = any(config.logs?.log_record, 'log_record');
    const dropped = ctx.metrics.counter('bitville_filter_dropped_total', 'Spans and log records dropped by a condition.');
    const droppedEvents = ctx.metrics.counter('bitville_filter_dropped_span_events_total', 'Span events dropped by a spanevent condition.');
    const processor: Processor = {
      start: async () => {},
      shutdown: async () => {},
      process(records: FlatRecord[], _signal: Signal) {
        if (!dropSpan && !dropEvent && !dropLog) return records;
        const out: FlatRecord[] = [];
        let events = 0;
        for (const record of records) {
          // Summaries are derived by this collector, never dropped by a sender-facing filter.
          if (record.kind === 'span') {
            if (dropSpan?.({ record })) continue;
            if (dropEvent && record.events.length > 0) {
              const kept = record.events.filter((event) => !dropEvent({ record, event }));
              events += record.events.length - kept.length;
              record.events = kept;
            }
          } else if (record.kind === 'log' && dropLog?.({ record })) continue;
          out.push(record);
        }
        if (out.length < records.length) dropped.inc(records.length - out.length);
        if (events > 0) droppedEvents.inc(events);
        return out;
      },
    };
    return processor;
  },
});

export default factory;
