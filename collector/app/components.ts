// The one explicit list of built-in factories. Outside plugins come in only through the
// config's `plugins:` list.
import type { Factory } from '../core/api.js';
import { factory as otlpReceiver } from '../../plugins/otlp/index.js';
import { factory as debugExporter } from '../../plugins/debug/index.js';
import { factory as correlateProcessor } from '../../plugins/correlate/index.js';
import { factory as gelfExporter } from '../../plugins/gelf/index.js';
import { factory as prometheusExporter } from '../../plugins/prometheus/index.js';

export const builtinFactories: readonly Factory[] = [otlpReceiver, correlateProcessor, debugExporter, gelfExporter, prometheusExporter];
