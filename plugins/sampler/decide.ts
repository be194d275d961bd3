// The pure parts of the sampler's rule: the hash every instance computes alike, and what makes
// a record one the sampler must never lose.
import type { FlatRecord } from '../../collector/core/api.js';

/**
 * A 32-bit hash of the correlation id: FNV-1a over the seed's 4 bytes and the id's UTF-16 code
 * units, then murmur3's finalizer (FNV alone mixes the high bits of short inputs poorly).
 * Pure and portable: every collector instance, every batch, every restart gets the same value.
 */
export function hashId(id: string, seed: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ ((seed >>> (i * 8)) & 0xff), 0x01000193);
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Whether the hash keeps this id at `percentage` (0..100). */
export function sampledIn(id: string, seed: number, percentage: number): boolean {
  if (percentage >= 100) return true;
  return hashId(id, seed) < Math.floor((percentage / 100) * 2 ** 32);
}

export interface ImportanceRules {
  slowMs: number;
  errorHttpStatus: number;
}

const STATUS_KEYS = ['http.response.status_code', 'http.status_code'];

/** Why a record must be kept whatever the hash says, or undefined. */
export function importance(r: FlatRecord, rules: ImportanceRules): 'slow' | 'error' | undefined {
  if (r.kind === 'log') return r.severityNumber >= 17 ? 'error' : undefined;
  if (r.kind !== 'span') return undefined;
  if (r.status.code === 2) return 'error';
  for (const key of STATUS_KEYS) {
    const v = r.attributes[key];
    const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    if (n >= rules.errorHttpStatus) return 'error';
  }
  if (r.spanKind === 2 && r.durationMs >= rules.slowMs) return 'slow';
  return undefined;
}

/** The request span: the SERVER span that closes a request (sent when the request ends). */
export function isRequestSpan(r: FlatRecord): boolean {
  return r.kind === 'span' && r.spanKind === 2;
}
