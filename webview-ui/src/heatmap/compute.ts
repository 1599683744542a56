// Heatmap preparation: ΔW = s·B·A (or a given matrix), then block downsampling to at most
// maxRows×maxCols cells. PURE and SELF-CONTAINED on purpose: `computeHeatmap` references nothing
// outside its own body, so the webview can ship its source text into a Web Worker created from a
// blob: URL (works in the VS Code webview and in a report opened from file://, where a worker
// script file could not be loaded). Unit tests call it directly.

export interface HeatmapJob {
  /** [r, cols] row-major, with b [rows, r]: the result is scale·B·A. */
  a?: Float32Array;
  b?: Float32Array;
  r?: number;
  /** Or a dense [rows, cols] matrix (W, W + ΔW uses `base` + factors). */
  matrix?: Float32Array;
  /** Added to scale·B·A when given: W + ΔW. */
  base?: Float32Array;
  scale: number;
  rows: number;
  cols: number;
  maxRows: number;
  maxCols: number;
  /** How a block becomes one cell: its mean, or its value of largest magnitude (keeps peaks). */
  mode: 'mean' | 'maxabs';
}

export interface HeatmapGrid {
  /** [gridRows, gridCols] row-major. */
  grid: Float32Array;
  gridRows: number;
  gridCols: number;
  /** Source rows/cols per cell (1 = no downsampling). */
  blockRows: number;
  blockCols: number;
  rows: number;
  cols: number;
  /** Over the full-resolution matrix. */
  min: number;
  max: number;
  maxAbs: number;
  /** Non-finite values seen (drawn grey). */
  nonFinite: number;
}

export function computeHeatmap(job: HeatmapJob): HeatmapGrid {
  const { rows, cols, scale } = job;
  const n = rows * cols;
  let full: Float32Array;
  if (job.a && job.b && job.r !== undefined) {
    const r = job.r;
    const a = job.a;
    const b = job.b;
    if (a.length !== r * cols || b.length !== rows * r) {
      throw new Error(`heatmap: factors do not match [${rows}, ${cols}] with r=${r} (A has ${a.length} values, B ${b.length})`);
    }
    full = job.base ? Float32Array.from(job.base) : new Float32Array(n);
    if (job.base && job.base.length !== n) throw new Error(`heatmap: base has ${job.base.length} values, expected ${rows}×${cols}`);
    // Row i of ΔW = s · Σ_m B[i,m] · A[m,:]  (k·r·d multiply-adds, float64 accumulation per row)
    const acc = new Float64Array(cols);
    for (let i = 0; i < rows; i++) {
      acc.fill(0);
      for (let m = 0; m < r; m++) {
        const bim = b[i * r + m];
        if (bim === 0) continue;
        const off = m * cols;
        for (let j = 0; j < cols; j++) acc[j] += bim * a[off + j];
      }
      const o = i * cols;
      for (let j = 0; j < cols; j++) full[o + j] += scale * acc[j];
    }
  } else if (job.matrix) {
    if (job.matrix.length !== n) throw new Error(`heatmap: matrix has ${job.matrix.length} values, expected ${rows}×${cols}`);
    full = job.matrix;
  } else {
    throw new Error('heatmap: give either factors (a, b, r) or a matrix');
  }

  // One square block size for both axes keeps the matrix's aspect ratio (3072×768 stays 4:1).
  const block = Math.max(1, Math.ceil(rows / Math.max(1, job.maxRows)), Math.ceil(cols / Math.max(1, job.maxCols)));
  const blockRows = block;
  const blockCols = block;
  const gridRows = Math.ceil(rows / blockRows);
  const gridCols = Math.ceil(cols / blockCols);
  const grid = new Float32Array(gridRows * gridCols);
  const sums = new Float64Array(gridRows * gridCols);
  const counts = new Uint32Array(gridRows * gridCols);
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  const maxabs = job.mode === 'maxabs';
  for (let i = 0; i < rows; i++) {
    const gi = Math.floor(i / blockRows) * gridCols;
    const o = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = full[o + j];
      if (!Number.isFinite(v)) {
        nonFinite++;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
      const g = gi + Math.floor(j / blockCols);
      if (maxabs) {
        if (counts[g] === 0 || Math.abs(v) > Math.abs(grid[g])) grid[g] = v;
      } else {
        sums[g] += v;
      }
      counts[g]++;
    }
  }
  for (let g = 0; g < grid.length; g++) {
    if (counts[g] === 0) grid[g] = NaN;
    else if (!maxabs) grid[g] = sums[g] / counts[g];
  }
  if (min === Infinity) {
    min = 0;
    max = 0;
  }
  return {
    grid,
    gridRows,
    gridCols,
    blockRows,
    blockCols,
    rows,
    cols,
    min,
    max,
    maxAbs: Math.max(Math.abs(min), Math.abs(max)),
    nonFinite,
  };
}
