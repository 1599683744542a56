// Pure helpers for the loss curves: EMA smoothing (TensorBoard's debiased form) and min/max
// decimation so 100k points per run stay smooth. No DOM.

/** Debiased exponential moving average; `weight` in [0, 1). null/NaN gaps are carried over as null. */
export function ema(values: readonly (number | null)[], weight: number): (number | null)[] {
  if (!(weight > 0)) return values.slice();
  const out: (number | null)[] = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

/**
 * Keeps at most ~2·buckets points: for each bucket of consecutive indices, the first point plus the
 * min and max of `key` (so spikes survive), in index order. Returns the kept indices.
 */
export function decimateIndices(key: readonly (number | null)[], buckets: number): number[] {
  const n = key.length;
  if (n <= 2 * buckets) return Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  const size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.min(n, Math.floor((b + 1) * size));
    let iMin = -1;
    let iMax = -1;
    for (let i = lo; i < hi; i++) {
      const v = key[i];
      if (v === null || !Number.isFinite(v)) continue;
      if (iMin < 0 || v < (key[iMin] as number)) iMin = i;
      if (iMax < 0 || v > (key[iMax] as number)) iMax = i;
    }
    if (iMin < 0) {
      out.push(lo);
      continue;
    }
    if (iMin === iMax) out.push(iMin);
    else out.push(Math.min(iMin, iMax), Math.max(iMin, iMax));
  }
  if (out[out.length - 1] !== n - 1) out.push(n - 1);
  return out;
}

/**
 * The debiased EMA of a growing column, extended incrementally: appending k points costs O(k), and
 * a weight change or a rewound history (a resumed run replaced its tail) recomputes from the start.
 * Same numbers as `ema`; gaps (null/NaN) come out as NaN. A rewind is noticed from the last
 * point's step and value; the loss view also calls `reset` when the host replaced points.
 */
export class IncrementalEma {
  private out = new Float64Array(0);
  private n = 0;
  private weight = NaN;
  private last = 0;
  private wpow = 1;
  private lastKey: number | undefined;
  private lastValue: number | null | undefined;

  /** Forget everything (the column was rewritten). */
  reset(): void {
    this.n = 0;
  }

  private smooth(values: ArrayLike<number | null>, len: number, weight: number): void {
    const out = this.out;
    let last = this.last;
    let wpow = this.wpow;
    for (let i = this.n; i < len; i++) {
      const v = values[i];
      if (v === null || !Number.isFinite(v)) {
        out[i] = NaN;
        continue;
      }
      last = last * weight + (1 - weight) * v;
      wpow *= weight;
      out[i] = last / (1 - wpow);
    }
    this.last = last;
    this.wpow = wpow;
  }

  /** EMA of values[0..length): a view valid until the next call. `key` is values' x column (rewind check). */
  update(values: ArrayLike<number | null>, weight: number, key: ArrayLike<number>): Float64Array {
    const len = values.length;
    if (this.n === 0 || weight !== this.weight || len < this.n || (this.n > 0 && (key[this.n - 1] !== this.lastKey || !Object.is(values[this.n - 1], this.lastValue)))) {
      this.n = 0;
      this.last = 0;
      this.wpow = 1;
      this.weight = weight;
    }
    if (this.out.length < len) {
      const grown = new Float64Array(Math.max(len, this.out.length * 2, 1024));
      grown.set(this.out.subarray(0, this.n));
      this.out = grown;
    }
    // Two loops in two functions: copying host columns (arrays of numbers and nulls) and smoothing
    // the packed loss (a Float64Array) each see one kind of array at their element reads; one loop
    // for both turned megamorphic and smoothed several times slower.
    if (weight > 0) this.smooth(values, len, weight);
    else copyGaps(values, this.out, this.n, len);
    this.n = len;
    this.lastKey = len > 0 ? key[len - 1] : undefined;
    this.lastValue = len > 0 ? values[len - 1] : undefined;
    return this.out.subarray(0, len);
  }
}

/** out[from..len) = values, null and non-finite values as NaN. */
function copyGaps(values: ArrayLike<number | null>, out: Float64Array, from: number, len: number): void {
  for (let i = from; i < len; i++) {
    const v = values[i];
    out[i] = v === null || !Number.isFinite(v) ? NaN : v;
  }
}

