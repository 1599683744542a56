// The window of a matrix a zoomed heatmap shows, and the slices it computes from. Pure.

/** The part of the matrix shown: rows [r0, r1), cols [c0, c1). */
export interface MatrixWindow {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

/** Rows [r0, r1) and cols [c0, c1) of a row-major [rows, cols] matrix (the matrix itself when whole). */
export function sliceMatrix(m: Float32Array, rows: number, cols: number, w: MatrixWindow): Float32Array {
  if (w.r0 === 0 && w.c0 === 0 && w.r1 === rows && w.c1 === cols) return m;
  const wc = w.c1 - w.c0;
  const out = new Float32Array((w.r1 - w.r0) * wc);
  for (let i = w.r0; i < w.r1; i++) out.set(m.subarray(i * cols + w.c0, i * cols + w.c1), (i - w.r0) * wc);
  return out;
}

/**
 * The window after zooming by `factor` (>1: in) about the matrix point (ci, cj), kept inside the
 * matrix, at least 8 values across, at most the whole matrix.
 */
export function zoomWindow(w: MatrixWindow, rows: number, cols: number, factor: number, ci: number, cj: number): MatrixWindow {
  const clampSpan = (span: number, n: number) => Math.max(Math.min(8, n), Math.min(n, Math.round(span)));
  const h = clampSpan((w.r1 - w.r0) / factor, rows);
  const wd = clampSpan((w.c1 - w.c0) / factor, cols);
  // Keep the value under the cursor where it was.
  const fi = (ci - w.r0) / Math.max(1, w.r1 - w.r0);
  const fj = (cj - w.c0) / Math.max(1, w.c1 - w.c0);
  return panWindow({ r0: Math.round(ci - fi * h), r1: Math.round(ci - fi * h) + h, c0: Math.round(cj - fj * wd), c1: Math.round(cj - fj * wd) + wd }, rows, cols, 0, 0);
}

/** The window moved by (di, dj) values, kept inside the matrix. */
export function panWindow(w: MatrixWindow, rows: number, cols: number, di: number, dj: number): MatrixWindow {
  const h = w.r1 - w.r0;
  const wd = w.c1 - w.c0;
  const r0 = Math.max(0, Math.min(rows - h, Math.round(w.r0 + di)));
  const c0 = Math.max(0, Math.min(cols - wd, Math.round(w.c0 + dj)));
  return { r0, r1: r0 + h, c0, c1: c0 + wd };
}
