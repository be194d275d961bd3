// `bitville top endpoints` and `bitville top queries` as plain-text tables: the same rows the
// overview page and its JSON show (overview-queries.ts).
import { formatMs } from './overview-chart.js';
import type { EndpointRow, StatementRow, TimeRange } from './overview-queries.js';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ms = (x: number | null) => (x === null ? '-' : formatMs(x));

function table(header: string[], rows: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function rangeLine(range: TimeRange): string {
  return `${new Date(range.fromMs).toISOString().slice(0, 16)} - ${new Date(range.untilMs).toISOString().slice(0, 16)} UTC\n`;
}

export function formatEndpoints(rows: readonly EndpointRow[], range: TimeRange): string {
  if (rows.length === 0) return `${rangeLine(range)}no requests in this range\n`;
  return (
    rangeLine(range) +
    table(
      ['ENDPOINT', 'REQUESTS', 'P50', 'P95', 'P99', 'ERRORS', 'DB', 'N+1', 'TOTAL'],
      rows.map((r) => [r.endpoint, String(r.requests), ms(r.p50Ms), ms(r.p95Ms), ms(r.p99Ms), pct(r.errorRate), pct(r.dbShare), String(r.nPlusOne), formatMs(r.totalMs)]),
      1,
    )
  );
}

export function formatStatements(rows: readonly StatementRow[], range: TimeRange, width = 70): string {
  if (rows.length === 0) return `${rangeLine(range)}no statements in this range\n`;
  const cut = (s: string) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
  return (
    rangeLine(range) +
    table(
      ['CALLS', 'TOTAL', 'MEAN', 'P95', 'REQUESTS', 'N+1', 'PG CALLS', 'PG TOTAL', 'STATEMENT'],
      rows.map((r) => [
        String(r.calls),
        formatMs(r.totalMs),
        ms(r.meanMs),
        ms(r.p95Ms),
        String(r.requests),
        String(r.nPlusOne),
        r.pgStatStatements ? String(r.pgStatStatements.calls) : '-',
        r.pgStatStatements ? formatMs(r.pgStatStatements.totalMs) : '-',
        cut(r.statement),
      ]),
      0,
    )
  );
}
