// The one explicit list of built-in factories. Outside plugins come in only through the
// config's `plugins:` list.
import type { Factory } from '../core/api.js';
import { factory as otlpReceiver } from '../../plugins/otlp/index.js';
import { factory as debugExporter } from '../../plugins/debug/index.js';
import { factory as correlateProcessor } from '../../plugins/correlate/index.js';
import { factory as gelfExporter } from '../../plugins/gelf/index.js';
import { factory as samplerProcessor } from '../../plugins/sampler/index.js';
import { factory as filterProcessor } from '../../plugins/filter/index.js';
import { factory as redactionProcessor } from '../../plugins/redaction/index.js';
import { factory as prometheusExporter } from '../../plugins/prometheus/index.js';
import { factory as healthProcessor } from '../../plugins/health/index.js';
import { overviewFactory as overviewProcessor } from '../../plugins/correlate/overview.js';
import { factory as attributesProcessor, resourceFactory as resourceProcessor, enrichFactory as enrichProcessor } from '../../plugins/attributes/index.js';

export const builtinFactories: readonly Factory[] = [
  otlpReceiver,
  correlateProcessor,
  overviewProcessor,
  attributesProcessor,
  resourceProcessor,
  enrichProcessor,
  redactionProcessor,
  filterProcessor,
  samplerProcessor,
  healthProcessor,
  debugExporter,
  gelfExporter,
  prometheusExporter,
];
