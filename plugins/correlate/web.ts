// The request pages and their JSON API, served on the admin server as the correlate
// processor's routes. Server-rendered HTML with a little inline CSS: no front-end build, no
// script, one round trip per page. Every value is escaped by the `html` template tag; only
// fragments built by the tag itself pass through unescaped.
import { BitvilleError, formatDuration } from '../../collector/core/api.js';
import type { AdminRequest, AdminResponse, AdminRoute, RecordReader } from '../../collector/core/api.js';
import { DEFAULT_JOIN_OPTIONS, type JoinOptions } from './join.js';
import { listRequests, parseRequestFilters, traceOf, type RequestFilters, type RequestRow, type SummaryState, type TraceView } from './lookup.js';
import type { TreeSpan } from './trace-view.js';
import { renderProfileSection } from './flamegraph.js';

class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(value);
}

/** Template tag: interpolated values are escaped, nested `html` fragments and arrays of them are not. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return new Html(strings.reduce((out, s, i) => out + s + (i < values.length ? render(values[i]) : ''), ''));
}

const json = (body: unknown, status = 200): AdminResponse => ({ status, contentType: 'application/json', body: JSON.stringify(body) });
const htmlPage = (title: string, body: Html, status = 200): AdminResponse => ({ status, contentType: 'text/html; charset=utf-8', body: page(title, body).text });

/**
 * `/`, `/requests/:id` and `/traces/:id` (one page: the request summary when there is one, then
 * the whole trace), `/traces?id=` (the list page's trace id form), `/api/requests`, and
 * `/api/requests/:id` = `/api/traces/:id`, reading from `reader`.
 */
export function requestRoutes(reader: RecordReader, windowMs: number, options: JoinOptions = DEFAULT_JOIN_OPTIONS): AdminRoute[] {
  const filtersOf = (query: Record<string, string>): { filters?: RequestFilters; error?: string } => {
    try {
      return { filters: parseRequestFilters(query) };
    } catch (err) {
      if (!(err instanceof BitvilleError)) throw err;
      return { error: err.message };
    }
  };
  const tracePageFor = async (id: string): Promise<AdminResponse> => {
    const view = await traceOf(reader, id, options, { windowMs });
    if (!view) return htmlPage('Not found', html`<p class="empty">No records with correlation id <code>${id}</code>.</p>${traceForm(id)}`, 404);
    return htmlPage(`${view.request || view.queries.length ? 'Request' : 'Trace'} ${view.correlationId}`, tracePage(view, windowMs));
  };
  return [
    {
      path: '/api/requests',
      async handle({ query }) {
        const { filters, error } = filtersOf(query);
        if (!filters) return json({ error, code: 'BV_BAD_FILTER' }, 400);
        return json({ requests: await listRequests(reader, filters) });
      },
    },
    ...['/api/requests/:id', '/api/traces/:id'].map((path) => ({
      path,
      async handle({ params }: AdminRequest) {
        const view = await traceOf(reader, params.id!, options, { windowMs });
        return view ? json(view) : json({ error: `no records with correlation id ${params.id}` }, 404);
      },
    })),
    {
      path: '/',
      async handle({ query }) {
        const { filters, error } = filtersOf(query);
        const rows = filters ? await listRequests(reader, filters) : [];
        return htmlPage('Requests', listPage(query, rows, error, windowMs), error ? 400 : 200);
      },
    },
    {
      // The list page's "open a trace" form: GET /traces?id=<pasted id>.
      path: '/traces',
      async handle({ query }) {
        const id = (query.id ?? '').trim();
        if (id === '') return htmlPage('Trace', html`<p class="error">Paste a trace or correlation id.</p>${traceForm('')}`, 400);
        return tracePageFor(id);
      },
    },
    ...['/requests/:id', '/traces/:id'].map((path) => ({ path, handle: ({ params }: AdminRequest) => tracePageFor(params.id!) })),
  ];
}

