import type { HistorySeries } from '../state/cluster-history.js';
import { html, type Html } from './html.js';

/**
 * Small line charts as inline SVG, drawn on the server from the history ring: no chart library,
 * no script, nothing the CSP has to allow (colours come from console.css classes, so the dark
 * theme applies). The x axis is always the last window ("−60 min" … "now"), so a chart reads the
 * same in every time zone.
 */

export interface Line {
  label: string;
  series: HistorySeries | undefined;
  /** Multiplies every value (e.g. 6 turns "per 10 s" into "per minute"). */
  scale?: number;
  /** CSS class giving the stroke colour: ok, bad, warn, or s0…s5. */
  tone: string;
  /** The figure the legend shows; by default the latest reading (scaled). */
  now?: number;
}

const W = 600;
const H = 130;
const LEFT = 44;
const BOTTOM = 20;
const TOP = 6;

/** A round maximum for the y axis: 1, 2, 5 × 10^n at or above `v`. */
export function niceCeiling(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** "1.2k", "35", "0.5": short labels for the y axis and the legend. */
export function shortNumber(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 10 || Number.isInteger(v)) return String(Math.round(v));
  return String(+v.toFixed(1));
}

/** The path of one series: a new sub-path after every gap (NaN), so missing readings are not bridged. */
function pathOf(values: Float32Array, scale: number, x: (i: number) => number, y: (v: number) => number, digits = 1): string {
  let d = '';
  let pen = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${+x(i).toFixed(digits)} ${+y(v * scale).toFixed(digits)}`;
    pen = true;
  }
  return d;
}

/** The newest reading of a series (scaled), or NaN when the last steps have none. */
export function latest(series: HistorySeries | undefined, scale = 1, lookback = 2): number {
  if (!series) return Number.NaN;
  const v = series.values;
  for (let i = v.length - 1; i >= Math.max(0, v.length - lookback); i--) if (!Number.isNaN(v[i]!)) return v[i]! * scale;
  return Number.NaN;
}

/** The sum of the last `steps` readings (scaled), NaN when none of them has one: "per minute" from 10 s steps. */
export function recentSum(series: HistorySeries | undefined, steps: number, scale = 1): number {
  if (!series) return Number.NaN;
  let sum = Number.NaN;
  const v = series.values;
  for (let i = Math.max(0, v.length - steps); i < v.length; i++)
    if (!Number.isNaN(v[i]!)) sum = (Number.isNaN(sum) ? 0 : sum) + v[i]! * scale;
  return sum;
}

/** A chart with a title, a y axis from 0 to a round maximum, the window on x, and a legend with each line's latest value. */
export function lineChart(o: { id: string; title: string; unit: string; lines: Line[]; empty?: string }): Html {
  const lines = o.lines.filter((l) => l.series);
  const n = lines[0]?.series?.values.length ?? 0;
  let max = 0;
  for (const l of lines) for (const v of l.series!.values) if (!Number.isNaN(v)) max = Math.max(max, v * (l.scale ?? 1));
  const top = niceCeiling(max);
  const x = (i: number) => LEFT + (n <= 1 ? 0 : (i / (n - 1)) * (W - LEFT - 4));
  const y = (v: number) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
  const grid = [0, top / 2, top].map(
    (v) =>
      html`<line class="grid" x1="${LEFT}" x2="${W - 4}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="axis" x="${LEFT - 4}" y="${(y(v) + 3).toFixed(1)}" text-anchor="end">${shortNumber(v)}</text>`,
  );
  const minutes = n > 1 ? Math.round(((n - 1) * (lines[0]!.series!.stepMs ?? 0)) / 60_000) : 0;
  const xLabels = html`<text class="axis" x="${LEFT}" y="${H - 3}">−${minutes} min</text><text class="axis" x="${(LEFT + W) / 2}" y="${H - 3}" text-anchor="middle">−${Math.round(minutes / 2)} min</text><text class="axis" x="${W - 4}" y="${H - 3}" text-anchor="end">now</text>`;
  const paths = lines.map(
    (l) => html`<path class="line ${l.tone}" d="${pathOf(l.series!.values, l.scale ?? 1, x, y)}"><title>${l.label}</title></path>`,
  );
  const legend = o.lines.map(
    (l) =>
      html`<li><span class="swatch ${l.tone}"></span>${l.label} <strong>${shortNumber(l.now ?? latest(l.series, l.scale))}</strong></li>`,
  );
  const hasData = lines.some((l) => l.series!.values.some((v) => !Number.isNaN(v)));
  return html`<figure class="chart" id="${o.id}"><figcaption>${o.title} <span class="muted">${o.unit}, last hour</span></figcaption>
${hasData ? html`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${o.title}">${grid}${xLabels}${paths}</svg>` : html`<p class="muted chart-empty">${o.empty ?? 'no readings yet: the first appear within 10 s'}</p>`}
<ul class="legend">${legend}</ul></figure>`;
}

/**
 * The values averaged over buckets of `size` readings (NaN readings skipped; a bucket of none is
 * NaN): a sparkline 90 px wide needs 60 points, not 360, and a page of 200 workers draws 400.
 */
export function downsample(values: Float32Array, size: number): Float32Array {
  const out = new Float32Array(Math.ceil(values.length / size));
  for (let b = 0; b < out.length; b++) {
    let sum = 0;
    let n = 0;
    for (let i = b * size; i < Math.min(values.length, (b + 1) * size); i++) {
      const x = values[i]!;
      if (!Number.isNaN(x)) {
        sum += x;
        n++;
      }
    }
    out[b] = n ? sum / n : Number.NaN;
  }
  return out;
}

/** Readings per sparkline point: one a minute at 10 s steps. */
const SPARK_BUCKET = 6;

/** A tiny line for a table cell (workers list, queues page): no axes, its maximum in the title. */
export function sparkline(series: HistorySeries | undefined, tone: string, label: string, scale = 1): Html {
  if (!series) return html``;
  const v = downsample(series.values, SPARK_BUCKET);
  let max = 0;
  for (const x of v) if (!Number.isNaN(x)) max = Math.max(max, x * scale);
  const top = niceCeiling(max);
  const w = 90;
  const h = 18;
  const d = pathOf(
    v,
    scale,
    (i) => (v.length <= 1 ? 0 : (i / (v.length - 1)) * w),
    (y) => 1 + (1 - y / top) * (h - 2),
    0,
  );
  return html`<svg class="spark" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${label}"><title>${label}, last hour (max ${shortNumber(max)})</title><path class="line ${tone}" d="${d}"/></svg>`;
}
