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
  const factors = job.a && job.b && job.r !== undefined;
  if (factors) {
    const r = job.r as number;
    if ((job.a as Float32Array).length !== r * cols || (job.b as Float32Array).length !== rows * r) {
      throw new Error(`heatmap: factors do not match [${rows}, ${cols}] with r=${r} (A has ${(job.a as Float32Array).length} values, B ${(job.b as Float32Array).length})`);
    }
    if (job.base && job.base.length !== n) throw new Error(`heatmap: base has ${job.base.length} values, expected ${rows}×${cols}`);
  } else if (job.matrix) {
    if (job.matrix.length !== n) throw new Error(`heatmap: matrix has ${job.matrix.length} values, expected ${rows}×${cols}`);
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
  const cellOfCol = new Int32Array(cols);
  for (let j = 0; j < cols; j++) cellOfCol[j] = Math.floor(j / blockCols);
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  const maxabs = job.mode === 'maxabs';
  // ΔW is never materialised: each row is built (s · Σ_m B[i,m] · A[m,:], float64 accumulation,
  // plus W's row for W + ΔW, rounded to float32 as a stored matrix would be) and reduced at once.
  const row = new Float32Array(cols);
  const acc = new Float64Array(factors ? cols : 0);
  for (let i = 0; i < rows; i++) {
    const o = i * cols;
    let vals: Float32Array;
    if (factors) {
      const r = job.r as number;
      const a = job.a as Float32Array;
      const b = job.b as Float32Array;
      acc.fill(0);
      // Four rank components per pass over the row (fewer loads and stores of acc).
      let m = 0;
      for (; m + 4 <= r; m += 4) {
        const b0 = b[i * r + m];
        const b1 = b[i * r + m + 1];
        const b2 = b[i * r + m + 2];
        const b3 = b[i * r + m + 3];
        const o0 = m * cols;
        const o1 = o0 + cols;
        const o2 = o1 + cols;
        const o3 = o2 + cols;
        for (let j = 0; j < cols; j++) acc[j] += b0 * a[o0 + j] + b1 * a[o1 + j] + b2 * a[o2 + j] + b3 * a[o3 + j];
      }
      for (; m < r; m++) {
        const bim = b[i * r + m];
        if (bim === 0) continue;
        const off = m * cols;
        for (let j = 0; j < cols; j++) acc[j] += bim * a[off + j];
      }
      const base = job.base;
      if (base) for (let j = 0; j < cols; j++) row[j] = base[o + j] + scale * acc[j];
      else for (let j = 0; j < cols; j++) row[j] = scale * acc[j];
      vals = row;
    } else {
      vals = (job.matrix as Float32Array).subarray(o, o + cols);
    }
    const gi = Math.floor(i / blockRows) * gridCols;
    for (let j = 0; j < cols; j++) {
      const v = vals[j];
      if (!(v - v === 0)) {
        nonFinite++;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
      const g = gi + cellOfCol[j];
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
