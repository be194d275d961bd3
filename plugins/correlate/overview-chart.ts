// Latency over time as a server-rendered SVG: p50, p95 and p99 lines over request-volume bars,
// on one time axis. No script: the numbers of each interval are in the bars' <title>.
import { html } from './web.js';
import type { LatencySeries } from './overview-queries.js';

type Html = ReturnType<typeof html>;

const W = 960;
const H = 280;
const LEFT = 56;
const RIGHT = 12;
const TOP = 14;
/** Height of the latency plot; the volume band sits below it. */
const PLOT = 170;
const BAND = 50;

const LINES = [
  { key: 'p50Ms', label: 'p50', color: '#2f6fb3' },
  { key: 'p95Ms', label: 'p95', color: '#e8590c' },
  { key: 'p99Ms', label: 'p99', color: '#c92a2a' },
] as const;

export function latencyChart(series: LatencySeries, title: string): Html {
  const points = series.points;
  const n = Math.max(1, points.length);
  const width = W - LEFT - RIGHT;
  const x = (i: number) => LEFT + (i + 0.5) * (width / n);
  const top = Math.max(1, ...points.map((p) => p.p99Ms ?? 0));
  const yMax = niceCeil(top * 1.05);
  const y = (ms: number) => TOP + PLOT - (ms / yMax) * PLOT;
  const vMax = Math.max(1, ...points.map((p) => p.requests));
  const bandTop = TOP + PLOT + 22;
  const barW = Math.max(1, width / n - 1);
  const paths = LINES.map(({ key, color, label }) => {
    let d = '';
    let pen = false;
    points.forEach((p, i) => {
      const v = p[key];
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    // Dots as well as the line: an interval alone between gaps still shows.
    const dots = points.map((p, i) => (p[key] === null ? '' : html`<circle cx="${x(i).toFixed(1)}" cy="${y(p[key]!).toFixed(1)}" r="2.2" fill="${color}"/>`));
    return html`<g class="line ${label}"><path class="line ${label}" d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>${dots}</g>`;
  });
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const ms = yMax * f;
    return html`<g class="tick"><line x1="${LEFT}" x2="${W - RIGHT}" y1="${y(ms)}" y2="${y(ms)}" stroke="#eef1f4"/><text x="${LEFT - 6}" y="${y(ms) + 4}" text-anchor="end">${formatMs(ms)}</text></g>`;
  });
  const xTicks = points.length === 0 ? [] : [0, 0.25, 0.5, 0.75, 1].map((f) => Math.min(points.length - 1, Math.round(f * (points.length - 1))));
  const bars = points.map((p, i) => {
    const h = (p.requests / vMax) * BAND;
    const label = `${timeLabel(p.startMs, series.stepMs)}: ${p.requests} requests${p.p50Ms !== null ? `, p50 ${formatMs(p.p50Ms)}, p95 ${formatMs(p.p95Ms!)}, p99 ${formatMs(p.p99Ms!)}` : ''}`;
    return html`<rect class="vol" x="${(x(i) - barW / 2).toFixed(1)}" y="${(bandTop + BAND - h).toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="#adc6e5"><title>${label}</title></rect>`;
  });
  return html`<figure class="chart"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H + 24}" width="100%" role="img" aria-label="${title}">
<title>${title}</title>
<style>text{font:11px system-ui,sans-serif;fill:#556}</style>
${yTicks}
${paths}
<text x="${LEFT}" y="${bandTop - 6}">requests per ${stepLabel(series.stepMs)} (max ${vMax})</text>
${bars}
${xTicks.map((i) => html`<text x="${x(i)}" y="${bandTop + BAND + 16}" text-anchor="middle">${timeLabel(points[i]!.startMs, series.stepMs)}</text>`)}
${LINES.map((l, i) => html`<g class="legend"><rect x="${W - RIGHT - 150 + i * 50}" y="2" width="10" height="10" fill="${l.color}"/><text x="${W - RIGHT - 136 + i * 50}" y="11">${l.label}</text></g>`)}
</svg></figure>`;
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(0)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(1)} ms`;
}

function stepLabel(stepMs: number): string {
  return stepMs >= 3_600_000 ? `${stepMs / 3_600_000} h` : `${stepMs / 60_000} min`;
}

function timeLabel(ms: number, stepMs: number): string {
  const iso = new Date(ms).toISOString();
  return stepMs >= 3_600_000 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}
