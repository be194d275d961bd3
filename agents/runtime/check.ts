// `--check` for the agents: verify a config against the machine without running anything.
// Each check yields one line, `ok|warn|FAIL <what> (<how to fix>)`; any FAIL makes the command
// exit 1. The checks shared by both agents live here: the buffer path and the collector.
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import type { RuntimeConfig } from './config.js';
import type { Signal } from './transport.js';

export type CheckLevel = 'ok' | 'warn' | 'FAIL';

export interface CheckResult {
  level: CheckLevel;
  what: string;
  /** How to fix it; shown for warn and FAIL. */
  fix?: string;
}

export const ok = (what: string): CheckResult => ({ level: 'ok', what });
export const warn = (what: string, fix: string): CheckResult => ({ level: 'warn', what, fix });
export const fail = (what: string, fix: string): CheckResult => ({ level: 'FAIL', what, fix });

export function formatCheck(r: CheckResult): string {
  return r.fix && r.level !== 'ok' ? `${r.level} ${r.what} (${r.fix})` : `${r.level} ${r.what}`;
}

/** Prints one line per result on stdout; returns the exit code (1 when any FAIL). */
export function reportChecks(results: readonly CheckResult[], out: NodeJS.WritableStream = process.stdout): number {
  for (const r of results) out.write(`${formatCheck(r)}\n`);
  return results.some((r) => r.level === 'FAIL') ? 1 : 0;
}

/** Who the check runs as, for messages: permissions depend on it. */
export function whoAmI(): string {
  return `uid ${process.getuid?.() ?? '?'}, gid ${process.getgid?.() ?? '?'}`;
}

/** stat, or undefined when nothing is there (ENOENT, or a file where a directory was expected). */
export function statIfAny(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** The nearest existing ancestor of `path` (itself when it exists). */
export function nearestExisting(path: string): string {
  let at = path;
  for (;;) {
    try {
      statSync(at);
      return at;
    } catch {
      const up = dirname(at);
      if (up === at) return at;
      at = up;
    }
  }
}

function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** The disk buffer: an existing file must be readable and writable, else its directory must exist or be creatable. */
export function checkBufferPath(path: string, unitHint: string): CheckResult {
  const fix = `run as the agent's user; under systemd the unit's StateDirectory= (${unitHint}) creates the directory`;
  const stat = statIfAny(path);
  if (stat) {
    if (!stat.isFile()) return fail(`buffer ${path} exists and is not a file`, 'set buffer.path to a file path');
    return canAccess(path, constants.R_OK | constants.W_OK) ? ok(`buffer ${path} is writable`) : fail(`buffer ${path} is not writable by ${whoAmI()}`, fix);
  }
  const dir = dirname(path);
  const existing = nearestExisting(dir);
  if (!statSync(existing).isDirectory()) return fail(`buffer directory ${dir} cannot be created: ${existing} is not a directory`, 'set buffer.path under a directory');
  if (!canAccess(existing, constants.W_OK | constants.X_OK)) return fail(`buffer directory ${dir} cannot be created or written: ${existing} is not writable by ${whoAmI()}`, fix);
  return ok(existing === dir ? `buffer ${path} can be created` : `buffer directory ${dir} can be created (under ${existing})`);
}

/**
 * Probes the collector as the agent would talk to it: an empty OTLP/HTTP protobuf export per
 * signal (an empty request stores nothing), with the agent's token. 2xx is ok; a refused token,
 * a missing pipeline or no answer at all are FAIL; 503 (busy or draining) is a warning.
 */
export async function checkCollector(exporter: RuntimeConfig['exporter'], signals: readonly Signal[]): Promise<CheckResult[]> {
  const base = exporter.endpoint.replace(/\/+$/, '');
  const headers: Record<string, string> = { 'content-type': 'application/x-protobuf' };
  if (exporter.token) headers.authorization = `Bearer ${exporter.token}`;
  const results: CheckResult[] = [];
  for (const signal of signals) {
    const url = `${base}/v1/${signal}`;
    let status: number;
    try {
      const response = await fetch(url, { method: 'POST', headers, body: new Uint8Array(0), signal: AbortSignal.timeout(exporter.timeout) });
      await response.arrayBuffer();
      status = response.status;
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      results.push(fail(`collector does not answer at ${url}: ${why}`, 'start the collector (systemctl start bitville-collector) or correct exporter.endpoint'));
      return results;
    }
    if (status >= 200 && status < 300) results.push(ok(`collector accepts ${signal} at ${url} (HTTP ${status})`));
    else if (status === 401 || status === 403)
      results.push(fail(`collector refuses this agent's ${exporter.token ? 'token' : 'request without a token'} at ${url} (HTTP ${status})`, "set exporter.token to the collector's receivers.otlp.protocols.http.auth.bearer_token"));
    else if (status === 404) results.push(fail(`collector has no ${signal} pipeline at ${url} (HTTP 404)`, `add a ${signal} pipeline with the otlp receiver to the collector's service.pipelines`));
    else if (status === 503 || status === 429) results.push(warn(`collector at ${url} is busy or draining (HTTP ${status})`, 'the agent buffers and retries; check the collector if it persists'));
    else results.push(fail(`collector at ${url} answers HTTP ${status} to an empty export`, 'check that exporter.endpoint is the collector\'s OTLP/HTTP base URL (e.g. http://127.0.0.1:4318)'));
  }
  return results;
}
