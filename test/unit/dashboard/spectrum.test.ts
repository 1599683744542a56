// Singular values of ΔW = s·B·A from the r×r Gram matrices, checked against matrices with known
// singular values and against the explicit k×d product (Frobenius norm, power iteration).
import assert from 'node:assert/strict';
import {
  cumulativeEnergy,
  effectiveRank,
  loraSingularValues,
  loraSpectrum,
  numericalRank,
  SpectrumShapeError,
  symmetricEigen,
  type DenseMatrix,
} from '../../../src/engine/spectrum';

/** Small seeded PRNG (mulberry32) + Box-Muller, so the test is deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  const uni = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uni() + 1e-12)) * Math.cos(2 * Math.PI * uni());
}

function randn(rows: number, cols: number, next: () => number): DenseMatrix {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = next();
  return { rows, cols, data };
}

/** n×m with orthonormal columns (Gram-Schmidt on Gaussian columns). */
function orthonormalCols(n: number, m: number, next: () => number): number[][] {
  const cols: number[][] = [];
  while (cols.length < m) {
    const v = Array.from({ length: n }, next);
    for (const c of cols) {
      const dot = v.reduce((s, x, i) => s + x * c[i], 0);
      for (let i = 0; i < n; i++) v[i] -= dot * c[i];
    }
    const norm = Math.hypot(...v);
    cols.push(v.map((x) => x / norm));
  }
  return cols;
}

/** Full product s·B·A (only for checking). */
function product(a: DenseMatrix, b: DenseMatrix, s: number): Float64Array {
  const out = new Float64Array(b.rows * a.cols);
  for (let i = 0; i < b.rows; i++)
    for (let m = 0; m < a.rows; m++) {
      const bim = b.data[i * b.cols + m] * s;
      for (let j = 0; j < a.cols; j++) out[i * a.cols + j] += bim * a.data[m * a.cols + j];
    }
  return out;
}

describe('spectrum (ΔW singular values from Gram matrices)', () => {
  it('recovers known singular values of B·A built from orthonormal factors', () => {
    const next = rng(7);
    const d = 40;
    const k = 30;
    const r = 5;
    const sigA = [3, 2, 1.5, 0.5, 0.1];
    const sigB = [2, 1, 1, 1, 0.5];
    const qa = orthonormalCols(d, r, next); // A = diag(sigA)·Qaᵀ → [r, d]
    const qb = orthonormalCols(k, r, next); // B = Qb·diag(sigB) → [k, r]
    const a: DenseMatrix = { rows: r, cols: d, data: new Float64Array(r * d) };
    const b: DenseMatrix = { rows: k, cols: r, data: new Float64Array(k * r) };
    for (let i = 0; i < r; i++) for (let j = 0; j < d; j++) (a.data as Float64Array)[i * d + j] = sigA[i] * qa[i][j];
    for (let i = 0; i < k; i++) for (let j = 0; j < r; j++) (b.data as Float64Array)[i * r + j] = qb[j][i] * sigB[j];
    const scale = 0.5;
    const expected = sigA.map((x, i) => scale * x * sigB[i]).sort((x, y) => y - x);
    const got = loraSingularValues(a, b, scale);
    assert.equal(got.length, r);
    got.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-9 * expected[0], `σ${i}: ${x} vs ${expected[i]}`));
  });

  it('matches the explicit product: Σσ² = ‖s·B·A‖_F² and σ₁ from power iteration', () => {
    const next = rng(11);
    const a = randn(8, 64, next);
    const b = randn(48, 8, next);
    const s = 2;
    const sp = loraSpectrum(a, b, s);
    const w = product(a, b, s);
    const fro2 = w.reduce((acc, x) => acc + x * x, 0);
    assert.ok(Math.abs(sp.frobeniusNorm ** 2 - fro2) < 1e-9 * fro2);
    // Power iteration on WᵀW with the explicit product: an independent route to σ₁.
    let v: number[] = Array.from({ length: 64 }, () => 1);
    let sigma = 0;
    for (let it = 0; it < 500; it++) {
      const wv = new Float64Array(48);
      for (let i = 0; i < 48; i++) for (let j = 0; j < 64; j++) wv[i] += w[i * 64 + j] * v[j];
      const wtwv = new Array<number>(64).fill(0);
      for (let i = 0; i < 48; i++) for (let j = 0; j < 64; j++) wtwv[j] += w[i * 64 + j] * wv[i];
      const n = Math.hypot(...wtwv);
      v = wtwv.map((x) => x / n);
      sigma = Math.sqrt(n);
    }
    assert.ok(Math.abs(sp.singularValues[0] - sigma) < 1e-6 * sigma, `${sp.singularValues[0]} vs ${sigma}`);
    assert.equal(sp.numericalRank, 8);
    assert.ok(sp.effectiveRank > 1 && sp.effectiveRank <= 8);
    assert.ok(Math.abs(sp.energy[7] - 1) < 1e-12);
  });

  it('sees rank deficiency: r = 6 factors whose product has rank 2', () => {
    const next = rng(3);
    const base = randn(2, 20, next);
    const mix = randn(6, 2, next);
    // A = mix·base has rank 2.
    const a: DenseMatrix = { rows: 6, cols: 20, data: new Float64Array(120) };
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 20; j++)
        (a.data as Float64Array)[i * 20 + j] = mix.data[i * 2] * base.data[j] + mix.data[i * 2 + 1] * base.data[20 + j];
    const b = randn(10, 6, next);
    const sp = loraSpectrum(a, b, 1);
    assert.equal(sp.numericalRank, 2);
    assert.ok(sp.singularValues[2] < 1e-6 * sp.singularValues[0]);
  });

  it('B = 0 (LoRA at initialisation) gives an all-zero spectrum, effective rank 0', () => {
    const next = rng(5);
    const a = randn(4, 16, next);
    const b: DenseMatrix = { rows: 12, cols: 4, data: new Float32Array(48) };
    const sp = loraSpectrum(a, b, 2);
    assert.deepEqual(sp.singularValues, [0, 0, 0, 0]);
    assert.equal(sp.effectiveRank, 0);
    assert.equal(sp.numericalRank, 0);
    assert.deepEqual(sp.energy, [0, 0, 0, 0]);
  });

  it('effective rank and energy on hand-computed spectra', () => {
    assert.ok(Math.abs(effectiveRank([1, 1, 1, 1]) - 4) < 1e-12);
    assert.ok(Math.abs(effectiveRank([5, 0, 0]) - 1) < 1e-12);
    assert.deepEqual(cumulativeEnergy([1, 2, 2]), [4 / 9, 8 / 9, 1]);
    assert.equal(numericalRank([1, 1e-9, 0.5]), 2);
  });

  it('Jacobi eigen-solver reconstructs a symmetric matrix', () => {
    const s = [4, 1, 2, 1, 3, 0, 2, 0, 5];
    const { values, vectors } = symmetricEigen(s, 3);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        let x = 0;
        for (let m = 0; m < 3; m++) x += vectors[i * 3 + m] * values[m] * vectors[j * 3 + m];
        assert.ok(Math.abs(x - s[i * 3 + j]) < 1e-12);
      }
  });

  it('rejects mismatched factors with a message naming both shapes', () => {
    const a: DenseMatrix = { rows: 4, cols: 8, data: new Float32Array(32) };
    const b: DenseMatrix = { rows: 6, cols: 3, data: new Float32Array(18) };
    assert.throws(() => loraSingularValues(a, b, 1), (e: unknown) => SpectrumShapeError.is(e) && /\[4, 8\].*\[6, 3\]/.test((e as Error).message));
  });
});
