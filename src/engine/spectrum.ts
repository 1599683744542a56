// Singular values of a LoRA update ΔW = s·B·A without ever forming the k×d product.
// PURE: no tfjs, no node built-ins (the extension host and the HTML report use it too).
//
// Why this works: the non-zero singular values of B·A are the square roots of the eigenvalues of
// (B·A)(B·A)ᵀ = B (A·Aᵀ) Bᵀ, whose non-zero eigenvalues equal those of (A·Aᵀ)(Bᵀ·B) — an r×r
// product of the two Gram matrices. To stay symmetric we factor Ga = A·Aᵀ = V Λ Vᵀ and take the
// eigenvalues of C = Λ^½ Vᵀ Gb V Λ^½, which is similar to Ga·Gb. Cost O(r²(d + k) + r³) instead of
// O(k·d·r) for the product plus O(k·d·min(k,d)) for an SVD.
import { ReasonError } from '../shared/errors';

/** A row-major matrix as it comes out of a safetensors file. */
export interface DenseMatrix {
  rows: number;
  cols: number;
  data: ArrayLike<number>;
}

export interface Spectrum {
  /** σ_1 ≥ σ_2 ≥ … ≥ σ_r ≥ 0 of s·B·A (length r). */
  singularValues: number[];
  /** exp(H(p)) with p_i = σ_i / Σσ (Roy & Vetterli 2007); 0 when ΔW = 0. */
  effectiveRank: number;
  /** Count of σ_i > rtol·σ_1. */
  numericalRank: number;
  /** energy[i] = (σ_1² + … + σ_{i+1}²) / Σσ²: the fraction of ‖ΔW‖_F² captured by the top i+1. */
  energy: number[];
  /** ‖ΔW‖_F = sqrt(Σσ²). */
  frobeniusNorm: number;
}

export class SpectrumShapeError extends ReasonError<'shape'> {
  static override readonly family = 'SpectrumShapeError';
  constructor(message: string) {
    super('shape', message);
  }
}

/** Ga = A·Aᵀ for A [r, d] → [r, r] (float64). */
export function gramRows(a: DenseMatrix): Float64Array {
  const { rows: r, cols: d, data } = a;
  const g = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let sum = 0;
      const oi = i * d;
      const oj = j * d;
      for (let c = 0; c < d; c++) sum += data[oi + c] * data[oj + c];
      g[i * r + j] = sum;
      g[j * r + i] = sum;
    }
  }
  return g;
}

/** Gb = Bᵀ·B for B [k, r] → [r, r] (float64). */
export function gramCols(b: DenseMatrix): Float64Array {
  const { rows: k, cols: r, data } = b;
  const g = new Float64Array(r * r);
  for (let row = 0; row < k; row++) {
    const o = row * r;
    for (let i = 0; i < r; i++) {
      const bi = data[o + i];
      if (bi === 0) continue;
      for (let j = i; j < r; j++) g[i * r + j] += bi * data[o + j];
    }
  }
  for (let i = 0; i < r; i++) for (let j = 0; j < i; j++) g[i * r + j] = g[j * r + i];
  return g;
}

/**
 * Eigen-decomposition of a symmetric n×n matrix (row-major) by cyclic Jacobi rotations.
 * Returns eigenvalues (unsorted) and, column-wise, eigenvectors V with S = V·diag(λ)·Vᵀ.
 */
export function symmetricEigen(s: ArrayLike<number>, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(s as ArrayLike<number>);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i] * a[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        // A' = Jᵀ A J for the rotation J in the (p, q) plane that zeroes a_pq.
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - sn * akq;
          a[k * n + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - sn * aqk;
          a[q * n + k] = sn * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - sn * vkq;
          v[k * n + q] = sn * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

/**
 * Singular values of s·B·A from the Gram matrices only. A is [r, d], B is [k, r].
 * Returns r values, descending (zeros included).
 */
export function loraSingularValues(a: DenseMatrix, b: DenseMatrix, scale: number): number[] {
  const r = a.rows;
  if (b.cols !== r) {
    throw new SpectrumShapeError(`LoRA factors do not match: A is [${a.rows}, ${a.cols}] so B should be [k, ${r}], got [${b.rows}, ${b.cols}]`);
  }
  if (a.data.length !== a.rows * a.cols || b.data.length !== b.rows * b.cols) {
    throw new SpectrumShapeError(`LoRA factor data length does not match its shape (A ${a.data.length} vs ${a.rows}×${a.cols}, B ${b.data.length} vs ${b.rows}×${b.cols})`);
  }
  if (r === 0) return [];
  const ga = gramRows(a);
  const gb = gramCols(b);
  const { values: lam, vectors: vec } = symmetricEigen(ga, r);
  // C = Λ^½ Vᵀ Gb V Λ^½
  const half = new Float64Array(r);
  for (let i = 0; i < r; i++) half[i] = Math.sqrt(Math.max(0, lam[i]));
  const gv = new Float64Array(r * r); // Gb·V
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let sum = 0;
      for (let m = 0; m < r; m++) sum += gb[i * r + m] * vec[m * r + j];
      gv[i * r + j] = sum;
    }
  }
  const c = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let sum = 0;
      for (let m = 0; m < r; m++) sum += vec[m * r + i] * gv[m * r + j];
      const x = half[i] * sum * half[j];
      c[i * r + j] = x;
      c[j * r + i] = x;
    }
  }
  const { values } = symmetricEigen(c, r);
  const s = Math.abs(scale);
  return Array.from(values, (x) => s * Math.sqrt(Math.max(0, x))).sort((x, y) => y - x);
}

/** exp(entropy) of the normalised singular values; 0 for an all-zero spectrum. */
export function effectiveRank(singularValues: readonly number[]): number {
  let total = 0;
  for (const x of singularValues) total += x;
  if (!(total > 0)) return 0;
  let h = 0;
  for (const x of singularValues) {
    if (x <= 0) continue;
    const p = x / total;
    h -= p * Math.log(p);
  }
  return Math.exp(h);
}

export function numericalRank(singularValues: readonly number[], rtol = 1e-6): number {
  const top = singularValues.length ? Math.max(...singularValues) : 0;
  if (!(top > 0)) return 0;
  return singularValues.filter((x) => x > rtol * top).length;
}

/** Cumulative energy fractions of singular values sorted descending; all zeros when ΔW = 0. */
export function cumulativeEnergy(singularValues: readonly number[]): number[] {
  const sorted = [...singularValues].sort((x, y) => y - x);
  let total = 0;
  for (const x of sorted) total += x * x;
  const out: number[] = [];
  let acc = 0;
  for (const x of sorted) {
    acc += x * x;
    out.push(total > 0 ? acc / total : 0);
  }
  return out;
}

/** Everything the dashboard shows about one module's ΔW = s·B·A. */
export function loraSpectrum(a: DenseMatrix, b: DenseMatrix, scale: number): Spectrum {
  const singularValues = loraSingularValues(a, b, scale);
  const energy = cumulativeEnergy(singularValues);
  let sq = 0;
  for (const x of singularValues) sq += x * x;
  return {
    singularValues,
    effectiveRank: effectiveRank(singularValues),
    numericalRank: numericalRank(singularValues),
    energy,
    frobeniusNorm: Math.sqrt(sq),
  };
}
