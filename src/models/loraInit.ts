// PEFT's data-free LoRA initialisations that change the base weights (init_lora_weights "pissa" and
// "olora"). PEFT saves such an adapter, unless converted, with the trained A and B only; on loading it
// runs the initialisation again on the base, which replaces W by the residual W − s·B₀A₀. So the
// adapter only reproduces the fine-tuned model on that residual. Where PEFT's initialisation is
// deterministic it is recomputed here (float64); where it is not, or needs data or quantisation, the
// adapter is refused with how to convert it. Pure: no tfjs.
import { InteropError } from '../formats/adapters/interopError';
import type { PeftLoraConfig } from '../formats/peftConfig';
import type { HostTensor } from './weights';

/** What an adapter's init_lora_weights means for loading it. */
export type InitHandling =
  | { kind: 'plain'; note?: string }
  | { kind: 'residual'; method: 'pissa' | 'olora' };

/** How PEFT tells the user to turn such an adapter into a plain LoRA one. */
const CONVERT =
  'convert it in PEFT to a plain LoRA adapter (model.save_pretrained(out, path_initial_model_for_weight_conversion=<the adapter as initialised, before training>)), or merge it there (merge_and_unload) and load the merged model';

/** Classifies init_lora_weights; throws for the initialisations that cannot be reproduced here. */
export function initHandling(config: PeftLoraConfig, source = 'adapter_config.json'): InitHandling {
  const v = config.initLoraWeights;
  if (v === true || v === false || v === 'gaussian' || v === undefined || v === null) return { kind: 'plain' };
  if (v === 'pissa' || v === 'olora') return { kind: 'residual', method: v };
  if (v === 'eva') {
    // EVA sets A from activation statistics and B = 0; the base weights stay as they are.
    return { kind: 'plain', note: 'init_lora_weights "eva" initialised A from data but left the base weights unchanged: the saved A and B apply to the base as they are' };
  }
  const refuse = (why: string): never => {
    throw new InteropError('bad-config', `${source}: init_lora_weights ${JSON.stringify(v)}: ${why}; ${CONVERT}`, source);
  };
  if (typeof v === 'string' && /^pissa_niter_\d+$/.test(v)) {
    return refuse('fast PiSSA replaces the base weights by W − s·B₀A₀ from a randomized SVD (torch.svd_lowrank draws random matrices), which PEFT recomputes with a fresh random draw on loading and LoRA Lab cannot reproduce');
  }
  if (v === 'loftq') return refuse('LoftQ replaces the base weights by a quantised residual (bitsandbytes), which LoRA Lab cannot reproduce');
  if (v === 'corda') return refuse('CorDA replaces the base weights by a residual computed from activation covariances of a dataset, which LoRA Lab cannot reproduce');
  return refuse('this initialisation is not supported here (only true, false, "gaussian", "eva", "pissa" and "olora" are)');
}

/**
 * The largest min(out, in) whose SVD is recomputed here: the work per layer is cubic in it, and the
 * models the wasm backend holds have hidden sizes below it.
 */
export const MAX_RESIDUAL_DIM = 1024;

/**
 * PEFT's residual base weight W − s·B₀A₀ for one layer, W in stored layout [out, in] (nn.Linear).
 * PiSSA: B₀A₀ = V_r·diag(S_r / s)·Uh_r, so s·B₀A₀ is the rank-r truncated SVD of W whatever s and the
 * signs of the singular vectors. OLoRA: B₀A₀ = Q[:, :r]·R[:r] with W = QR, the projection of W onto the
 * span of its first r columns whatever the signs of Q's columns; PEFT does not divide by s there, so
 * the residual is W − s·(that projection).
 */