const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:10px 24px;display:flex;gap:16px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
header span{color:#9fb3c8;font-size:13px}
main{padding:16px 24px;max-width:1400px}
h1{font-size:18px;margin:4px 0 12px}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 12px;margin-bottom:14px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#556}
form.filters input,form.filters select{font:inherit;padding:3px 6px;border:1px solid #c4ccd6;border-radius:4px}
form.filters label.check{flex-direction:row;gap:4px;align-items:center;font-size:14px;color:#1d2430}
button{font:inherit;padding:4px 14px;border:0;border-radius:4px;background:#2f6fb3;color:#fff;cursor:pointer}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2e8}
th,td{padding:6px 10px;border-bottom:1px solid #eef1f4;text-align:left;vertical-align:middle}
th{font-size:12px;color:#556;font-weight:600;background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.url{max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
a{color:#2f6fb3}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;font-weight:700;background:#e8590c;color:#fff;margin-left:4px}
.err{color:#c92a2a;font-weight:600}
.empty,.error{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:14px}
.error{border-color:#f0a0a0;color:#a61e1e}
.meter{display:inline-block;height:8px;background:#2f6fb3;border-radius:2px;vertical-align:middle;margin-left:6px}
.facts{display:flex;flex-wrap:wrap;gap:8px 28px;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 14px;margin-bottom:12px}
.facts div{display:flex;flex-direction:column}
.facts b{font-size:12px;color:#556;font-weight:600}
.facts span{font-size:16px;font-variant-numeric:tabular-nums}
.nplus-note{background:#fff4e6;border:1px solid #ffc078;border-radius:6px;padding:8px 14px;margin-bottom:12px}
.nplus-note code{background:#ffe8cc}
.wf{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:8px 0}
.wf .row{display:grid;grid-template-columns:minmax(260px,38%) 1fr 84px;gap:10px;align-items:center;padding:2px 14px;height:24px}
.wf .badge{font-size:10px;line-height:15px;margin:0 2px 0 0}
.badge.hk{background:#868e96}
.row.housekeeping .bar{opacity:.4}
.wf .row:hover{background:#f1f5fa}
.wf .label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font:12px/1.6 ui-monospace,SFMono-Regular,Menlo,monospace}
.wf .track{position:relative;height:14px;background:repeating-linear-gradient(90deg,transparent 0 calc(25% - 1px),#eef1f4 calc(25% - 1px) 25%)}
.wf .bar{position:absolute;top:2px;height:10px;min-width:2px;border-radius:2px;background:#4c8fd6}
.wf .row.request .bar{background:#1d2b3a;top:0;height:14px}
.wf .row.request .label{font-weight:700;font-family:inherit}
.wf .row.nplus{background:#fff4e6}
.wf .row.nplus .bar{background:#e8590c}
.wf .row.error .bar{background:#c92a2a}
.wf .dur{text-align:right;font-variant-numeric:tabular-nums;font-size:12px;white-space:nowrap}
.wf .axis{display:grid;grid-template-columns:minmax(260px,38%) 1fr 84px;gap:10px;padding:0 14px 4px;font-size:11px;color:#778}
.wf .axis .ticks{display:flex;justify-content:space-between}
h2{font-size:15px;margin:18px 0 8px}
.wf.tree ol{list-style:none;margin:0;padding:0}
.wf.tree .row{height:auto;min-height:24px}
.wf.tree .kind{display:inline-block;font:10px/15px system-ui,sans-serif;padding:0 5px;border-radius:8px;background:#dde2e8;color:#334}
.wf.tree .k-server{background:#1d2b3a;color:#fff}
.wf.tree .k-client{background:#d0e4f7}
.wf.tree .svc{color:#778;font-family:system-ui,sans-serif;font-size:11px}
.wf.tree .stmt{color:#556}
.wf.tree li.span-error .bar{background:#c92a2a}
.wf.tree .tick{position:absolute;top:0;width:2px;height:14px;background:#f59f00}
.wf.tree .tick.exc{background:#c92a2a;width:3px}
.badge.errb{background:#c92a2a}
.more{font-size:12px;padding:2px 14px 6px;border-left:2px solid #eef1f4}
.more .event{margin:2px 0}
.more .exception{color:#a61e1e}
.more pre{background:#fff5f5;border:1px solid #f0c0c0;padding:6px 8px;overflow:auto;max-height:320px;color:#1d2430}
.more summary{cursor:pointer;color:#2f6fb3}
.status-msg{margin:2px 0}
#logs td.body{font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap}
#logs tr.err td{color:#a61e1e}
a:focus,summary:focus,button:focus,input:focus{outline:2px solid #f59f00;outline-offset:1px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
`;

function page(title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · Bitville</title><style>${new Html(CSS)}</style></head>
<body><header><a href="/">Bitville</a><span>slow PHP requests and their SQL, and any trace</span></header>
<main>${body}</main></body></html>`;
}

const SINCE_CHOICES = ['15m', '1h', '6h', '24h', '7d'];

function listPage(query: Record<string, string>, rows: RequestRow[], error: string | undefined, windowMs: number): Html {
  const q = (k: string) => (typeof query[k] === 'string' ? (query[k] as string) : '');
  const since = q('since') || '24h';
  const choices = SINCE_CHOICES.includes(since) ? SINCE_CHOICES : [since, ...SINCE_CHOICES];
  const slowest = 'slowest' in query && !['0', 'false', 'no', 'off'].includes(q('slowest'));
  const longest = Math.max(1, ...rows.map((r) => r.durationMs));
  return html`<h1>Recent requests</h1>
<form class="filters" method="get" action="/">
  <label>Since<select name="since">${choices.map((c) => html`<option${c === since ? html` selected` : ''}>${c}</option>`)}</select></label>
  <label>Project<input name="project" value="${q('project')}" size="12"></label>
  <label>URL contains<input name="url" value="${q('url')}" size="24"></label>
  <label>Min duration<input name="min_duration" value="${q('min_duration')}" placeholder="500ms" size="7"></label>
  <label class="check"><input type="checkbox" name="slowest" value="1"${slowest ? html` checked` : ''}> slowest first</label>
  <button type="submit">Show</button>
</form>
${traceForm('')}
${error ? html`<p class="error">${error}</p>` : ''}
${
  rows.length === 0 && !error
    ? html`<p class="empty">No requests match. A request appears here once its summary is made: when no span of it has arrived for the join window (${formatDuration(windowMs)}).</p>`
    : rows.length === 0
      ? ''
      : html`<table id="requests"><thead><tr><th>Time (UTC)</th><th>Duration</th><th>DB time</th><th>Queries</th><th>Status</th><th>Method</th><th>URL</th><th>Project</th></tr></thead><tbody>
${rows.map(
  (r) => html`<tr data-correlation-id="${r.correlationId}">
<td class="num">${r.time.replace('T', ' ').slice(0, 19)}</td>
<td class="num">${fmt(r.durationMs)} ms<span class="meter" style="width:${((r.durationMs / longest) * 60).toFixed(1)}px"></span></td>
<td class="num">${fmt(r.dbTimeMs)} ms</td>
<td class="num">${r.queryCount}${r.nPlusOne ? html`<span class="badge" title="${r.nPlusOneQuery ?? ''}">N+1</span>` : ''}</td>
<td class="num${r.status !== null && r.status >= 500 ? ' err' : ''}">${r.status ?? '-'}</td>
<td>${r.method ?? '-'}</td>
<td class="url"><a href="/requests/${encodeURIComponent(r.correlationId)}" title="${r.url ?? r.name}">${r.url ?? r.name}</a></td>
<td>${r.project}</td></tr>`,
)}
</tbody></table>`
}`;
}

/** The small "open a trace" form: a pasted trace or correlation id goes to its view. */
function traceForm(value: string): Html {
  return html`<form class="filters" id="open-trace" method="get" action="/traces">
  <label>Trace or correlation id<input name="id" value="${value}" size="36" placeholder="4bf92f3577b34da6a3ce929d0e0e4736" required></label>
  <button type="submit">Open trace</button>
</form>`;
}

const SUMMARY_TEXT: Record<SummaryState, string> = {
  made: 'made',
  pending: 'pending (join window open)',
  not_made: 'not made (window passed; no correlate processor joined it)',
  none: 'none (no request span: nothing to summarize)',
};

function tracePage(v: TraceView, windowMs: number): Html {
  const isRequest = v.request !== null || v.queries.length > 0;
  const root = v.trace.spans[0];
  return html`<h1>${v.request ? `${v.request.method ?? ''} ${v.request.url ?? v.request.name}` : isRequest ? 'Request' : `Trace: ${root?.name ?? v.correlationId}`}</h1>
${isRequest ? requestSection(v, windowMs) : traceFacts(v)}
${spanTreeSection(v)}
${logSection(v)}
<p><a href="/">← all requests</a> · <a href="/api/traces/${encodeURIComponent(v.correlationId)}">JSON</a></p>`;
}

/** The facts of a trace that is not a request: complete on its own, never "pending". */
function traceFacts(v: TraceView): Html {
  const t = v.trace;
  return html`<div class="facts" id="trace-facts">
  <div><b>Duration</b><span>${fmt(t.extentMs)} ms</span></div>
  <div><b>Spans</b><span>${t.spans.length}</span></div>
  <div><b>Errors</b><span class="${t.errorCount ? 'err' : ''}">${t.errorCount}</span></div>
  <div><b>Log records</b><span>${t.logs.length}</span></div>
  <div><b>Services</b><span>${t.services.join(', ') || '-'}</span></div>
  <div><b>Started (UTC)</b><span>${t.start ? t.start.replace('T', ' ').slice(0, 23) : '-'}</span></div>
  <div><b>Trace id</b><span><code>${v.correlationId}</code></span></div>
</div>`;
}

/** The PHP request's summary, N+1 note and SQL waterfall, as the request page always showed them. */
function requestSection(v: TraceView, windowMs: number): Html {
  const r = v.request;
  const extent = v.extentMs > 0 ? v.extentMs : 1;
  const pos = (offsetMs: number, durationMs: number) =>
    `left:${((offsetMs / extent) * 100).toFixed(3)}%;width:${((durationMs / extent) * 100).toFixed(3)}%`;
  const s = v.summary;
  const unattributed = v.queries.filter((q) => q.placement === 'outside_window');
  return html`<div class="facts">
  <div><b>Duration</b><span>${r ? `${fmt(r.durationMs)} ms` : '-'}</span></div>
  <div><b>DB time</b><span>${fmt(v.dbTimeMs)} ms</span></div>
  <div><b>Queries</b><span>${v.queryCount}</span></div>
  <div><b>Status</b><span class="${r?.error ? 'err' : ''}">${r?.status ?? '-'}</span></div>
  <div><b>Project</b><span>${v.project || '-'}</span></div>
  <div><b>Started (UTC)</b><span>${v.start ? v.start.replace('T', ' ').slice(0, 23) : '-'}</span></div>
  <div><b>Correlation id</b><span><code>${v.correlationId}</code></span></div>
  <div><b>Summary</b><span id="summary-state" data-state="${v.summaryState}">${s && s.revision > 1 ? `revision ${s.revision} (late spans)` : SUMMARY_TEXT[v.summaryState]}</span></div>
</div>
${!r
  ? html`<p class="empty">${v.summaryState === 'pending'
      ? `No request span is stored for this id yet: only DB spans. It is joined if one arrives within the join window (${formatDuration(windowMs)}).`
      : 'No request span was stored for this id: only DB spans (a request faster than the PHP agent\'s threshold is not sent).'}</p>`
  : ''}
${v.nPlusOne.map((g) => html`<div class="nplus-note"><b>N+1 pattern:</b> ${g.count} × <code>${g.query}</code> (${fmt(g.totalMs)} ms in total)</div>`)}
<div class="wf" id="waterfall">
  <div class="axis"><span></span><span class="ticks"><span>0</span><span>${fmt(extent / 4)}</span><span>${fmt(extent / 2)}</span><span>${fmt((extent * 3) / 4)}</span><span>${fmt(extent)} ms</span></span><span></span></div>
  ${r ? html`<div class="row request"><div class="label" title="${r.name}">${r.name}</div><div class="track"><div class="bar" style="${pos(r.offsetMs, r.durationMs)}"></div></div><div class="dur">${fmt(r.durationMs)} ms</div></div>` : ''}
  ${v.queries.filter((q) => q.placement !== 'outside_window').map(
    (q) => html`<div class="row query${q.nPlusOne ? ' nplus' : ''}${q.placement === 'housekeeping' ? ' housekeeping' : ''}${q.error ? ' error' : ''}" data-placement="${q.placement}"${q.attributedBy === 'worker' ? html` data-attributed-by="worker"` : ''}><div class="label" title="${q.text}">${q.nPlusOne ? html`<span class="badge">N+1 ×${q.repeats}</span> ` : ''}${q.placement === 'housekeeping' ? html`<span class="badge hk" title="run by the driver or pooler: not counted">housekeeping</span> ` : ''}${q.attributedBy === 'worker' ? html`<span class="badge hk" title="tagged by an earlier request on a persistent connection; ran on this request's PHP worker while it ran">by worker</span> ` : ''}${q.text}</div><div class="track"><div class="bar" style="${pos(q.offsetMs, q.durationMs)}"></div></div><div class="dur">${fmt(q.durationMs)} ms</div></div>`,
  )}
</div>
${unattributed.length > 0
  ? html`<div id="unattributed"><h2>Unattributed (${unattributed.length})</h2><p>These statements carry this request's id but ran outside its time window, typically on a persistent connection still tagged with it: they belong to a later request and are not counted here.</p><ul>${unattributed.map(
      (q) => html`<li data-placement="${q.placement}"><span class="num">${q.offsetMs >= 0 ? '+' : ''}${fmt(q.offsetMs)} ms</span> · ${fmt(q.durationMs)} ms · <code>${q.text}</code></li>`,
    )}</ul></div>`
  : ''}
${new Html(renderProfileSection(v.profile, v.dbTimeMs, r !== null))}`;
}

/** Every span as an indented tree on one time axis; events, exceptions and status under each. */
function spanTreeSection(v: TraceView): Html {
  const t = v.trace;
  if (t.spans.length === 0) return html`<h2>Spans</h2><p class="empty">No spans carry this id (log records only).</p>`;
  const extent = t.extentMs > 0 ? t.extentMs : 1;
  const pct = (ms: number) => `${Math.max(0, Math.min(100, (ms / extent) * 100)).toFixed(3)}%`;
  const row = (s: TreeSpan) => {
    const details = s.events.length > 0 || s.status.message !== '';
    return html`<li class="span${s.status.code === 'error' ? ' span-error' : ''}" id="span-${s.spanId}" data-span-id="${s.spanId}" data-parent-span-id="${s.parentSpanId}" data-depth="${s.depth}" data-kind="${s.kind}">
<div class="row"><div class="label" style="padding-left:${s.depth * 16}px"><span class="kind k-${s.kind}" title="span kind">${s.kind}</span> <span class="name" title="${s.statement ?? s.name}">${s.name}</span> <span class="svc">${s.service}</span>${s.statement ? html` <code class="stmt" title="${s.statement}">${s.statement}</code>` : ''}${s.joinedByCorrelation ? html` <span class="svc" title="no parent span id: placed under the request by its correlation id">(joined)</span>` : ''}${s.status.code === 'error' ? html` <span class="badge errb">error</span>` : ''}</div><div class="track"><div class="bar" style="left:${pct(s.offsetMs)};width:${pct(s.durationMs)}"></div>${s.events.map(
      (e) => html`<span class="tick${e.exception ? ' exc' : ''}" style="left:${pct(e.offsetMs)}" title="${e.name}"></span>`,
    )}</div><div class="dur">${fmt(s.durationMs)} ms</div></div>
${details
  ? html`<div class="more" style="margin-left:${s.depth * 16 + 14}px">${s.status.message ? html`<p class="status-msg err">Status ${s.status.code}: ${s.status.message}</p>` : ''}${s.events.map((e) =>
      e.exception
        ? html`<div class="event exception"><b>exception</b> at +${fmt(e.offsetMs)} ms: <span class="exc-type">${e.exception.type ?? ''}</span>${e.exception.message ? html`: <span class="exc-msg">${e.exception.message}</span>` : ''}${e.exception.stacktrace ? html`<details><summary>stack trace</summary><pre>${e.exception.stacktrace}</pre></details>` : ''}</div>`
        : html`<div class="event"><b>${e.name}</b> at +${fmt(e.offsetMs)} ms${attrList(e.attributes)}</div>`,
    )}</div>`
  : ''}
</li>`;
  };
  return html`<h2>Spans (${t.spans.length})</h2>
<div class="wf tree" id="spans">
  <div class="axis"><span></span><span class="ticks"><span>0</span><span>${fmt(extent / 4)}</span><span>${fmt(extent / 2)}</span><span>${fmt((extent * 3) / 4)}</span><span>${fmt(extent)} ms</span></span><span></span></div>
  <ol>${t.spans.map(row)}</ol>
</div>`;
}

function attrList(attributes: Record<string, unknown>): Html | string {
  const entries = Object.entries(attributes);
  if (entries.length === 0) return '';
  return html` <span class="attrs">${entries.map(([k, val]) => html`<code>${k}=${typeof val === 'string' ? val : JSON.stringify(val)}</code> `)}</span>`;
}

/** The id's log records, oldest first, each linked to the span it was emitted in. */
function logSection(v: TraceView): Html | string {
  const logs = v.trace.logs;
  if (logs.length === 0) return '';
  const names = new Map(v.trace.spans.map((s) => [s.spanId, s.name]));
  return html`<h2>Logs (${logs.length})</h2>
<table id="logs"><thead><tr><th>Time (UTC)</th><th>Offset</th><th>Severity</th><th>Service</th><th>Span</th><th>Message</th></tr></thead><tbody>
${logs.map(
  (l) => html`<tr class="${l.severityNumber >= 17 ? 'err' : ''}"><td class="num">${l.time.replace('T', ' ').slice(0, 23)}</td><td class="num">${l.offsetMs >= 0 ? '+' : ''}${fmt(l.offsetMs)} ms</td><td>${l.severity}</td><td>${l.service}</td><td>${l.spanId && names.has(l.spanId) ? html`<a href="#span-${l.spanId}">${names.get(l.spanId)}</a>` : l.spanId ? html`<code>${l.spanId}</code>` : '-'}</td><td class="body">${l.body}${attrList(l.attributes)}</td></tr>`,
)}
</tbody></table>`;
}

function fmt(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}
