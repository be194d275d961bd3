// What the agent reads out of a statement's text, in one pass of a small PostgreSQL lexer:
// the text with literals replaced by placeholders, the operation, the one table it touches
// (only when that is unambiguous, as the OpenTelemetry DB conventions ask), and a sqlcommenter
// comment. A lexer rather than regular expressions because a literal may contain anything,
// comment markers and quotes included.

export interface SqlComment {
  /** The sqlcommenter key/value pairs, values URL-decoded. */
  fields: Record<string, string>;
}

export interface SqlFacts {
  /** The text with string, number, dollar-quoted and bit/hex literals replaced by `?`, sqlcommenter comment removed. */
  redacted: string;
  /** The text with only the sqlcommenter comment removed. */
  raw: string;
  /** First keyword, upper case (`SELECT`, `INSERT`, ...), or undefined for an empty text. */
  operation: string | undefined;
  /** The single table the statement names, when it names exactly one. */
  collection: string | undefined;
  /** The sqlcommenter comment, when the text carries one (prepended or appended). */
  comment: SqlComment | undefined;
}

type Token =
  | { kind: 'literal'; start: number; end: number }
  | { kind: 'comment'; start: number; end: number; body: string }
  | { kind: 'word'; start: number; end: number; text: string }
  | { kind: 'ident'; start: number; end: number; text: string }
  | { kind: 'other'; start: number; end: number; text: string };

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isWordStart = (c: string | undefined) => c !== undefined && /[A-Za-z_\u0080-\uffff]/.test(c);
const isWordPart = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** Splits SQL into tokens; an unterminated literal or comment (a truncated text) runs to the end. */
function* tokens(sql: string): Generator<Token> {
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    const start = i;
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl;
      yield { kind: 'comment', start, end: i, body: sql.slice(start + 2, i) };
    } else if (c === '/' && sql[i + 1] === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') (depth++, (i += 2));
        else if (sql[i] === '*' && sql[i + 1] === '/') (depth--, (i += 2));
        else i++;
      }
      yield { kind: 'comment', start, end: i, body: sql.slice(start + 2, depth === 0 ? i - 2 : i) };
    } else if (c === "'" || ((c === 'E' || c === 'e' || c === 'B' || c === 'b' || c === 'X' || c === 'x' || c === 'N' || c === 'n') && sql[i + 1] === "'")) {
      const escapes = c === 'E' || c === 'e';
      i = c === "'" ? i + 1 : i + 2;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") {
          i++;
          break;
        } else i++;
      }
      yield { kind: 'literal', start, end: Math.min(i, n) };
    } else if (c === '$' && /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))![0];
      const close = sql.indexOf(tag, i + tag.length);
      i = close < 0 ? n : close + tag.length;
      yield { kind: 'literal', start, end: i };
    } else if (c === '"') {
      i++;
      while (i < n) {
        if (sql[i] === '"' && sql[i + 1] === '"') i += 2;
        else if (sql[i] === '"') {
          i++;
          break;
        } else i++;
      }
      yield { kind: 'ident', start, end: i, text: sql.slice(start + 1, i - 1).replace(/""/g, '"') };
    } else if (isDigit(c) || (c === '.' && isDigit(sql[i + 1]))) {
      if (c === '0' && /[xXoObB]/.test(sql[i + 1] ?? '')) i += 2;
      while (i < n && /[0-9A-Fa-f_.]/.test(sql[i]!)) {
        // An exponent sign belongs to the number.
        if ((sql[i] === 'e' || sql[i] === 'E') && (sql[i + 1] === '+' || sql[i + 1] === '-')) i++;
        i++;
      }
      yield { kind: 'literal', start, end: i };
    } else if (isWordStart(c)) {
      while (i < n && isWordPart(sql[i])) i++;
      yield { kind: 'word', start, end: i, text: sql.slice(start, i) };
    } else if (c === '$' && isDigit(sql[i + 1])) {
      // A bind parameter ($1) stays as it is.
      i++;
      while (i < n && isDigit(sql[i])) i++;
      yield { kind: 'other', start, end: i, text: sql.slice(start, i) };
    } else if (/\s/.test(c)) {
      i++; // whitespace is kept as the gap between tokens
    } else {
      i++;
      yield { kind: 'other', start, end: i, text: c };
    }
  }
}