export function residualWeight(method: 'pissa' | 'olora', w: HostTensor, r: number, scale: number, where: string): HostTensor {
  const [out, inF] = w.shape;
  if (w.shape.length !== 2) throw new InteropError('shape-mismatch', `${where}: a ${method} residual needs a 2-D weight, got [${w.shape.join(', ')}]`);
  if (r > Math.min(out, inF)) throw new InteropError('bad-config', `${where}: r ${r} is larger than the weight's smaller side ${Math.min(out, inF)}`);
  const W = Float64Array.from(w.data); // [out, in]
  const low = method === 'olora' ? firstColumnsProjection(W, out, inF, r) : truncatedSvd(W, out, inF, r, where);
  const s = method === 'olora' ? scale : 1;
  const res = new Float32Array(W.length);
  for (let i = 0; i < W.length; i++) res[i] = W[i] - s * low[i];
  return { shape: [out, inF], data: res };
}

/** Q_r·Q_rᵀ·W with Q_r an orthonormal basis (modified Gram–Schmidt, twice) of W's first r columns. */
function firstColumnsProjection(W: Float64Array, out: number, inF: number, r: number): Float64Array {
  const q = new Float64Array(r * out); // row k = k-th basis vector [out]
  for (let k = 0; k < r; k++) {
    const v = q.subarray(k * out, (k + 1) * out);
    for (let i = 0; i < out; i++) v[i] = W[i * inF + k];
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < k; j++) {
        const u = q.subarray(j * out, (j + 1) * out);
        let d = 0;
        for (let i = 0; i < out; i++) d += u[i] * v[i];
        for (let i = 0; i < out; i++) v[i] -= d * u[i];
      }
    }
    let n = 0;
    for (let i = 0; i < out; i++) n += v[i] * v[i];
    n = Math.sqrt(n);
    if (!(n > 0)) throw new InteropError('bad-config', `OLoRA: the first ${r} columns of the weight are linearly dependent; its QR does not define the residual`);
    for (let i = 0; i < out; i++) v[i] /= n;
  }
  return project(W, q, out, inF, r, 'left');
}

/** The rank-r truncation of W: the projection onto the top-r singular vectors of its smaller side. */
function truncatedSvd(W: Float64Array, out: number, inF: number, r: number, where: string): Float64Array {
  const left = out <= inF;
  const n = left ? out : inF;
  if (n > MAX_RESIDUAL_DIM) {
    throw new InteropError(
      'too-large',
      `${where}: recomputing PiSSA's SVD for a ${out}×${inF} weight is beyond this implementation (smaller side over ${MAX_RESIDUAL_DIM}); ${CONVERT}`,
    );
  }
  // Gram matrix of the smaller side: W·Wᵀ [out, out] or Wᵀ·W [in, in].
  const g = new Float64Array(n * n);
  if (left) {
    for (let a = 0; a < n; a++) {
      const ra = W.subarray(a * inF, (a + 1) * inF);
      for (let b = a; b < n; b++) {
        const rb = W.subarray(b * inF, (b + 1) * inF);
        let s = 0;
        for (let k = 0; k < inF; k++) s += ra[k] * rb[k];
        g[a * n + b] = s;
      }
    }
  } else {
    // Wᵀ·W as a sum of outer products of W's rows (contiguous reads).
    for (let k = 0; k < out; k++) {
      const row = W.subarray(k * inF, (k + 1) * inF);
      for (let a = 0; a < n; a++) {
        const va = row[a];
        if (va === 0) continue;
        const o = a * n;
        for (let b = a; b < n; b++) g[o + b] += va * row[b];
      }
    }
  }
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) g[b * n + a] = g[a * n + b];
  const { values, vectors } = symmetricEigenTridiagonal(g, n);
  const order = [...values.keys()].sort((x, y) => values[y] - values[x]);
  if (r < n && Math.abs(values[order[r - 1]] - values[order[r]]) <= 1e-12 * Math.abs(values[order[0]])) {
    throw new InteropError('bad-config', `${where}: singular values ${r} and ${r + 1} of the weight are equal, so the rank-${r} PiSSA split is not unique; ${CONVERT}`);
  }
  const basis = new Float64Array(r * n);
  for (let k = 0; k < r; k++) for (let i = 0; i < n; i++) basis[k * n + i] = vectors[i * n + order[k]];
  return project(W, basis, out, inF, r, left ? 'left' : 'right');
}

