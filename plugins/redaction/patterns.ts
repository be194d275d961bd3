// Value patterns: the built-in named ones (emails, card numbers, bearer tokens) and the
// user's regexes, each a masker that replaces what it finds and reports how many it masked.

export const MASK = '****';

export interface Masker {
  /** The metric kind (`email`, `credit_card`, `bearer_token`, `value`). */
  kind: string;
  /** The text with matches masked, and how many there were; same string when none. */
  mask(text: string, replacement: (found: string) => string): { text: string; count: number };
}

/** Luhn checksum over the digits of a candidate card number. */
export function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function regexMasker(kind: string, source: string, accept?: (found: string) => boolean, keepPrefix?: RegExp, hint?: (text: string) => boolean): Masker {
  const re = new RegExp(source, 'g');
  return {
    kind,
    mask(text, replacement) {
      // A cheap test first: most values cannot hold the pattern at all.
      if (hint && !hint(text)) return { text, count: 0 };
      re.lastIndex = 0;
      if (!re.test(text)) return { text, count: 0 };
      let count = 0;
      const out = text.replace(re, (found) => {
        if (accept && !accept(found)) return found;
        count++;
        // `Bearer abc` keeps its scheme word, so a reader still sees what was there.
        const prefix = keepPrefix?.exec(found)?.[0] ?? '';
        return prefix + replacement(found.slice(prefix.length));
      });
      return { text: count === 0 ? text : out, count };
    },
  };
}

export const BUILTIN = {
  email: () => regexMasker('email', String.raw`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`, undefined, undefined, (t) => t.includes('@')),
  // 13 to 19 digits, optionally grouped by spaces or dashes; masked only when the Luhn check passes.
  credit_card: () =>
    regexMasker('credit_card', String.raw`(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])`, (found) => {
      const digits = found.replace(/[ -]/g, '');
      return digits.length >= 13 && digits.length <= 19 && luhn(digits);
    }, undefined, (t) => t.length >= 13 && /\d{4}/.test(t)),
  bearer_token: () => regexMasker('bearer_token', String.raw`\b[Bb]earer\s+[A-Za-z0-9\-._~+/]+=*`, undefined, /^[Bb]earer\s+/, (t) => t.includes('earer')),
} as const;

export type BuiltinName = keyof typeof BUILTIN;
export const BUILTIN_NAMES = Object.keys(BUILTIN) as BuiltinName[];

export function userMasker(pattern: string): Masker {
  return regexMasker('value', pattern);
}

/** Replaces the values of blocked query parameters (`name=value`) in a URL or a bare query. */
export function maskQuery(text: string, blocked: ReadonlySet<string>, marker: string): { text: string; count: number } {
  const q = text.indexOf('?');
  // `url.query` holds the query alone; a full URL has it after `?`.
  const start = q >= 0 ? q + 1 : text.includes('://') || text.startsWith('/') ? -1 : 0;
  if (start < 0) return { text, count: 0 };
  const hash = text.indexOf('#', start);
  const end = hash < 0 ? text.length : hash;
  let count = 0;
  const pairs = text.slice(start, end).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    if (eq < 0) return pair;
    let name: string;
    try {
      name = decodeURIComponent(pair.slice(0, eq).replace(/\+/g, ' ')).toLowerCase();
    } catch {
      name = pair.slice(0, eq).toLowerCase();
    }
    if (!blocked.has(name) || pair.slice(eq + 1) === marker) return pair;
    count++;
    return `${pair.slice(0, eq)}=${marker}`;
  });
  return count === 0 ? { text, count } : { text: text.slice(0, start) + pairs.join('&') + text.slice(end), count };
}
