// Every registered component: its default config validates, shutdown without start is safe, and
// create -> start -> shutdown works, twice in a row (no leaked port, listener or timer).
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
  'receiver:otlp': { protocols: { http: { endpoint: '127.0.0.1:0' }, grpc: { endpoint: '127.0.0.1:0' } } },
  'exporter:prometheus': { endpoint: '127.0.0.1:0' },
};

for (const factory of builtinFactories as Factory[]) {
  test(`${factory.kind} ${factory.type}: default config validates; create, start, shutdown twice`, async (t) => {
    const schema = factory.configSchema(z, schemaHelpers);
    const validate = (value: unknown) => {
      const result = schema['~standard'].validate(value);
      assert.ok(!(result instanceof Promise), 'config schemas validate synchronously');
      assert.equal(result.issues, undefined, `config invalid: ${JSON.stringify(result.issues)}`);
      return result.value;
    };
    validate({});
    const config = validate(overrides[`${factory.kind}:${factory.type}`] ?? {});
    const telemetry = new Telemetry(pino({ level: 'silent' }));
    const dir = tempDir(t);
    const store = new SqliteStore({ path: join(dir, 'store.db'), retentionMs: 86_400_000, maxSizeBytes: 1024 ** 3, synchronous: 'NORMAL' });
    t.after(() => store.close());
    const running = new AbortController().signal;
    for (let round = 0; round < 3; round++) {
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
            ? factory.create(config, { ...ctx, reader: store, emit: async () => {} })
            : factory.create(config, ctx);
      // Round 0: shut down a component that never started (a start failure elsewhere does that).
      if (round > 0) await component.start(running);
      await component.shutdown(running);
    }
  });
}
