// Every registered component: its default config validates, and create -> start -> shutdown
// works, twice in a row (no leaked port, listener or timer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { pino } from 'pino';
import type { ComponentContext, Factory } from '../collector/core/api.js';
import { builtinFactories } from '../collector/app/components.js';
import { schemaHelpers } from '../collector/common/schema.js';
import { SqliteStore } from '../collector/store/sqlite.js';
import { componentState } from '../collector/core/component-state.js';
import { Telemetry } from '../collector/core/telemetry.js';
import { join } from 'node:path';
import { tempDir } from './env.js';

// Listening components bind an ephemeral loopback port here instead of their default one.
const overrides: Record<string, unknown> = {
  'receiver:otlp': { protocols: { http: { endpoint: '127.0.0.1:0' } } },
};

for (const factory of builtinFactories as Factory[]) {
  test(`${factory.kind} ${factory.type}: default config validates; create, start, shutdown twice`, async (t) => {
    const schema = factory.configSchema(z, schemaHelpers);
    const defaults = schema.safeParse({});
    assert.ok(defaults.success, `default config invalid: ${JSON.stringify(defaults.error?.issues)}`);
    const config = schema.parse(overrides[`${factory.kind}:${factory.type}`] ?? {});
    const telemetry = new Telemetry(pino({ level: 'silent' }));
    const dir = tempDir(t);
    const store = new SqliteStore({ path: join(dir, 'store.db'), retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, synchronous: 'NORMAL' });
    t.after(() => store.close());
    for (let round = 0; round < 2; round++) {
      const ctx: ComponentContext = {
        id: factory.type,
        logger: telemetry.logger,
        metrics: telemetry.forComponent(factory.kind, factory.type),
        dataDir: dir,
        signals: ['traces', 'logs'],
        state: componentState(store, factory.type),
      };
      const component =
        factory.kind === 'receiver'
          ? factory.create(config, { ...ctx, consumer: { consume: async () => {} } })
          : factory.kind === 'processor'
            ? factory.create(config, { ...ctx, store: { byCorrelationId: async () => [], unsummarizedCorrelations: async () => [] }, emit: async () => {} })
            : factory.create(config, ctx);
      await component.start();
      await component.shutdown();
    }
  });
}
