// Heatmap preparation (ΔW from factors, block downsampling) and the diverging colour map.
import assert from 'node:assert/strict';
import { computeHeatmap } from '../../../webview-ui/src/heatmap/compute';
import { divergingRgb, paintGrid } from '../../../webview-ui/src/heatmap/colormap';

describe('heatmap compute', () => {
  it('builds s·B·A at full resolution when it fits', () => {
    // A [2, 3], B [2, 2], s = 0.5
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const b = Float32Array.from([1, 0, 0, 2]);
    const h = computeHeatmap({ a, b, r: 2, scale: 0.5, rows: 2, cols: 3, maxRows: 10, maxCols: 10, mode: 'mean' });
    assert.deepEqual(Array.from(h.grid), [0.5, 1, 1.5, 4, 5, 6]);
    assert.equal(h.blockRows, 1);
    assert.equal(h.min, 0.5);
    assert.equal(h.max, 6);
    assert.equal(h.maxAbs, 6);
  });

  it('adds the base when given (W + ΔW)', () => {
    const h = computeHeatmap({
      a: Float32Array.from([1, 1]), b: Float32Array.from([1, 1]), r: 1, base: Float32Array.from([10, 20, 30, 40]),
      scale: 2, rows: 2, cols: 2, maxRows: 8, maxCols: 8, mode: 'mean',
    });
    assert.deepEqual(Array.from(h.grid), [12, 22, 32, 42]);
  });

  it('downsamples blocks by mean and by largest magnitude, ragged edges included', () => {
    // 5×5 matrix with values i*5+j, one negative spike.
    const m = Float32Array.from({ length: 25 }, (_, i) => i);
    m[6] = -100;
    const mean = computeHeatmap({ matrix: m, scale: 1, rows: 5, cols: 5, maxRows: 3, maxCols: 3, mode: 'mean' });
    assert.equal(mean.blockRows, 2);
    assert.equal(mean.gridRows, 3);
    assert.equal(mean.gridCols, 3);
    // Block (0,0) = rows 0-1, cols 0-1: 0, 1, 5, -100 → mean -23.5
    assert.equal(mean.grid[0], -23.5);
    // Block (2,2) = row 4, col 4 only: 24
    assert.equal(mean.grid[8], 24);
    const peak = computeHeatmap({ matrix: m, scale: 1, rows: 5, cols: 5, maxRows: 3, maxCols: 3, mode: 'maxabs' });
    assert.equal(peak.grid[0], -100);
    assert.equal(peak.grid[1], 8); // rows 0-1, cols 2-3: 2,3,7,8
    assert.equal(peak.min, -100);
  });

  it('a 1024×1024 ΔW from r=8 factors downsampled to 256²: each cell the signed peak of its 4×4 block', () => {
    // Its speed is the bench's (npm run bench, uiBench.ts); here the values, against float64 sums.
    const r = 8;
    const n = 1024;
    const s = 0.75;
    const a = Float32Array.from({ length: r * n }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: n * r }, (_, i) => Math.cos(i));
    const h = computeHeatmap({ a, b, r, scale: s, rows: n, cols: n, maxRows: 256, maxCols: 256, mode: 'maxabs' });
    assert.deepEqual([h.gridRows, h.gridCols, h.blockRows, h.blockCols], [256, 256, 4, 4]);
    // ΔW[i, j] = s·Σ_k B[i, k]·A[k, j] (B [n, r], A [r, n], both row-major).
    const dw = (i: number, j: number) => {
      let t = 0;
      for (let k = 0; k < r; k++) t += b[i * r + k] * a[k * n + j];
      return s * t;
    };
    for (const [gi, gj] of [[0, 0], [0, 255], [255, 0], [17, 203], [128, 129], [255, 255]]) {
      let peak = 0;
      for (let i = gi * 4; i < gi * 4 + 4; i++) for (let j = gj * 4; j < gj * 4 + 4; j++) if (Math.abs(dw(i, j)) > Math.abs(peak)) peak = dw(i, j);
      const got = h.grid[gi * 256 + gj];
      assert.ok(Math.abs(got - peak) <= 1e-5 * Math.max(1, Math.abs(peak)), `cell (${gi}, ${gj}): ${got} vs ${peak}`);
    }
  });

  it('keeps the aspect ratio: one block size for both axes', () => {
    const h = computeHeatmap({ matrix: new Float32Array(3072 * 768), scale: 1, rows: 3072, cols: 768, maxRows: 256, maxCols: 256, mode: 'mean' });
    assert.deepEqual([h.blockRows, h.blockCols, h.gridRows, h.gridCols], [12, 12, 256, 64]);
  });

  it('counts non-finite values and rejects mismatched factors', () => {
    const h = computeHeatmap({ matrix: Float32Array.from([1, NaN, Infinity, -2]), scale: 1, rows: 2, cols: 2, maxRows: 4, maxCols: 4, mode: 'mean' });
    assert.equal(h.nonFinite, 2);
    assert.ok(Number.isNaN(h.grid[1]));
    assert.throws(() => computeHeatmap({ a: new Float32Array(3), b: new Float32Array(4), r: 2, scale: 1, rows: 2, cols: 2, maxRows: 2, maxCols: 2, mode: 'mean' }), /factors do not match \[2, 2\] with r=2/);
  });
});

describe('diverging colour map', () => {
  it('is centred on zero with blue negatives and red positives', () => {
    assert.deepEqual(divergingRgb(0, 1), [247, 247, 247]);
    assert.deepEqual(divergingRgb(1, 1), [178, 24, 43]);
    assert.deepEqual(divergingRgb(-1, 1), [33, 102, 172]);
    assert.deepEqual(divergingRgb(-5, 1), [33, 102, 172]); // clamped
    assert.deepEqual(divergingRgb(NaN, 1), [128, 128, 128]);
    assert.deepEqual(divergingRgb(0.25, 1), [243, 193, 173]);
  });

  it('paints RGBA pixels', () => {
    const out = new Uint8ClampedArray(8);
    paintGrid(Float32Array.from([2, -2]), 2, out);
    assert.deepEqual(Array.from(out), [178, 24, 43, 255, 33, 102, 172, 255]);
  });
});
