// SQL statement text as the join needs it: one normal form per statement (normalizeSql), so two
// executions of the same statement meet, and its class (classifyStatement), so driver and
// pooler housekeeping is kept apart from the application's queries. Pure string work.

/**
 * What a statement is to the application:
 * - `query`: its own work; counted, in DB time, an N+1 candidate.
 * - `transaction`: BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: the application asked for them and a
 *   COMMIT can be slow (it waits for the WAL flush), so counted and in DB time, but never an N+1
 *   pattern (a loop of transactions repeats its inner statement, which is flagged instead).
 * - `housekeeping`: what drivers and poolers run on their own (pdo_pgsql's DEALLOCATE,
 *   pg_pconnect's RESET ALL, pgbouncer's DISCARD ALL and SET application_name): kept and shown,
 *   never counted, not in DB time, never N+1.
 */
export type StatementClass = 'query' | 'transaction' | 'housekeeping';

/** Session settings that drivers and poolers set or reset themselves (pgbouncer replays the client's). */
const POOLER_SETTINGS = new Set(['application_name', 'client_encoding', 'datestyle', 'timezone', 'intervalstyle', 'standard_conforming_strings', 'extra_float_digits']);
const TRANSACTION_WORDS = new Set(['begin', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release']);

/** Classifies a normalized statement (see normalizeSql) by its first words. */
export function classifyStatement(normalized: string): StatementClass {
  const words = normalized.split(' ', 4);
  const first = words[0] ?? '';
  if (first === 'deallocate' || first === 'discard' || first === 'reset') return 'housekeeping';
  if (first === 'set') {
    // `SET [SESSION|LOCAL] name {=|TO} ...`, with or without spaces around `=`.
    const name = (words[1] === 'session' || words[1] === 'local' ? words[2] : words[1])?.split('=')[0];
    return name !== undefined && POOLER_SETTINGS.has(name) ? 'housekeeping' : 'query';
  }
  // pgsql's persistent links release advisory locks when a request ends.
  if (normalized === 'select pg_advisory_unlock_all()') return 'housekeeping';
  if (TRANSACTION_WORDS.has(first) || ((first === 'start' || first === 'prepare') && words[1] === 'transaction')) return 'transaction';
  return 'query';
}

const enum Ch {
  Tab = 9, Nl = 10, Cr = 13, Space = 32, Dollar = 36, Quote = 39, DQuote = 34, LParen = 40, RParen = 41, Star = 42, Comma = 44,
  Dash = 45, Dot = 46, Slash = 47, D0 = 48, D9 = 57, Colon = 58, Semi = 59, Question = 63, A = 65, Z = 90, Under = 95, La = 97, Lz = 122,
}
const isDigit = (c: number) => c >= Ch.D0 && c <= Ch.D9;
const isWordStart = (c: number) => (c >= Ch.La && c <= Ch.Lz) || (c >= Ch.A && c <= Ch.Z) || c === Ch.Under || c > 127;
const isWordPart = (c: number) => isWordStart(c) || isDigit(c) || c === Ch.Dollar;
const isSpace = (c: number) => c === Ch.Space || c === Ch.Tab || c === Ch.Nl || c === Ch.Cr || c === 12;

/**
 * The text two executions of "the same statement" share: comments (sqlcommenter's
 * traceparent differs per request) and literals dropped, placeholders unified, whitespace and
 * case folded, IN lists collapsed. `SELECT * FROM t WHERE id = 7` and `... id = $1` meet.
 * One pass over the characters: it runs for every statement of every join (issue 13).
 */
export function normalizeSql(text: string): string {
  const n = text.length;
  let out = '';
  let space = false;
  // Where the current `(?, ?, ...` list began in `out` (-1: not in a list of placeholders only).
  let listOpen = -1;
  const emit = (piece: string) => {
    if (space && out !== '') out += ' ';
    space = false;
    out += piece;
  };
  const placeholder = () => {
    if (listOpen >= 0 && out.endsWith(',')) {
      // `(?,` + `?`: the list stays `(?` however long it is.
      out = out.slice(0, -1);
      space = false;
    } else if (out.endsWith('(')) {
      out += '?';
      space = false;
      listOpen = out.length - 2;
    } else {
      emit('?');
      listOpen = -1;
    }
  };
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      space = true;
      i++;
    } else if (c === Ch.Dash && text.charCodeAt(i + 1) === Ch.Dash) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl;
      space = true;
    } else if (c === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (text.charCodeAt(i) === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) (depth++, (i += 2));
        else if (text.charCodeAt(i) === Ch.Star && text.charCodeAt(i + 1) === Ch.Slash) (depth--, (i += 2));
        else i++;
      }
      space = true;
    } else if (c === Ch.Quote) {
      i = skipQuoted(text, i + 1, Ch.Quote);
      placeholder();
    } else if (c === Ch.DQuote) {
      const end = skipQuoted(text, i + 1, Ch.DQuote);
      listOpen = -1;
      emit(text.slice(i, end).toLowerCase());
      i = end;
    } else if (c === Ch.Dollar) {
      let j = i + 1;
      if (isDigit(text.charCodeAt(j))) {
        while (isDigit(text.charCodeAt(j))) j++;
        i = j;
        placeholder();
        continue;
      }
      // A dollar-quoted string: $tag$ ... $tag$.
      while (j < n && isWordPart(text.charCodeAt(j)) && text.charCodeAt(j) !== Ch.Dollar) j++;
      if (text.charCodeAt(j) === Ch.Dollar) {
        const tag = text.slice(i, j + 1);
        const close = text.indexOf(tag, j + 1);
        i = close < 0 ? n : close + tag.length;
        placeholder();
      } else {
        listOpen = -1;
        emit('$');
        i++;
      }
    } else if (c === Ch.Colon && text.charCodeAt(i + 1) === Ch.Colon) {
      // A cast, not a named placeholder.
      listOpen = -1;
      emit('::');
      i += 2;
    } else if (c === Ch.Colon && isWordStart(text.charCodeAt(i + 1))) {
      let j = i + 1;
      while (j < n && isWordPart(text.charCodeAt(j))) j++;
      i = j;
      placeholder();
    } else if (c === Ch.Question) {
      i++;
      placeholder();
    } else if (isDigit(c) || (c === Ch.Dot && isDigit(text.charCodeAt(i + 1)))) {
      let j = i;
      while (j < n && (isDigit(text.charCodeAt(j)) || text.charCodeAt(j) === Ch.Dot)) j++;
      const e = text.charCodeAt(j) | 0x20;
      if (e === 101 /* e */) {
        let k = j + 1;
        const sign = text.charCodeAt(k);
        if (sign === 43 || sign === Ch.Dash) k++;
        if (isDigit(text.charCodeAt(k))) {
          while (isDigit(text.charCodeAt(k))) k++;
          j = k;
        }
      }
      i = j;
      placeholder();
    } else if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordPart(text.charCodeAt(j))) j++;
      // E'...', B'...', X'...', N'...': prefixed string literals.
      if (j === i + 1 && text.charCodeAt(j) === Ch.Quote && 'eEbBxXnN'.includes(text[i]!)) {
        i = skipQuoted(text, j + 1, Ch.Quote);
        placeholder();
        continue;
      }
      listOpen = -1;
      emit(text.slice(i, j).toLowerCase());
      i = j;
    } else {
      if (c === Ch.Comma && listOpen >= 0) {
        out += ',';
        space = false;
      } else if (c === Ch.RParen && listOpen >= 0) {
        out = `${out.slice(0, listOpen)}(?)`;
        space = false;
        listOpen = -1;
      } else {
        listOpen = -1;
        emit(text[i]!);
      }
      i++;
    }
  }
  while (out.endsWith(';')) out = out.slice(0, -1).trimEnd();
  return out;
}

/** The index after a quoted run starting at `from` (after the opening quote); a doubled quote is an escaped one. */
function skipQuoted(text: string, from: number, quote: number): number {
  let i = from;
  for (;;) {
    const at = text.indexOf(String.fromCharCode(quote), i);
    if (at < 0) return text.length;
    if (text.charCodeAt(at + 1) === quote) i = at + 2;
    else return at + 1;
  }
}