/** 'left': U·Uᵀ·W with U's rows in `basis` ([r, out]); 'right': W·V·Vᵀ with V's rows in `basis` ([r, in]). */
function project(W: Float64Array, basis: Float64Array, out: number, inF: number, r: number, side: 'left' | 'right'): Float64Array {
  const res = new Float64Array(out * inF);
  if (side === 'left') {
    for (let k = 0; k < r; k++) {
      const u = basis.subarray(k * out, (k + 1) * out);
      const c = new Float64Array(inF); // uᵀ·W
      for (let i = 0; i < out; i++) if (u[i] !== 0) for (let j = 0; j < inF; j++) c[j] += u[i] * W[i * inF + j];
      for (let i = 0; i < out; i++) for (let j = 0; j < inF; j++) res[i * inF + j] += u[i] * c[j];
    }
  } else {
    for (let k = 0; k < r; k++) {
      const v = basis.subarray(k * inF, (k + 1) * inF);
      for (let i = 0; i < out; i++) {
        let c = 0; // (W·v)_i
        for (let j = 0; j < inF; j++) c += W[i * inF + j] * v[j];
        for (let j = 0; j < inF; j++) res[i * inF + j] += c * v[j];
      }
    }
  }
  return res;
}

/**
 * Eigen-decomposition of a symmetric n×n matrix (row-major): Householder reduction to tridiagonal form,
 * then the implicit QL algorithm (EISPACK tred2 / tql2, as in JAMA). Cubic like cyclic Jacobi rotations
 * (engine/spectrum.ts, for small matrices) but with a far smaller constant. Eigenvectors are V's columns.
 */
export function symmetricEigenTridiagonal(s: ArrayLike<number>, n: number): { values: Float64Array; vectors: Float64Array } {
  const V: Float64Array[] = [];
  for (let i = 0; i < n; i++) V.push(Float64Array.from({ length: n }, (_, j) => s[i * n + j]));
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  if (n === 0) return { values: d, vectors: new Float64Array(0) };
  // tred2: Householder tridiagonalisation, accumulating the transformations in V.
  for (let j = 0; j < n; j++) d[j] = V[n - 1][j];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[i - 1][j];
        V[i][j] = 0;
        V[j][i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[j][i] = f;
        g = e[j] + V[j][j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k][j] * d[k];
          e[k] += V[k][j] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[k][j] -= f * e[k] + g * d[k];
        d[j] = V[i - 1][j];
        V[i][j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[n - 1][i] = V[i][i];
    V[i][i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k][i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k][i + 1] * V[k][j];
        for (let k = 0; k <= i; k++) V[k][j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k][i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[n - 1][j];
    V[n - 1][j] = 0;
  }
  V[n - 1][n - 1] = 1;
  e[0] = 0;
  // tql2: implicit QL iterations on the tridiagonal matrix (diagonal d, off-diagonal e). Its rotations
  // mix two columns of V at a time: they run on Vᵀ's rows, which are contiguous.
  const Vt: Float64Array[] = [];
  for (let i = 0; i < n; i++) Vt.push(Float64Array.from({ length: n }, (_, k) => V[k][i]));
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      for (let iter = 0; ; iter++) {
        if (iter > 60 * n) throw new InteropError('bad-config', 'the eigensolver did not converge (a non-finite weight?)');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let sn = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = sn;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = sn * r;
          sn = e[i] / r;
          c = p / r;
          p = c * d[i] - sn * g;
          d[i + 1] = h + sn * (c * g + sn * d[i]);
          const vi = Vt[i];
          const vi1 = Vt[i + 1];
          for (let k = 0; k < n; k++) {
            h = vi1[k];
            vi1[k] = sn * vi[k] + c * h;
            vi[k] = c * vi[k] - sn * h;
          }
        }
        p = (-sn * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = sn * p;
        d[l] = c * p;
        if (!(Math.abs(e[l]) > eps * tst1)) break;
      }
    }
    d[l] += f;
    e[l] = 0;
  }
  const vectors = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vectors[k * n + i] = Vt[i][k];
  return { values: d, vectors };
}
