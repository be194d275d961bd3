// The overview on the admin server: `/overview` (latency chart, endpoints, statements),
// `/overview/endpoint?name=` (one endpoint's chart), and their JSON under `/api/overview/`.
// Server-rendered, no script; sorting is by links in the column headers, so it works from the
// keyboard; every value is escaped by the `html` tag (web.ts).
import { BitvilleError, formatDuration } from '../../collector/core/api.js';
import type { AdminResponse, AdminRoute, RecordReader } from '../../collector/core/api.js';
import { html } from './web.js';
import { latencyChart, formatMs } from './overview-chart.js';
import {
  ENDPOINT_SORTS,
  STATEMENT_SORTS,
  endpoints,
  latency,
  parseRange,
  statements,
  type EndpointRow,
  type EndpointSort,
  type StatementRow,
  type StatementSort,
  type TimeRange,
} from './overview-queries.js';
import { RELATIVE_ERROR } from './histogram.js';

type Html = ReturnType<typeof html>;
type Query = Readonly<Record<string, string>>;

const RANGES = ['1h', '6h', '24h', '7d'];
/** Rows a page shows per table (the JSON has them all). */
const PAGE_ROWS = 100;

const json = (body: unknown, status = 200): AdminResponse => ({ status, contentType: 'application/json', body: JSON.stringify(body) });
const pageResponse = (title: string, body: Html, status = 200): AdminResponse => ({ status, contentType: 'text/html; charset=utf-8', body: shell(title, body).toString() });

/** The range and sort orders a request asks for, or the problem with them. */
function optionsOf(query: Query): { range: TimeRange; sort: EndpointSort; qsort: StatementSort } {
  const range = parseRange({ range: query.range || undefined, since: query.since || undefined, until: query.until || undefined });
  const sort = (query.sort || 'total') as EndpointSort;
  const qsort = (query.qsort || 'total') as StatementSort;
  if (!ENDPOINT_SORTS.includes(sort)) throw new BitvilleError('BV_BAD_FILTER', `sort: one of ${ENDPOINT_SORTS.join(', ')}`);
  if (!STATEMENT_SORTS.includes(qsort)) throw new BitvilleError('BV_BAD_FILTER', `qsort: one of ${STATEMENT_SORTS.join(', ')}`);
  return { range, sort, qsort };
}

/** Runs `answer`; a bad option becomes a 400 with its message. */
async function guarded(query: Query, answer: (o: ReturnType<typeof optionsOf>) => Promise<AdminResponse>, asJson: boolean): Promise<AdminResponse> {
  let options;
  try {
    options = optionsOf(query);
  } catch (err) {
    if (!(err instanceof BitvilleError)) throw err;
    return asJson ? json({ error: err.message, code: 'BV_BAD_FILTER' }, 400) : pageResponse('Overview', html`<p class="error">${err.message}</p>${rangeForm(query)}`, 400);
  }
  return answer(options);
}

const rangeOut = (r: TimeRange) => ({ from: new Date(r.fromMs).toISOString(), until: new Date(r.untilMs).toISOString() });

export function overviewRoutes(reader: RecordReader): AdminRoute[] {
  return [
    {
      path: '/api/overview/endpoints',
      handle: ({ query }) => guarded(query, async (o) => json({ range: rangeOut(o.range), endpoints: await endpoints(reader, o.range, o.sort) }), true),
    },
    {
      path: '/api/overview/statements',
      handle: ({ query }) => guarded(query, async (o) => json({ range: rangeOut(o.range), statements: await statements(reader, o.range, o.qsort) }), true),
    },
    {
      path: '/api/overview/latency',
      handle: ({ query }) => guarded(query, async (o) => json({ range: rangeOut(o.range), ...(await latency(reader, o.range, query.endpoint || undefined)) }), true),
    },
    {
      path: '/overview',
      handle: ({ query }) =>
        guarded(
          query,
          async (o) => {
            const [series, eps, stmts] = await Promise.all([latency(reader, o.range), endpoints(reader, o.range, o.sort), statements(reader, o.range, o.qsort)]);
            return pageResponse('Overview', overviewPage(query, o.range, series, eps, stmts));
          },
          false,
        ),
    },
    {
      path: '/overview/endpoint',
      handle: ({ query }) =>
        guarded(
          query,
          async (o) => {
            const name = query.name ?? '';
            const [series, rows] = await Promise.all([latency(reader, o.range, name), endpoints(reader, o.range)]);
            const row = rows.find((r) => r.endpoint === name);
            return pageResponse(`Endpoint ${name}`, endpointPage(query, o.range, name, series, row), row ? 200 : 404);
          },
          false,
        ),
    },
  ];
}

