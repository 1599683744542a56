// Loss-curve helpers: the incremental EMA gives the same numbers as the plain one, and the
// per-pixel min/max reduction keeps every bucket's extremes in order, on a shared x grid.
import assert from 'node:assert/strict';
import { IncrementalEma, backendLabel, bucketColumn, bucketMinMax, bucketize, ema, lowerBound, nearestIndex } from '../../../webview-ui/src/series';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('loss-curve series helpers', () => {
  it('IncrementalEma extended in pieces equals ema() over the whole column, gaps as NaN', () => {
    const rnd = lcg(3);
    const step: number[] = [];
    const loss: (number | null)[] = [];
    const e = new IncrementalEma();
    let out: Float64Array = new Float64Array(0);
    for (const chunk of [1, 7, 100, 0, 33]) {
      for (let k = 0; k < chunk; k++) {
        step.push(step.length + 1);
        loss.push(step.length % 17 === 0 ? null : 1 + rnd());
      }
      out = e.update(loss, 0.9, step);
    }
    const want = ema(loss, 0.9);
    assert.equal(out.length, want.length);
    want.forEach((w, i) => (w === null ? assert.ok(Number.isNaN(out[i]), `gap at ${i}`) : assert.ok(Math.abs(out[i] - w) < 1e-12, `${i}: ${out[i]} vs ${w}`)));
    // Another weight recomputes from the start; weight 0 is the column itself.
    const again = e.update(loss, 0.5, step);
    assert.ok(Math.abs(again[40] - (ema(loss, 0.5)[40] as number)) < 1e-12);
    assert.equal(e.update(loss, 0, step)[5], loss[5]);
  });

  it('IncrementalEma starts over when a resumed run rewrote the tail', () => {
    const e = new IncrementalEma();
    const step = [1, 2, 3, 4];
    const loss = [4, 3, 2, 1];
    e.update(loss, 0.5, step);
    // Resumed from step 2: steps 3.. replaced by new values (the history is as long again).
    step.splice(2, 2, 3, 4, 5);
    loss.splice(2, 2, 10, 10, 10);
    const out = e.update(loss, 0.5, step);
    const want = ema(loss, 0.5) as number[];
    assert.deepEqual(Array.from(out).map((v) => v.toFixed(9)), want.map((v) => v.toFixed(9)));
  });

  it('lowerBound and nearestIndex', () => {
    const xs = [1, 3, 3, 8];
    assert.deepEqual([0, 1, 3, 4, 9].map((v) => lowerBound(xs, v)), [0, 0, 1, 3, 4]);
    assert.deepEqual([-5, 2, 2.1, 6, 100].map((v) => nearestIndex(xs, v)), [0, 0, 1, 3, 3]);
  });

  it('bucketMinMax keeps each pixel bucket’s min and max in the order they occur', () => {
    // 1000 steps over 10 buckets of 100 steps, one spike up and one down in bucket 3.
    const n = 1000;
    const xs = Array.from({ length: n }, (_, i) => i);
    const y = Float64Array.from(xs, (i) => Math.sin(i / 50));
    y[350] = 9;
    y[320] = -9;
    y[777] = NaN;
    const { x, cols } = bucketMinMax(xs, [y], 0, 1000, 10);
    // One extra bucket each side: 12 buckets, two rows each, at 1/4 and 3/4 of a bucket.
    assert.equal(x.length, 24);
    assert.deepEqual(x.slice(0, 4), [-75, -25, 25, 75]);
    const col = cols[0];
    assert.equal(col[0], null, 'nothing left of the range');
    // Bucket 3 (steps 300..399) is rows 8 and 9: -9 came first, then 9.
    assert.deepEqual([col[8], col[9]], [-9, 9]);
    for (let b = 0; b < 10; b++) {
      const seg = Array.from(y.subarray(b * 100, b * 100 + 100)).filter((v) => !Number.isNaN(v));
      const got = [col[2 * b + 2], col[2 * b + 3]] as number[];
      assert.equal(Math.min(...got), Math.min(...seg), `min of bucket ${b}`);
      assert.equal(Math.max(...got), Math.max(...seg), `max of bucket ${b}`);
    }
  });

  it('bucketize: a zoomed range reads only the visible points (plus one bucket each side); a lone point fills one row', () => {
    const xs = Array.from({ length: 100_000 }, (_, i) => i + 1);
    const bk = bucketize(xs, 50_000, 50_100, 100);
    assert.equal(bk.lo, lowerBound(xs, 49_999));
    assert.equal(bk.hi, lowerBound(xs, 50_101));
    const y = Float64Array.from(xs);
    const col = bucketColumn(bk, y);
    // Bucket k covers steps [49_999 + k, 50_000 + k): exactly one point each.
    assert.deepEqual(col.slice(2, 6), [50_000, null, 50_001, null]);
  });

  it('bucketColumn equals a point-by-point reduction (repeated x, gaps, infinities, a zoomed range)', () => {
    // A seeded generator: the same cases every run.
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let trial = 0; trial < 40; trial++) {
      const n = 1 + Math.floor(rnd() * 3000);
      const xs: number[] = [];
      for (let i = 0, x = rnd() * 10; i < n; i++) xs.push((x += rnd() < 0.2 ? 0 : rnd() * 3));
      const y = Float64Array.from(xs, () => (rnd() < 0.05 ? NaN : rnd() < 0.01 ? Infinity : rnd() * 100 - 50));
      const x0 = xs[0] + (trial % 2 ? rnd() * (xs[n - 1] - xs[0]) * 0.5 : 0);
      const x1 = Math.max(x0 + 1e-3, xs[n - 1] - (trial % 3 ? rnd() * (xs[n - 1] - x0) * 0.5 : 0));
      const buckets = 1 + Math.floor(rnd() * 400);
      const bk = bucketize(xs, x0, x1, buckets);
      // The reference: each point's bucket computed on its own, min and max kept in the order they occur.
      const w = (x1 - x0) / buckets || 1;
      const want: (number | null)[] = new Array(2 * bk.count).fill(null);
      const lo = new Map<number, number>();
      const hi = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        if (xs[i] < x0 - w || xs[i] >= x1 + w || !Number.isFinite(y[i])) continue;
        const b = Math.min(bk.count - 1, Math.floor((xs[i] - (x0 - w)) / w));
        if (!lo.has(b) || y[i] < y[lo.get(b)!]) lo.set(b, i);
        if (!hi.has(b) || y[i] > y[hi.get(b)!]) hi.set(b, i);
      }
      for (const [b, p] of lo) {
        const q = hi.get(b)!;
        if (p === q) want[2 * b] = y[p];
        else [want[2 * b], want[2 * b + 1]] = [y[Math.min(p, q)], y[Math.max(p, q)]];
      }
      assert.deepEqual(bucketColumn(bk, y), want, `trial ${trial}: n ${n}, [${x0}, ${x1}] in ${buckets} buckets`);
    }
  });

  it('IncrementalEma of a packed Float64Array (NaN gaps) equals ema() of the array with nulls', () => {
    const values = Array.from({ length: 500 }, (_, i) => (i % 37 === 5 ? null : Math.cos(i * 0.3) + i / 100));
    const packed = Float64Array.from(values, (v) => (v === null ? NaN : v));
    const steps = values.map((_, i) => i + 1);
    const got = new IncrementalEma().update(packed, 0.9, steps);
    // The same as reading the array with nulls (the debiasing power is kept as a product, hence 1e-12).
    const fromNulls = new IncrementalEma().update(values, 0.9, steps);
    ema(values, 0.9).forEach((w, i) => {
      if (w === null) assert.ok(Number.isNaN(got[i]), `gap at ${i}`);
      else assert.ok(Math.abs(got[i] - w) < 1e-12 && got[i] === fromNulls[i], `${i}: ${got[i]} vs ${w}`);
    });
  });

  it('backendLabel: the runs table names the native kernels and their threads, else the backend alone', () => {
    assert.equal(backendLabel({ name: 'wasm', kernels: 'native avx512 kernels, 2 threads (lora-lab-native 1)' }), 'wasm + native avx512, 2 threads');
    assert.equal(backendLabel({ name: 'wasm', kernels: 'native generic kernels, 1 thread (lora-lab-native 1)' }), 'wasm + native generic, 1 thread');
    assert.equal(backendLabel({ name: 'cpu' }), 'cpu');
    assert.equal(backendLabel(undefined), '');
  });
});
