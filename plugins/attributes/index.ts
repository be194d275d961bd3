// The `attributes` processor (otelcol's name and config shape): a list of actions on each
// record's own attributes, optionally limited by `include` / `exclude`. The same folder holds
// `resource` (the actions on resource attributes) and `enrich` (a preset of resource inserts),
// because the three share the action engine, as otelcol's do (internal/coreinternal/attraction).
// docs/processors.md documents all three.
import { defineProcessor } from '../../collector/core/api.js';
import type { FlatRecord, Processor } from '../../collector/core/api.js';
import { actionSchema, compileActions, type ActionConfig } from './actions.js';
import { compileMatch, matchSchema, type MatchConfig } from './match.js';
import { factory as resourceFactory } from './resource.js';
import { factory as enrichFactory } from './enrich.js';

export interface AttributesConfig {
  actions: ActionConfig[];
  include?: MatchConfig | undefined;
  exclude?: MatchConfig | undefined;
}

export const factory = defineProcessor<AttributesConfig>({
  kind: 'processor',
  type: 'attributes',
  configSchema: (z) =>
    z.strictObject({
      /** Applied in order to every record's attributes (those include/exclude select); none: a no-op. */
      actions: z.array(actionSchema(z)).default([]),
      /** Only records matching this are changed. */
      include: matchSchema(z).optional(),
      /** Records matching this are left alone (checked after include). */
      exclude: matchSchema(z).optional(),
    }),
  create: (config, ctx) => {
    const apply = compileActions(config.actions);
    const include = config.include ? compileMatch(config.include) : undefined;
    const exclude = config.exclude ? compileMatch(config.exclude) : undefined;
    const changed = ctx.metrics.counter('bitville_attributes_records_total', 'Records the actions ran on.');
    const skipped = ctx.metrics.counter('bitville_attributes_skipped_total', 'Records left alone by include/exclude.');
    const processor: Processor = {
      start: async () => {},
      shutdown: async () => {},
      process(records: FlatRecord[]) {
        let done = 0;
        for (const r of records) {
          if ((include && !include(r)) || (exclude && exclude(r))) continue;
          apply(r.attributes);
          done++;
        }
        changed.inc(done);
        if (done < records.length) skipped.inc(records.length - done);
        return records;
      },
    };
    return processor;
  },
});

export default factory;

/** All three factories of this folder. */
export const factories = [factory, resourceFactory, enrichFactory];
export { resourceFactory, enrichFactory };
