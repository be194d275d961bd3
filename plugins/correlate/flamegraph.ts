// A request's profile as a flame graph: server-rendered SVG, no script. The root (the whole
// request) is on top and its callees hang below it (the "icicle" orientation, which keeps the
// entry point where the eye starts); children are ordered heaviest first. The full width is
// the request's wall time, so a frame's width is its time: samples x the sampling period.
// Frames that run SQL (pg_*, PDO*) and everything they call are drawn in blue.
import { isSqlFrame, TRUNCATED_FRAME, type ProfileView } from './profile.js';

/** SVG user units across (the SVG scales to the page width). */
export const FLAME_WIDTH = 1200;
const ROW = 17;
const AXIS = 20;
/** Frames narrower than this (units) are not drawn; their time stays in the parent. */
const MIN_WIDTH = 0.5;
/** At most this many rects (a bound on page size whatever the profile). */
const MAX_RECTS = 4000;
const CHAR_WIDTH = 6.6;

export interface FlameNode {
  name: string;
  depth: number;
  x: number;
  width: number;
  /** Inclusive time (ms) and share of the request's wall time (%). */
  ms: number;
  percent: number;
  /** Inside a SQL frame (the frame itself or a caller is pg_* / PDO*). */
  sql: boolean;
}

export interface FlameLayout {
  width: number;
  height: number;
  /** Root first, then depth first, heaviest child first. */
  nodes: FlameNode[];
  /** Frames left out as too narrow (or over the rect bound). */
  hidden: number;
}

interface Tree {
  name: string;
  count: number;
  children: Map<string, Tree>;
}

export function layoutFlameGraph(profile: ProfileView): FlameLayout {
  const root: Tree = { name: 'request', count: 0, children: new Map() };
  for (const s of profile.stacks) {
    root.count += s.count;
    let node = root;
    for (const frame of s.frames) {
      let child = node.children.get(frame);
      if (!child) node.children.set(frame, (child = { name: frame, count: 0, children: new Map() }));
      child.count += s.count;
      node = child;
    }
  }
  const wall = profile.wallMs > 0 ? profile.wallMs : root.count * profile.msPerSample;
  const scale = wall > 0 ? FLAME_WIDTH / wall : 0;
  const nodes: FlameNode[] = [];
  let hidden = 0;
  let depthMax = 0;
  const place = (t: Tree, depth: number, x: number, sql: boolean) => {
    const ms = t.count * profile.msPerSample;
    const width = ms * scale;
    if (depth > 0 && (width < MIN_WIDTH || nodes.length >= MAX_RECTS)) {
      hidden++;
      return;
    }
    const inSql = sql || (depth > 0 && isSqlFrame(t.name));
    nodes.push({ name: t.name, depth, x, width, ms, percent: wall > 0 ? (ms * 100) / wall : 0, sql: inSql });
    depthMax = Math.max(depthMax, depth);
    let at = x;
    for (const child of [...t.children.values()].sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : 1))) {
      place(child, depth + 1, at, inSql);
      at += child.count * profile.msPerSample * scale;
    }
  };
  place(root, 0, 0, false);
  return { width: FLAME_WIDTH, height: AXIS + (depthMax + 1) * ROW, nodes, hidden };
}