/** Parses a sqlcommenter comment body (`key='value',key2='value2'`, values URL-encoded); undefined when it is not one. */
export function parseSqlComment(body: string): SqlComment | undefined {
  const text = body.trim();
  if (text === '') return undefined;
  const fields: Record<string, string> = {};
  const pair = /\s*([A-Za-z0-9_.%-]+)='((?:[^'\\]|\\.)*)'\s*(?:,|$)/y;
  let at = 0;
  while (at < text.length) {
    pair.lastIndex = at;
    const m = pair.exec(text);
    if (!m) return undefined;
    try {
      fields[decodeURIComponent(m[1]!)] = decodeURIComponent(m[2]!.replace(/\\'/g, "'"));
    } catch {
      return undefined;
    }
    at = pair.lastIndex;
  }
  return Object.keys(fields).length > 0 ? { fields } : undefined;
}

const NEXT_IS_TABLE = new Set(['FROM', 'JOIN', 'INTO', 'UPDATE', 'TABLE']);
// Words after FROM that are not a table name.
const NOT_A_TABLE = new Set(['SELECT', 'LATERAL', 'ONLY', 'UNNEST', 'GENERATE_SERIES', 'VALUES', 'WITH']);

export function analyzeSql(sql: string): SqlFacts {
  const all = [...tokens(sql)];
  const code = all.filter((t) => t.kind !== 'comment');
  // sqlcommenter puts its comment at the end (some libraries put it at the start).
  let comment: SqlComment | undefined;
  let commentToken: Token | undefined;
  const blockComments = all.filter((t): t is Extract<Token, { kind: 'comment' }> => t.kind === 'comment' && sql.startsWith('/*', t.start));
  for (const candidate of [blockComments.at(-1), blockComments[0]]) {
    if (!candidate) continue;
    const parsed = parseSqlComment(candidate.body);
    if (parsed) {
      comment = parsed;
      commentToken = candidate;
      break;
    }
  }
  let redacted = '';
  let raw = '';
  let at = 0;
  for (const t of all) {
    const gap = sql.slice(at, t.start);
    redacted += gap;
    raw += gap;
    if (t === commentToken) {
      // Drop the comment (and nothing else): it is metadata, carried in the span's ids.
    } else {
      const text = sql.slice(t.start, t.end);
      raw += text;
      redacted += t.kind === 'literal' ? '?' : text;
    }
    at = t.end;
  }
  redacted = redacted.trim();
  raw = raw.trim();

  const words = code.filter((t) => t.kind === 'word' || t.kind === 'ident' || t.kind === 'other');
  const firstWord = words.find((t) => t.kind === 'word');
  const operation = firstWord && firstWord.kind === 'word' ? firstWord.text.toUpperCase() : undefined;

  const tables = new Set<string>();
  for (let k = 0; k < words.length - 1; k++) {
    const t = words[k]!;
    if (t.kind !== 'word' || !NEXT_IS_TABLE.has(t.text.toUpperCase())) continue;
    let j = k + 1;
    if (words[j]?.kind === 'word' && (words[j] as { text: string }).text.toUpperCase() === 'ONLY') j++;
    const name = qualifiedName(words, j);
    // After FROM/JOIN a name followed by `(` is a function (pg_sleep(1)); after INTO it is a column list.
    const isFunction = t.text.toUpperCase() !== 'INTO' && followedByParen(words, j);
    if (name && !isFunction && !NOT_A_TABLE.has(name.toUpperCase())) tables.add(name);
  }
  return { redacted, raw, operation, collection: tables.size === 1 ? [...tables][0] : undefined, comment };
}

function followedByParen(words: Token[], j: number): boolean {
  while (words[j] && (words[j]!.kind === 'word' || words[j]!.kind === 'ident' || (words[j]!.kind === 'other' && (words[j] as { text: string }).text === '.'))) j++;
  return words[j]?.kind === 'other' && (words[j] as { text: string }).text === '(';
}

/** Reads `name`, `schema.name` or `"Quoted".name` starting at words[j]. */
function qualifiedName(words: Token[], j: number): string | undefined {
  const parts: string[] = [];
  for (;;) {
    const t = words[j];
    if (!t) break;
    if (t.kind === 'word') parts.push(t.text.toLowerCase());
    else if (t.kind === 'ident') parts.push(t.text);
    else break;
    if (words[j + 1]?.kind === 'other' && (words[j + 1] as { text: string }).text === '.') j += 2;
    else break;
  }
  return parts.length > 0 ? parts.join('.') : undefined;
}