/** The query string for a link that changes some parameters and keeps the others. */
function link(path: string, query: Query, change: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...query, ...change })) if (v !== undefined && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

function rangeForm(query: Query): Html {
  const current = query.since || query.until ? '' : query.range || '24h';
  return html`<nav class="ranges" aria-label="Time range">Range:
${RANGES.map((r) => (r === current ? html`<strong aria-current="true">${r}</strong>` : html`<a href="${link('/overview', query, { range: r, since: undefined, until: undefined })}">${r}</a>`))}
<form method="get" action="/overview">
  <label>since <input name="since" value="${query.since ?? ''}" placeholder="2d or 2026-12-01T08:00Z" size="18"></label>
  <label>until <input name="until" value="${query.until ?? ''}" placeholder="now" size="18"></label>
  <button type="submit">Show</button>
</form></nav>`;
}

const pct = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)} %`;
const ms = (x: number | null) => (x === null ? '–' : formatMs(x));

/** The request list of one endpoint's range, slowest first (the list filters by URL text). */
function slowestLink(endpoint: string, range: TimeRange): string {
  const route = endpoint.replace(/^[A-Z]+ /, '');
  // A route's fixed part, up to its first parameter, is what the request list's URL filter can match.
  const fixed = route.split(/[:{*]/)[0]!;
  const since = formatDuration(Math.max(60_000, Date.now() - range.fromMs));
  const p = new URLSearchParams({ slowest: '1', since, ...(fixed !== '' && fixed !== '/' ? { url: fixed } : {}) });
  return `/?${p.toString()}`;
}

function sortHeader(label: string, key: string, param: 'sort' | 'qsort', current: string, query: Query, anchor: string): Html {
  if (key === current) return html`<th aria-sort="${key === 'endpoint' || key === 'statement' ? 'ascending' : 'descending'}"><a href="${link('/overview', query, { [param]: key })}#${anchor}">${label} ▾</a></th>`;
  return html`<th><a href="${link('/overview', query, { [param]: key })}#${anchor}">${label}</a></th>`;
}

function overviewPage(query: Query, range: TimeRange, series: Awaited<ReturnType<typeof latency>>, eps: EndpointRow[], stmts: StatementRow[]): Html {
  const sort = query.sort || 'total';
  const qsort = query.qsort || 'total';
  const eh = (label: string, key: EndpointSort) => sortHeader(label, key, 'sort', sort, query, 'endpoints');
  const sh = (label: string, key: StatementSort) => sortHeader(label, key, 'qsort', qsort, query, 'statements');
  const total = eps.reduce((n, r) => n + r.requests, 0);
  return html`<h1>Overview</h1>