/** The flame graph as an SVG element (a string safe to embed in HTML: every text is escaped). */
export function renderFlameGraph(profile: ProfileView): string {
  const layout = layoutFlameGraph(profile);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="flamegraph" viewBox="0 0 ${layout.width} ${layout.height}" width="100%" role="img" aria-label="flame graph of ${profile.samples} samples" font-family="ui-monospace,Menlo,monospace" font-size="11">`,
  );
  // The time axis: the request's wall time, in quarters.
  const wall = profile.wallMs;
  for (let i = 0; i <= 4; i++) {
    const x = (layout.width * i) / 4;
    const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
    out.push(`<line x1="${n(x)}" y1="13" x2="${n(x)}" y2="${layout.height}" stroke="#e3e7ec" stroke-width="1"/>`);
    out.push(`<text x="${n(x)}" y="10" text-anchor="${anchor}" fill="#778">${escapeXml(ms((wall * i) / 4))}${i === 4 ? ' ms' : ''}</text>`);
  }
  for (const node of layout.nodes) {
    const y = AXIS + node.depth * ROW;
    const title = `${node.depth === 0 ? `request: ${profile.samples} samples every ${profile.periodMs} ms` : node.name} — ${ms(node.ms)} ms, ${node.percent.toFixed(1)}%${node.sql ? ' (SQL)' : ''}`;
    const fill = node.depth === 0 ? '#c8ced6' : node.name === TRUNCATED_FRAME ? '#bbbbbb' : node.sql ? sqlColour(node.name) : warmColour(node.name);
    const label = node.depth === 0 ? `all samples (${ms(node.ms)} ms)` : node.name;
    const fits = Math.floor((node.width - 6) / CHAR_WIDTH);
    const text = fits >= 3 ? (label.length <= fits ? label : `${label.slice(0, fits - 1)}…`) : '';
    out.push(
      `<g class="frame${node.sql ? ' sql' : ''}"><title>${escapeXml(title)}</title>` +
        `<rect x="${n(node.x)}" y="${y}" width="${n(node.width)}" height="${ROW - 1}" rx="2" fill="${fill}"/>` +
        (text ? `<text x="${n(node.x + 3)}" y="${y + 12}" fill="#1d2430">${escapeXml(text)}</text>` : '') +
        `</g>`,
    );
  }
  out.push('</svg>');
  return out.join('');
}

/** Deterministic warm colours (the classic flame graph palette), varied by name. */
function warmColour(name: string): string {
  const h = hash(name);
  return `hsl(${h % 45},${70 + (h >> 8) % 20}%,${58 + (h >> 16) % 14}%)`;
}

function sqlColour(name: string): string {
  const h = hash(name);
  return `hsl(${205 + (h % 15)},65%,${55 + (h >> 8) % 12}%)`;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function n(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

function ms(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

const XML: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => XML[c]!);
}

/**
 * The request page's profile section (HTML): the flame graph with a legend and the top frames,
 * or, for a request without a profile, how to get one. Empty without a request span.
 */
export function renderProfileSection(profile: ProfileView | null, dbTimeMs: number, hasRequest: boolean): string {
  if (!hasRequest) return '';
  const style = 'background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 14px;margin:12px 0';
  if (!profile) {
    return (
      `<section id="profile" style="${style}"><h2 style="font-size:15px;margin:0 0 6px">Profile</h2>` +
      `<p class="profile-missing" style="margin:0">No profile was recorded for this request. The PHP agent samples every request's stack when the ` +
      `<code>excimer</code> extension is loaded (Debian/Ubuntu: <code>apt-get install php-excimer</code>, then restart PHP-FPM) and sends the ` +
      `profile of each request over the threshold; the sampling period is the agent setting <code>bitville.profile_period_ms</code> ` +
      `(environment <code>BITVILLE_PROFILE_PERIOD_MS</code>, default 10, 0 turns it off). See docs/php-agent.md.</p></section>`
    );
  }
  const sampled = profile.samples * profile.msPerSample;
  const top = profile.top
    .map(
      (f) =>
        `<tr><td><code>${escapeXml(f.name)}</code>${isSqlFrame(f.name) ? ' <span style="color:#2f6fb3;font-weight:600">SQL</span>' : ''}</td>` +
        `<td class="num">${ms(f.selfMs)} ms</td><td class="num">${f.percent.toFixed(1)}%</td></tr>`,
    )
    .join('');
  return (
    `<section id="profile" style="${style}"><h2 style="font-size:15px;margin:0 0 6px">Profile: where the time went</h2>` +
    `<p style="margin:0 0 8px;font-size:12px;color:#556">${profile.samples} wall-clock samples every ${profile.periodMs} ms ` +
    `(${ms(sampled)} of ${ms(profile.wallMs)} ms sampled${profile.delayMs > 0 ? `; sampling began ${ms(profile.delayMs)} ms into the request, so its first ${ms(profile.delayMs)} ms are not shown unless a call was still running then` : ''}); the full width is the request's wall time, a frame's width its time including its callees. ` +
    `<span style="display:inline-block;width:10px;height:10px;background:hsl(210,65%,58%);vertical-align:middle"></span> SQL frames (pg_*, PDO*): ` +
    `${ms(profile.sqlMs)} ms sampled, against ${ms(dbTimeMs)} ms of DB spans (excimer charges time inside a PHP built-in such as pg_query() to the PHP function calling it).` +
    `${profile.truncatedSamples > 0 ? ` ${profile.truncatedSamples} samples of rarer stacks were cut for size: <code>(truncated)</code>.` : ''} Hover a frame for its name, time and share.</p>` +
    renderFlameGraph(profile) +
    `<table style="margin-top:8px"><thead><tr><th>Top frames by self time</th><th>Self</th><th>Of the request</th></tr></thead><tbody>${top}</tbody></table></section>`
  );
}
