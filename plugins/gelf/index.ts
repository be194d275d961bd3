// The `gelf` exporter factory: forwards stored records to Graylog as GELF 1.1 over TCP
// (default), TLS, UDP or HTTP(S), behind a persisted circuit breaker. See docs/gelf.md.
import { defineExporter } from '../../collector/core/api.js';
import { gelfConfigSchema, type GelfConfig } from './config.js';
import { GelfExporter } from './exporter.js';

export const factory = defineExporter<GelfConfig>({
  kind: 'exporter',
  type: 'gelf',
  configSchema: gelfConfigSchema,
  create: (config, context) => new GelfExporter(config, context),
});

export default factory;
