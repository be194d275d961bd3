// Small schema pieces shared by every component's config, handed to factories as `helpers`.
import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `60s`, `5m`, `1h`, `7d` (or a bare number of milliseconds) to milliseconds. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text >= 0) return text;
    throw new Error(`a duration must be a non-negative number of milliseconds, got ${text}`);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text);
  if (!m) throw new Error(`"${text}" is not a duration; write it like 500ms, 60s, 5m, 1h or 7d`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNITS[unit]! && ms % UNITS[unit]! === 0) return `${ms / UNITS[unit]!}${unit}`;
  }
  return `${ms}ms`;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };

/** Parses `4MiB`, `10GiB`, `512KiB` (or a bare number of bytes) to bytes. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') {
    if (Number.isInteger(text) && text >= 0) return text;
    throw new Error(`a size must be a non-negative whole number of bytes, got ${text}`);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  if (!m) throw new Error(`"${text}" is not a size; write it like 512KiB, 4MiB or 10GiB`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
}

function fromText(parse: (v: string | number) => number) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    try {
      return parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** `host:port` (host may be empty or a bracketed IPv6 address). */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`"${text}" is not host:port (for example 0.0.0.0:4318)`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export const schemaHelpers = {
  /** A duration written like `60s` or `500ms`; the parsed value is milliseconds. */
  duration: () => fromText(parseDuration),
  /** A size written like `4MiB`; the parsed value is bytes. */
  size: () => fromText(parseSize),
  /** `host:port`, kept as written and checked. */
  hostPort: () =>
    z.string().superRefine((value, ctx) => {
      try {
        parseHostPort(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
};

/**
 * A Standard Schema (standardschema.dev): zod 3.24+ and 4, valibot, arktype and others implement
 * it, so a plugin is not tied to the collector's zod version. Only the parts the collector uses.
 */
export interface StandardSchema<Output = unknown> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    validate(value: unknown): StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: unknown; readonly output: Output } | undefined;
  };
}
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: readonly { readonly message: string; readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined }[] };
