// Export of a chart: its data as CSV and its picture as PNG (title, plot with axes, and a legend
// drawn onto one canvas in the theme's colours). The DataSource saves the file (a save dialog in
// VS Code, a download in the report).
import type uPlot from 'uplot';
import { cssVar } from './dom';

export interface LegendEntry {
  label: string;
  color: string;
  dashed?: boolean;
}

/** One CSV line (RFC 4180 quoting); null/undefined/NaN are empty cells. */
export function csvLine(cells: readonly (string | number | null | undefined)[]): string {
  return cells
    .map((c) => {
      if (c === null || c === undefined || (typeof c === 'number' && !Number.isFinite(c))) return '';
      const s = String(c);
      return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    })
    .join(',');
}

/** A file name from a chart title and labels: letters, digits, dot, dash and underscore only. */
export function safeFileName(stem: string, ext: 'csv' | 'png'): string {
  const clean = stem.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100) || 'chart';
  return `${clean}.${ext}`;
}

/** The chart as a PNG: title above, uPlot's canvas (plot, grid, axes and their titles), legend below. */
export async function chartPng(u: uPlot, title: string, legend: readonly LegendEntry[]): Promise<Uint8Array> {
  const src = u.ctx.canvas;
  const dpr = src.width / Math.max(1, src.getBoundingClientRect().width || src.width);
  const pad = Math.round(10 * dpr);
  const line = Math.round(18 * dpr);
  const font = `${Math.round(12 * dpr)}px ${cssVar('--font', 'sans-serif')}`;
  // Legend entries flow left to right, wrapping at the canvas width.
  const probe = document.createElement('canvas').getContext('2d')!;
  probe.font = font;
  const widths = legend.map((e) => Math.round(28 * dpr) + probe.measureText(e.label).width + Math.round(14 * dpr));
  let rows = legend.length ? 1 : 0;
  let x = pad;
  for (const w of widths) {
    if (x + w > src.width - pad && x > pad) {
      rows++;
      x = pad;
    }
    x += w;
  }
  const out = document.createElement('canvas');
  out.width = src.width;
  out.height = src.height + line + pad * 2 + rows * line;
  const ctx = out.getContext('2d')!;
  ctx.fillStyle = cssVar('--bg', '#ffffff');
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.fillStyle = cssVar('--fg', '#1f2328');
  ctx.font = `600 ${Math.round(13 * dpr)}px ${cssVar('--font', 'sans-serif')}`;
  ctx.textBaseline = 'middle';
  ctx.fillText(title, pad, pad + line / 2);
  ctx.drawImage(src, 0, pad + line);
  ctx.font = font;
  let y = pad + line + src.height + line / 2;
  x = pad;
  legend.forEach((e, i) => {
    if (x + widths[i] > out.width - pad && x > pad) {
      y += line;
      x = pad;
    }
    ctx.strokeStyle = e.color;
    ctx.lineWidth = 2 * dpr;
    ctx.setLineDash(e.dashed ? [5 * dpr, 3 * dpr] : []);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 20 * dpr, y);
    ctx.stroke();
    ctx.fillStyle = cssVar('--fg', '#1f2328');
    ctx.fillText(e.label, x + 26 * dpr, y);
    x += widths[i];
  });
  const blob = await new Promise<Blob | null>((resolve) => out.toBlob(resolve, 'image/png'));
  if (!blob) throw new Error(`cannot encode the chart "${title}" as PNG`);
  return new Uint8Array(await blob.arrayBuffer());
}

/** The legend of a uPlot chart's shown series (uPlot turns `stroke` into a function once built). */
export function legendOf(u: uPlot): LegendEntry[] {
  const out: LegendEntry[] = [];
  u.series.forEach((sr, i) => {
    if (i === 0 || sr.show === false) return;
    const stroke = typeof sr.stroke === 'function' ? (sr.stroke as (u: uPlot, i: number) => unknown)(u, i) : sr.stroke;
    out.push({ label: String(sr.label ?? ''), color: typeof stroke === 'string' ? stroke : '#888888', dashed: Array.isArray(sr.dash) && sr.dash.length > 0 });
  });
  return out;
}
