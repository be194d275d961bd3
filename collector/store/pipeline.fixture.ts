// Components for store tests that run the real CollectorService: a receiver that hands records
// to the pipeline when the test says so, and an exporter that remembers what each of its
// instances delivered, in order.
import { EventEmitter } from 'node:events';
import { defineExporter, defineReceiver, type FlatRecord, type Signal, type StoredRecord } from '../core/api.js';

/** Feeds records into a started collector: `await feed('traces', records)` resolves after the commit. */
export let feed: (signal: Signal, records: FlatRecord[]) => Promise<void> = async () => {
  throw new Error('the feed receiver has not been created');
};

export const feedReceiver = defineReceiver({
  kind: 'receiver',
  type: 'feed',
  configSchema: (z) => z.strictObject({}),
  create: (_config, context) => {
    feed = (signal, records) => context.consumer.consume(signal, records);
    return { async start() {}, async shutdown() {} };
  },
});

/** Record ids each `collect` exporter (by component id) was given and reported sent, in order. */
export const delivered = new Map<string, number[]>();
export const deliveries = new EventEmitter();

export const collectExporter = defineExporter({
  kind: 'exporter',
  type: 'collect',
  configSchema: (z) => z.strictObject({ batch_size: z.number().int().positive().default(7) }),
  create: (config, context) => ({
    batchSize: config.batch_size,
    async start() {},
    async shutdown() {},
    async export(batch: StoredRecord[]) {
      const ids = delivered.get(context.id) ?? [];
      ids.push(...batch.map((r) => r.id));
      delivered.set(context.id, ids);
      deliveries.emit('export');
      return { kind: 'success' as const };
    },
  }),
});

/** Resolves once `done()` holds, checked after every export. */
export function exportedUntil(done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!done()) return;
      deliveries.off('export', check);
      resolve();
    };
    deliveries.on('export', check);
    check();
  });
}