${rangeForm(query)}
<p class="range">${new Date(range.fromMs).toISOString().slice(0, 16)} – ${new Date(range.untilMs).toISOString().slice(0, 16)} UTC · ${total} requests · percentiles within ${(RELATIVE_ERROR * 100).toFixed(1)} % ·
<a href="/">recent requests</a></p>
<h2>Latency over time</h2>
${latencyChart(series, 'Latency of all endpoints (p50, p95, p99) and request volume')}
<h2 id="endpoints">Endpoints</h2>
${
  eps.length === 0
    ? html`<p class="empty">No requests in this range. Requests count here once the correlate processor has summarized them.</p>`
    : html`<table id="endpoint-table"><thead><tr>${eh('Endpoint', 'endpoint')}${eh('Requests', 'requests')}${eh('p50', 'p50')}${eh('p95', 'p95')}${eh('p99', 'p99')}${eh('Errors', 'errors')}${eh('DB share', 'db')}${eh('N+1', 'n_plus_one')}${eh('Total time', 'total')}<th>Slowest</th></tr></thead><tbody>
${eps.slice(0, PAGE_ROWS).map(
  (r) => html`<tr data-endpoint="${r.endpoint}"><td class="url"><a href="${link('/overview/endpoint', query, { name: r.endpoint, sort: undefined, qsort: undefined })}">${r.endpoint}</a></td>
<td class="num">${r.requests}</td><td class="num">${ms(r.p50Ms)}</td><td class="num">${ms(r.p95Ms)}</td><td class="num">${ms(r.p99Ms)}</td>
<td class="num${r.errorRate > 0 ? ' err' : ''}">${pct(r.errorRate)}</td><td class="num">${pct(r.dbShare)}</td><td class="num">${r.nPlusOne}</td><td class="num">${formatMs(r.totalMs)}</td>
<td><a href="${slowestLink(r.endpoint, range)}">slowest requests</a></td></tr>`,
)}</tbody></table>`
}
<h2 id="statements">Statements</h2>
${
  stmts.length === 0
    ? html`<p class="empty">No statements in this range.</p>`
    : html`<table id="statement-table"><thead><tr>${sh('Statement', 'statement')}${sh('Calls', 'calls')}${sh('Total time', 'total')}${sh('Mean', 'mean')}${sh('p95', 'p95')}${sh('Requests', 'requests')}${sh('N+1', 'n_plus_one')}<th>pg_stat_statements calls</th><th>pg_stat_statements total</th></tr></thead><tbody>
${stmts.slice(0, PAGE_ROWS).map(
  (r) => html`<tr><td class="sql"><code>${r.statement}</code></td><td class="num">${r.calls}</td><td class="num">${formatMs(r.totalMs)}</td><td class="num">${ms(r.meanMs)}</td><td class="num">${ms(r.p95Ms)}</td>
<td class="num">${r.requests}</td><td class="num">${r.nPlusOne}</td><td class="num">${r.pgStatStatements ? r.pgStatStatements.calls : '–'}</td><td class="num">${r.pgStatStatements ? formatMs(r.pgStatStatements.totalMs) : '–'}</td></tr>`,
)}</tbody></table>`
}`;
}

function endpointPage(query: Query, range: TimeRange, name: string, series: Awaited<ReturnType<typeof latency>>, row: EndpointRow | undefined): Html {
  return html`<h1>Endpoint <code>${name}</code></h1>
<p><a href="${link('/overview', query, { name: undefined })}">← overview</a> · <a href="${slowestLink(name, range)}">slowest requests</a></p>
${
  row
    ? html`<div class="facts"><div><b>Requests</b><span>${row.requests}</span></div><div><b>p50</b><span>${ms(row.p50Ms)}</span></div><div><b>p95</b><span>${ms(row.p95Ms)}</span></div>
<div><b>p99</b><span>${ms(row.p99Ms)}</span></div><div><b>Errors</b><span>${pct(row.errorRate)}</span></div><div><b>DB share</b><span>${pct(row.dbShare)}</span></div><div><b>N+1</b><span>${row.nPlusOne}</span></div></div>`
    : html`<p class="empty">No requests of this endpoint in the range.</p>`
}
${latencyChart(series, `Latency of ${name} (p50, p95, p99) and request volume`)}`;
}

// No quotes or angle brackets in here: it passes through the escaping html tag.
const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:10px 24px;display:flex;gap:16px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px 24px;max-width:1400px}
h1{font-size:18px;margin:4px 0 12px} h2{font-size:15px;margin:18px 0 8px}
nav.ranges{display:flex;flex-wrap:wrap;gap:10px;align-items:center;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:8px 12px}
nav.ranges form{display:flex;gap:8px;align-items:center;margin-left:16px}
input{font:inherit;padding:2px 6px;border:1px solid #c4ccd6;border-radius:4px}
button{font:inherit;padding:3px 12px;border:0;border-radius:4px;background:#2f6fb3;color:#fff;cursor:pointer}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2e8}
th,td{padding:5px 10px;border-bottom:1px solid #eef1f4;text-align:left}
th{font-size:12px;color:#556;background:#fafbfc} th a{color:#334}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.url{max-width:420px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.sql code{white-space:pre-wrap;word-break:break-word}
a{color:#2f6fb3} .err{color:#c92a2a;font-weight:600}
.empty,.error{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:14px}
.error{border-color:#f0a0a0;color:#a61e1e}
figure.chart{margin:0;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:8px}
.facts{display:flex;flex-wrap:wrap;gap:8px 28px;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 14px;margin-bottom:12px}
.facts div{display:flex;flex-direction:column} .facts b{font-size:12px;color:#556} .facts span{font-size:16px}
a:focus,button:focus,input:focus{outline:2px solid #f59f00;outline-offset:1px}
code{font-family:ui-monospace,monospace;font-size:12px}
`;

function shell(title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · Bitville</title><style>${CSS}</style></head>
<body><header><a href="/">Bitville</a><a href="/overview">Overview</a></header>
<main>${body}</main></body></html>`;
}
