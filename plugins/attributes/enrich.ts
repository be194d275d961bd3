// The `enrich` processor: the design's "enrich" step as a preset of resource inserts. Adds
// `host.name`, `deployment.environment`, `service.version` and `bitville.collector.version`
// where the sender left them out; a value the sender gave is never overwritten.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineProcessor } from '../../collector/core/api.js';
import type { Attributes, FlatRecord, Processor } from '../../collector/core/api.js';
import { mapResources } from './resource-map.js';

export interface EnrichConfig {
  host_name: string | false;
  deployment_environment?: string | undefined;
  service_version?: string | undefined;
  collector_version: boolean;
}

const PACKAGE_NAME = 'bitville-monitoring';

/**
 * The collector's version from its package.json. The plugin API gives no version, so this walks
 * up from this file (source or dist) to the package root.
 */
export function collectorVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === PACKAGE_NAME && pkg.version) return pkg.version;
    } catch {
      // not here: go up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export const factory = defineProcessor<EnrichConfig>({
  kind: 'processor',
  type: 'enrich',
  configSchema: (z) =>
    z.strictObject({
      /** `host.name` for senders that give none: this machine's name by default; false adds none. */
      host_name: z.union([z.string().min(1), z.literal(false)]).default(hostname()),
      /** `deployment.environment` (`production`, `staging`, often `${env:DEPLOY_ENV}`); unset adds none. */
      deployment_environment: z.string().min(1).optional(),
      /** `service.version` for senders that give none (the application's release); unset adds none. */
      service_version: z.string().min(1).optional(),
      /** Adds `bitville.collector.version`: which collector release stored the record. */
      collector_version: z.boolean().default(true),
    }),
  create: (config, ctx) => {
    const defaults: Attributes = {};
    if (config.host_name !== false) defaults['host.name'] = config.host_name;
    if (config.deployment_environment !== undefined) defaults['deployment.environment'] = config.deployment_environment;
    if (config.service_version !== undefined) defaults['service.version'] = config.service_version;
    if (config.collector_version) defaults['bitville.collector.version'] = collectorVersion();
    const entries = Object.entries(defaults);
    const count = ctx.metrics.counter('bitville_enrich_records_total', 'Records whose resource was completed.');
    const fill = (attrs: Attributes) => {
      for (const [k, v] of entries) if (attrs[k] === undefined || attrs[k] === '') attrs[k] = v;
    };
    const processor: Processor = {
      start: async () => {},
      shutdown: async () => {},
      process(records: FlatRecord[]) {
        if (entries.length > 0) mapResources(records, fill);
        count.inc(records.length);
        return records;
      },
    };
    return processor;
  },
});
