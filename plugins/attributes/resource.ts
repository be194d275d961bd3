// The `resource` processor (otelcol's name and config shape): the attribute actions applied
// to resource attributes (`service.name`, `host.name`, ...).
import { defineProcessor } from '../../collector/core/api.js';
import type { FlatRecord, Processor } from '../../collector/core/api.js';
import { actionSchema, compileActions, type ActionConfig } from './actions.js';
import { mapResources } from './resource-map.js';

export interface ResourceConfig {
  attributes: ActionConfig[];
}

export const factory = defineProcessor<ResourceConfig>({
  kind: 'processor',
  type: 'resource',
  configSchema: (z) =>
    z.strictObject({
      /** Applied in order to each record's resource attributes. */
      attributes: z.array(actionSchema(z)).default([]),
    }),
  create: (config, ctx) => {
    const apply = compileActions(config.attributes);
    const count = ctx.metrics.counter('bitville_resource_records_total', 'Records whose resource the actions ran on.');
    const processor: Processor = {
      start: async () => {},
      shutdown: async () => {},
      process(records: FlatRecord[]) {
        mapResources(records, apply);
        count.inc(records.length);
        return records;
      },
    };
    return processor;
  },
});