/** Smallest i with xs[i] >= v, for ascending xs. */
export function lowerBound(xs: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the x nearest to v (ascending xs, not empty). */
export function nearestIndex(xs: ArrayLike<number>, v: number): number {
  const i = lowerBound(xs, v);
  if (i <= 0) return 0;
  if (i >= xs.length) return xs.length - 1;
  return v - xs[i - 1] <= xs[i] - v ? i - 1 : i;
}

/** Which pixel bucket each visible point falls in: see `bucketMinMax`. */
export interface Buckets {
  /** Two x rows per bucket (quarter and three quarters of its width), shared by every run. */
  x: number[];
  /** Visible points are xs[lo..hi). */
  lo: number;
  hi: number;
  /** Bucket b holds points [starts[b], starts[b + 1]) (xs ascending, so each bucket is one index run). */
  starts: Int32Array;
  count: number;
}

/**
 * The x range [x0, x1] cut into `buckets` equal buckets (one per pixel) plus one on each side, so
 * lines run on past the edges. xs ascending.
 */
export function bucketize(xs: ArrayLike<number>, x0: number, x1: number, buckets: number): Buckets {
  const count = buckets + 2;
  const w = (x1 - x0) / buckets || 1;
  const start = x0 - w;
  const x: number[] = new Array(2 * count);
  for (let b = 0; b < count; b++) {
    x[2 * b] = start + (b + 0.25) * w;
    x[2 * b + 1] = start + (b + 0.75) * w;
  }
  const lo = lowerBound(xs, start);
  const hi = lowerBound(xs, x1 + w);
  // Bucket boundaries found once per range, so reducing a column is a tight loop per bucket with no
  // per-point bucket lookup (a smoothing change or an axis switch reduces every column again).
  const starts = new Int32Array(count + 1);
  let b = 0;
  starts[0] = lo;
  for (let i = lo; i < hi; i++) {
    const k = Math.min(count - 1, Math.floor((xs[i] - start) / w));
    while (b < k) starts[++b] = i;
  }
  while (b < count) starts[++b] = hi;
  return { x, lo, hi, starts, count };
}

/**
 * One column reduced to its buckets: two rows per bucket holding the bucket's min and max in the
 * order they occur (one point: the first row only; none: null). NaN is a gap.
 */
export function bucketColumn(bk: Buckets, y: ArrayLike<number>): (number | null)[] {
  const { starts, count } = bk;
  const col: (number | null)[] = new Array(2 * count).fill(null);
  for (let b = 0; b < count; b++) {
    const end = starts[b + 1];
    let p = -1;
    let q = -1;
    let vMin = 0;
    let vMax = 0;
    for (let i = starts[b]; i < end; i++) {
      const v = y[i];
      if (!(v - v === 0)) continue; // NaN, ±Infinity
      if (p < 0) {
        p = q = i;
        vMin = vMax = v;
      } else if (v < vMin) {
        p = i;
        vMin = v;
      } else if (v > vMax) {
        q = i;
        vMax = v;
      }
    }
    if (p < 0) continue;
    if (p === q) col[2 * b] = vMin;
    else if (p < q) {
      col[2 * b] = vMin;
      col[2 * b + 1] = vMax;
    } else {
      col[2 * b] = vMax;
      col[2 * b + 1] = vMin;
    }
  }
  return col;
}

/**
 * Min/max per pixel column of several y columns sharing one x column (bucketize + bucketColumn).
 * The x rows are the same for every run, so runs with different step grids share one uPlot table
 * without a join, and a redraw costs one pass over the visible points whatever the zoom. Points
 * move by less than a bucket (a pixel); read-outs use the raw columns.
 */
export function bucketMinMax(xs: ArrayLike<number>, ys: readonly Float64Array[], x0: number, x1: number, buckets: number): { x: number[]; cols: (number | null)[][] } {
  const bk = bucketize(xs, x0, x1, buckets);
  return { x: bk.x, cols: ys.map((y) => bucketColumn(bk, y)) };
}

export function pick<T>(values: readonly T[], idx: readonly number[]): T[] {
  return idx.map((i) => values[i]);
}

/** Numbers as people read them: 1,049,600 (the hovers' and the CLI's formatter). */
export { formatCount } from '../../src/shared/paramCount';

export function formatPercent(p: number): string {
  return `${p < 0.01 && p > 0 ? p.toPrecision(2) : p.toFixed(2)} %`;
}

/** Sizes: 870 MiB, 1.5 KiB (the host's formatter). */
export { formatBytes } from '../../src/shared/format';

/** Short numbers for axes and read-outs: 0.000123 → 1.23e-4, 12.5 → 12.5. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return Number(v.toPrecision(5)).toString();
}

/** "wasm + native avx512, 2 threads" from a run's backend report (the full line is the cell's tooltip). */
export function backendLabel(b: { name: string; kernels?: string } | undefined): string {
  if (!b) return '';
  const m = b.kernels ? /^native (\w+) kernels, (\d+ threads?)/.exec(b.kernels) : null;
  return m ? `${b.name} + native ${m[1]}, ${m[2]}` : b.name;
}

/** Durations for read-outs: 42.5 s, 3 min 05 s, 2 h 04 min (the host's formatter: one wording everywhere). */
export { formatDuration } from '../../src/shared/format';
