// A request's sampled profile (the PHP agent's `bitville.profile.*` span attributes, from the
// excimer extension): collapsed stacks parsed into a tree, self time per function, and the
// top frames a summary carries. Pure functions: the summary, the lookups and the flame graph
// share them. The input comes from any OTLP sender, so the parser is tolerant: a bad line is
// skipped, never fatal.
import type { AttributeValue, Attributes, SpanRecord } from '../../collector/core/api.js';

/** The span attributes the PHP agent writes (agents/php/event.ts) and the summary attribute made of them. */
export const PROFILE = {
  collapsed: 'bitville.profile.collapsed',
  periodMs: 'bitville.profile.period_ms',
  /** How far into the request sampling began (agent setting profile_delay_ms): that start is not in the profile. */
  delayMs: 'bitville.profile.delay_ms',
  samples: 'bitville.profile.samples',
  top: 'bitville.profile_top',
} as const;

/** How many frames `bitville.profile_top` lists. */
export const PROFILE_TOP = 5;

/** The frame name the agent and daemon give the weight of stacks cut for size. */
export const TRUNCATED_FRAME = '(truncated)';

/** Frames whose time is SQL: the pgsql functions, PDO and PDOStatement methods, and wrappers named after them. */
export function isSqlFrame(name: string): boolean {
  return /^pg_|PDO/.test(name);
}

export interface Stack {
  /** Outermost first. */
  frames: string[];
  count: number;
}

/** Parses `frame;frame;frame count` lines (duplicates added up; malformed lines and empty frames skipped). */
export function parseCollapsed(text: string): Stack[] {
  const byKey = new Map<string, Stack>();
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const space = line.lastIndexOf(' ');
    if (space <= 0) continue;
    const count = Number(line.slice(space + 1));
    if (!Number.isSafeInteger(count) || count <= 0) continue;
    const frames = line.slice(0, space).split(';').filter((f) => f !== '');
    if (frames.length === 0) continue;
    const key = frames.join(';');
    const known = byKey.get(key);
    if (known) known.count += count;
    else byKey.set(key, { frames, count });
  }
  return [...byKey.values()];
}

export interface TopFrame {
  name: string;
  selfMs: number;
  /** Of the request's wall time. */
  percent: number;
}

export interface ProfileView {
  /** The sampling period the agent used. */
  periodMs: number;
  /** How far into the request sampling began; 0 when it covered the request from its start. */
  delayMs: number;
  samples: number;
  /**
   * What one sample stands for on the page: the period, shrunk when the samples would add up to
   * more than the request's wall time (timer jitter), so the graph never overflows the request.
   */
  msPerSample: number;
  /** The request's wall time, the flame graph's full width. */
  wallMs: number;
  stacks: Stack[];
  /** Functions by self time (where the samples landed), heaviest first. */
  top: TopFrame[];
  /** Time sampled inside SQL frames (see isSqlFrame), outermost SQL frame counted once per stack. */
  sqlMs: number;
  /** Samples the agent or daemon cut for size (the `(truncated)` line). */
  truncatedSamples: number;
}

/** The profile on a request span, or null when it carries none (no excimer, or profiling off). */
export function profileOf(span: Pick<SpanRecord, 'attributes' | 'durationMs'>, topCount = 10): ProfileView | null {
  const a = span.attributes;
  const text = a[PROFILE.collapsed];
  const period = num(a[PROFILE.periodMs]);
  if (typeof text !== 'string' || text === '' || period === null || period <= 0) return null;
  const stacks = parseCollapsed(text);
  const samples = stacks.reduce((sum, s) => sum + s.count, 0);
  if (samples === 0) return null;
  const wallMs = Math.max(0, span.durationMs);
  const msPerSample = wallMs > 0 ? Math.min(period, wallMs / samples) : period;
  const self = new Map<string, number>();
  let sqlSamples = 0;
  let truncatedSamples = 0;
  for (const s of stacks) {
    const leaf = s.frames[s.frames.length - 1]!;
    if (s.frames.length === 1 && leaf === TRUNCATED_FRAME) truncatedSamples += s.count;
    self.set(leaf, (self.get(leaf) ?? 0) + s.count);
    if (s.frames.some(isSqlFrame)) sqlSamples += s.count;
  }
  const top = [...self]
    .filter(([name]) => name !== TRUNCATED_FRAME)
    .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))
    .slice(0, topCount)
    .map(([name, count]) => ({ name, selfMs: round(count * msPerSample), percent: wallMs > 0 ? round((count * msPerSample * 100) / wallMs, 1) : 0 }));
  return { periodMs: period, delayMs: Math.max(0, num(a[PROFILE.delayMs]) ?? 0), samples, msPerSample, wallMs, stacks, top, sqlMs: round(sqlSamples * msPerSample), truncatedSamples };
}

/** The summary's `bitville.profile_top` (["function self_ms", ...], top 5), or nothing without a profile. */
export function profileSummaryAttributes(request: Pick<SpanRecord, 'attributes' | 'durationMs'>): Attributes {
  const profile = profileOf(request, PROFILE_TOP);
  if (!profile || profile.top.length === 0) return {};
  return { [PROFILE.top]: profile.top.map((f) => `${f.name} ${f.selfMs.toFixed(1)}`) };
}

/** Lines for `bitville trace`: the sampling and the top frames by self time. */
export function formatProfileTop(profile: ProfileView | null): string[] {
  if (!profile) return [];
  const lines = [`  profile: ${profile.samples} samples every ${profile.periodMs} ms; top frames by self time:`];
  const width = Math.max(...profile.top.map((f) => f.name.length), 8);
  for (const f of profile.top.slice(0, PROFILE_TOP)) {
    lines.push(`    ${f.name.padEnd(width)}  ${f.selfMs.toFixed(1).padStart(8)} ms  ${f.percent.toFixed(1).padStart(5)}%${isSqlFrame(f.name) ? '  [SQL]' : ''}`);
  }
  return lines;
}

function num(v: AttributeValue | undefined): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return Number(v);
  return null;
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
