// The profile part of a php-agent datagram: collapsed stacks (`frame;frame;frame count` lines)
// as agent.php builds them from excimer's samples. The daemon does not trust them: it parses
// every line, drops the malformed ones, cleans frame names, and cuts the result by weight to
// its own bounds, so whatever reaches the collector is small, valid UTF-8 and well formed.
import { wellFormed } from '../runtime/encode.js';

/** The bounds of a sanitised profile (documented in docs/php-agent.md). */
export const PROFILE_LIMITS = {
  /** Distinct stacks kept (heaviest first); the rest become one `(truncated) N` line. */
  stacks: 1000,
  /** Characters of the collapsed text. */
  chars: 60_000,
  /** Characters of one frame name. */
  frame: 512,
  /** Frames of one stack (the outermost are kept). */
  depth: 256,
} as const;

export const TRUNCATED_FRAME = '(truncated)';

export interface SanitisedProfile {
  collapsed: string;
  /** Sum of the kept lines' counts (the samples the text accounts for). */
  samples: number;
  /** Whether anything was dropped, cut or cleaned. */
  changed: boolean;
}

// Control characters would break the line format (and have no place in a function name).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

/** Parses, cleans and bounds collapsed stacks; undefined when no line is usable. */
export function sanitiseCollapsed(raw: string): SanitisedProfile | undefined {
  let changed = false;
  const stacks = new Map<string, number>();
  for (const line of wellFormed(raw).split('\n')) {
    if (line === '') continue;
    const space = line.lastIndexOf(' ');
    const countText = space < 0 ? '' : line.slice(space + 1);
    if (!/^[1-9]\d{0,9}$/.test(countText)) {
      changed = true;
      continue;
    }
    let frames = line
      .slice(0, space)
      .split(';')
      .map((f) => {
        const clean = f.replace(CONTROL, '?').trim();
        return clean.length > PROFILE_LIMITS.frame ? clean.slice(0, PROFILE_LIMITS.frame) : clean;
      })
      .filter((f) => f !== '');
    if (frames.length > PROFILE_LIMITS.depth) frames = frames.slice(0, PROFILE_LIMITS.depth);
    const stack = frames.join(';');
    if (stack !== line.slice(0, space)) changed = true;
    if (stack === '') continue;
    stacks.set(stack, (stacks.get(stack) ?? 0) + Number(countText));
  }
  if (stacks.size === 0) return undefined;
  // The agent's own "(truncated) N" line is weight like any other and is kept as the last line.
  const truncatedBefore = stacks.get(TRUNCATED_FRAME) ?? 0;
  stacks.delete(TRUNCATED_FRAME);
  const lines: string[] = [];
  let chars = 0;
  let rest = truncatedBefore;
  let samples = 0;
  for (const [stack, count] of [...stacks].sort((a, b) => b[1] - a[1])) {
    const line = `${stack} ${count}`;
    samples += count;
    if (rest === truncatedBefore && lines.length < PROFILE_LIMITS.stacks && chars + line.length + 1 <= PROFILE_LIMITS.chars - 24) {
      lines.push(line);
      chars += line.length + 1;
    } else {
      rest += count;
      changed = true;
    }
  }
  if (rest > 0) lines.push(`${TRUNCATED_FRAME} ${rest}`);
  return { collapsed: lines.join('\n'), samples: samples + truncatedBefore, changed };
}
