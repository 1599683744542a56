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

export function pick<T>(values: readonly T[], idx: readonly number[]): T[] {
  return idx.map((i) => values[i]);
}

/** Numbers as people read them: 1,049,600. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatPercent(p: number): string {
  return `${p < 0.01 && p > 0 ? p.toPrecision(2) : p.toFixed(2)} %`;
}

export function formatBytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = b;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Short numbers for axes and read-outs: 0.000123 → 1.23e-4, 12.5 → 12.5. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return Number(v.toPrecision(5)).toString();
}
