// The config keys every agent shares (exporter, batching, buffer, metrics), read by the same
// loader as the collector's config: `${env:NAME}` / `${env:NAME:-default}` (an unset variable
// without a default is an error naming file, line and variable), strict schemas, frozen results.
import { hostname } from 'node:os';
import { z } from 'zod';
import { loadConfigFile, parseConfigValue } from '../../collector/common/config-file.js';
import { schemaHelpers, type StandardSchema } from '../../collector/common/schema.js';

const { duration, size, hostPort } = schemaHelpers;

/** What differs between agents in the shared keys' defaults. */
export interface RuntimeDefaults {
  /** SQLite file of the disk buffer. */
  bufferPath: string;
  /** host:port of the agent's own /metrics endpoint. */
  metricsAddress: string;
}

/** The shared keys, to spread into an agent's own `z.strictObject({...})`. Defaults live here only. */
export function runtimeConfigShape(defaults: RuntimeDefaults) {
  return {
    /** service.name of everything the agent sends. */
    project: z.string().min(1),
    /** host.name of everything the agent sends. */
    host_name: z.string().min(1).default(hostname()),
    /**
     * How often the agent sends a heartbeat (a log record with its own counters), so the
     * collector's `health` processor can tell a silent agent from an idle one; 0 turns it off.
     */
    heartbeat_interval: duration().prefault('1m'),
    exporter: z
      .strictObject({
        /** The collector's OTLP/HTTP base URL; /v1/traces and /v1/logs are appended. */
        endpoint: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:4318'),
        /** Sent as `Authorization: Bearer <token>` when set. */
        token: z.string().min(1).optional(),
        /** Per request. */
        timeout: duration().prefault('10s'),
        /** Waits between consecutive failed attempts; the last one repeats. */
        retry_backoff: z.array(duration()).min(1).prefault(['10s', '30s', '1m', '5m']),
        breaker: z
          .strictObject({
            /** Consecutive retryable failures that open the breaker. */
            failures: z.int().min(1).default(5),
            /** How long an open breaker blocks attempts before one probe. */
            open_for: duration().prefault('5m'),
          })
          .prefault({}),
      })
      .prefault({}),
    batch: z
      .strictObject({
        /** Events per export request (per signal). */
        max_events: z.int().min(1).max(10_000).default(100),
        /** The longest an event waits for a batch to fill. */
        timeout: duration().prefault('5s'),
      })
      .prefault({}),
    buffer: z
      .strictObject({
        /** SQLite file of the disk tier; its directory is created. */
        path: z.string().min(1).default(defaults.bufferPath),
        /** Accepted events not yet committed to disk (see persist_interval). */
        memory_limit: size().prefault('10MiB'),
        /** Events on disk awaiting export; beyond it the oldest are dropped and counted. */
        disk_limit: size().prefault('1GiB'),
        /** The longest an accepted event stays only in memory (what a kill -9 can lose). */
        persist_interval: duration().prefault('100ms'),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        /** host:port of GET /metrics (Prometheus); port 0 picks a free one. */
        address: hostPort().default(defaults.metricsAddress),
      })
      .prefault({}),
  };
}

const runtimeSchemaForType = (d: RuntimeDefaults) => z.strictObject(runtimeConfigShape(d));
/** The parsed shared keys, as AgentRuntime takes them. */
export type RuntimeConfig = z.output<ReturnType<typeof runtimeSchemaForType>>;

/** Reads, expands, validates and freezes an agent config (the collector's rules: collector/common/config-file.ts). */
export function loadAgentConfig<S extends z.ZodType>(file: string, schema: S): Readonly<z.output<S>> {
  return loadConfigFile(file, schema as StandardSchema<z.output<S>>);
}

/** Validates an already parsed config (for tests and callers that build it in code). */
export function parseAgentConfig<S extends z.ZodType>(name: string, raw: unknown, schema: S): Readonly<z.output<S>> {
  return parseConfigValue(name, raw, schema as StandardSchema<z.output<S>>);
}
