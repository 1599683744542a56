// uPlot axes shared by the loss and spectra charts: theme colours (canvas drawing cannot use CSS
// var(), so they are read when a chart is built and again on a theme change), compact labels, and
// on log scales spanning decades, labels and grid lines only at powers of ten.
import type uPlot from 'uplot';
import { cssVar } from './dom';

function isPow10(v: number): boolean {
  const e = Math.log10(v);
  return Number.isFinite(e) && Math.abs(e - Math.round(e)) < 1e-9;
}

/** Compact axis labels: 1e-4, 0.05, 12. */
export function formatAxis(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

/** The current theme's foreground and grid colours. */
export function axisColours(): { fg: string; grid: string } {
  return { fg: cssVar('--fg', '#333'), grid: cssVar('--grid', 'rgba(128,128,128,0.2)') };
}

/** An x axis in the theme's colours. */
export function xAxis(extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  const { fg, grid } = axisColours();
  return { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid }, ...extra };
}

/** 1, 2 and 5 times a power of ten. */
function isOneTwoFive(v: number): boolean {
  if (!(v > 0)) return false;
  const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
  return [1, 2, 5, 10].some((k) => Math.abs(m - k) < 1e-6);
}

/**
 * On a log scale spanning two decades or more: only powers of ten, and only every k-th decade when
 * they would be closer than ~18 px (a loss falling 13 decades drew 117 grid lines as grey bands).
 * Within about one decade (singular values between 1.6 and 2.5 on a 1–10 axis): grid lines at every
 * split but labels at 1, 2 and 5 only, so the axis is neither bare (1 and 10) nor crowded (8, 9, 10).
 */
export function decadeFilter(u: Pick<uPlot, 'bbox'>, splits: number[], labels: boolean): (number | null)[] {
  const decades = splits.filter(isPow10);
  if (decades.length < 3) return labels ? splits.map((v) => (isOneTwoFive(v) ? v : null)) : splits;
  const px = (u.bbox.height || 0) / (typeof devicePixelRatio === 'number' ? devicePixelRatio : 1) || 200;
  const every = Math.max(1, Math.ceil((decades.length * 18) / px));
  return splits.map((v) => (isPow10(v) && Math.round(Math.log10(v)) % every === 0 ? v : null));
}

/** A y axis in the theme's colours; `log`: see decadeFilter (labels, grid lines and ticks alike). */
export function yAxis(log: boolean, extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  const { fg, grid } = axisColours();
  // Only set when wanted: an explicit `filter: undefined` replaces uPlot's default for grid and ticks.
  const filtered = log ? { filter: (u: uPlot, splits: number[]) => decadeFilter(u, splits, false) } : {};
  const labelled = log ? { filter: (u: uPlot, splits: number[]) => decadeFilter(u, splits, true) } : {};
  return {
    stroke: fg,
    grid: { stroke: grid, ...filtered },
    ticks: { stroke: grid, ...filtered },
    size: 64,
    // uPlot passes null for splits the filter dropped: no label there.
    values: (_u, vals) => vals.map((v) => (v === null || v === undefined ? '' : formatAxis(v))),
    ...labelled,
    ...extra,
  };
}
