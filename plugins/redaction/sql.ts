// Replaces the literals of a SQL statement by `?`: quoted strings (with '' and E'\'' escapes,
// and the B/X/E/U& prefixes), dollar-quoted strings and numbers. Identifiers, "quoted
// identifiers", $1 placeholders, keywords (TRUE, NULL) and comments stay, so a sqlcommenter
// comment keeps its traceparent and the statement's shape is still readable. One pass, no regex
// backtracking: a statement of any length costs its length.

const isDigit = (c: number) => c >= 48 && c <= 57;
const isWord = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36 || c >= 128;

/** The statement with its literals as `?`, and how many were replaced. */
export function sanitizeSql(sql: string): { text: string; count: number } {
  let out = '';
  let count = 0;
  let i = 0;
  let copied = 0;
  const n = sql.length;
  const replace = (start: number, end: number) => {
    out += sql.slice(copied, start) + '?';
    copied = end;
    count++;
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    // -- comment to end of line
    if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    // /* block comment */
    if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    // "quoted identifier"
    if (c === 34) {
      let j = i + 1;
      while (j < n && !(sql.charCodeAt(j) === 34 && sql.charCodeAt(j + 1) !== 34)) j += sql.charCodeAt(j) === 34 ? 2 : 1;
      i = j + 1;
      continue;
    }
    // 'string', with an optional E / B / X / N / U& prefix glued to it
    if (c === 39) {
      let start = i;
      if (i > 0 && /[EeBbXxNn]/.test(sql[i - 1]!) && (i === 1 || !isWord(sql.charCodeAt(i - 2)))) start = i - 1;
      else if (i > 1 && sql[i - 1] === '&' && /[Uu]/.test(sql[i - 2]!) && (i === 2 || !isWord(sql.charCodeAt(i - 3)))) start = i - 2;
      // Only an E'...' string understands \' (a word ending in e before a quote is not one).
      const backslash = start === i - 1 && (sql[start] === 'E' || sql[start] === 'e');
      let j = i + 1;
      while (j < n) {
        const d = sql.charCodeAt(j);
        if (backslash && d === 92) {
          j += 2;
          continue;
        }
        if (d === 39) {
          if (sql.charCodeAt(j + 1) === 39) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      i = Math.min(j + 1, n);
      replace(start, i);
      continue;
    }
    // $tag$ dollar-quoted $tag$ (a $1 placeholder is not one)
    if (c === 36 && (i === 0 || !isWord(sql.charCodeAt(i - 1)))) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66));
      if (m) {
        const start = i;
        const end = sql.indexOf(m[0], i + m[0].length);
        i = end < 0 ? n : end + m[0].length;
        replace(start, i);
        continue;
      }
    }
    // a number not inside a word (t1, $1 and x2y stay)
    if ((isDigit(c) || (c === 46 && isDigit(sql.charCodeAt(i + 1)))) && (i === 0 || !isWord(sql.charCodeAt(i - 1)))) {
      let j = i;
      if (c === 48 && /[xXbBoO]/.test(sql[i + 1] ?? '')) j += 2;
      while (j < n && (isWord(sql.charCodeAt(j)) || sql.charCodeAt(j) === 46 || ((sql[j] === '+' || sql[j] === '-') && /[eE]/.test(sql[j - 1]!)))) j++;
      replace(i, j);
      i = j;
      continue;
    }
    // skip the rest of a word at once
    if (isWord(c)) {
      let j = i + 1;
      while (j < n && isWord(sql.charCodeAt(j))) j++;
      i = j;
      continue;
    }
    i++;
  }
  return { text: count === 0 ? sql : out + sql.slice(copied), count };
}
