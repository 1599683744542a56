// ΔW of one adapter module in plain TypeScript (the extension host may call it, so no tfjs): the
// low-rank product in the base layer's [out, in(, kh, kw)] orientation, times the module's scale.
import { InteropError } from './interopError';
import type { AdapterFormat, AdapterModule, TensorInfo } from './adapterFormats';

export interface DeltaW {
  shape: number[];
  data: Float32Array;
}

/** C[m, n] = Σ_k A[m, k] B[k, n] for row-major A [m, k], B [k, n]. */
export function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      if (av === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) c[row + j] += av * b[bo + j];
    }
  }
  return c;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

/** Kronecker product of A [a0, a1] and B [b0, b1(, …rest)] -> [a0·b0, a1·b1(, …rest)]. */
export function kron(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[]): Float32Array {
  const [a0, a1] = aShape;
  const [b0, b1] = bShape;
  const rest = bShape.slice(2).reduce((x, y) => x * y, 1);
  const out = new Float32Array(a0 * b0 * a1 * b1 * rest);
  const cols = a1 * b1;
  for (let i = 0; i < a0; i++)
    for (let j = 0; j < a1; j++) {
      const av = a[i * a1 + j];
      for (let p = 0; p < b0; p++)
        for (let q = 0; q < b1; q++)
          for (let r = 0; r < rest; r++) out[((i * b0 + p) * cols + j * b1 + q) * rest + r] = av * b[(p * b1 + q) * rest + r];
    }
  return out;
}

/**
 * LyCORIS's Tucker rebuild (rebuild_tucker; LoHa's HadaWeightCP uses the same contraction):
 * out[p, q, …k] = Σ_ij t[i, j, …k]·wa[i, p]·wb[j, q] for t [r1, r2, …k], wa [r1, P], wb [r2, Q] -> [P, Q, …k].
 */
export function rebuildTucker(t: Float32Array, tShape: number[], wa: Float32Array, waShape: number[], wb: Float32Array, wbShape: number[]): Float32Array {
  const [r1, r2] = tShape;
  const kk = tShape.slice(2).reduce((a, b) => a * b, 1);
  const P = waShape[1];
  const Q = wbShape[1];
  // tmp[i, q, k] = Σ_j t[i, j, k]·wb[j, q]
  const tmp = new Float32Array(r1 * Q * kk);
  for (let i = 0; i < r1; i++)
    for (let j = 0; j < r2; j++)
      for (let q = 0; q < Q; q++) {
        const w = wb[j * Q + q];
        if (w === 0) continue;
        const to = (i * Q + q) * kk;
        const ti = (i * r2 + j) * kk;
        for (let k = 0; k < kk; k++) tmp[to + k] += t[ti + k] * w;
      }
  // out[p, q, k] = Σ_i wa[i, p]·tmp[i, q, k]
  const out = new Float32Array(P * Q * kk);
  for (let i = 0; i < r1; i++)
    for (let p = 0; p < P; p++) {
      const w = wa[i * P + p];
      if (w === 0) continue;
      const oo = p * Q * kk;
      const ti = i * Q * kk;
      for (let x = 0; x < Q * kk; x++) out[oo + x] += w * tmp[ti + x];
    }
  return out;
}

function scaleInPlace(x: Float32Array, s: number): Float32Array {
  if (s !== 1) for (let i = 0; i < x.length; i++) x[i] *= s;
  return x;
}

/**
 * ΔW for a module. `get` returns a tensor's values as float32 (row-major).
 * GPT-2 Conv1D (PEFT fan_in_fan_out) stores W as [in, out]; ΔW here is still [out, in], as PEFT's
 * get_delta_weight returns it before the transpose merge applies.
 */
export function deltaW(format: AdapterFormat, m: AdapterModule, get: (name: string) => Float32Array): DeltaW {
  const t = m.tensors;
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  switch (m.kind) {
    case 'lora': {
      let up: Float32Array, down: Float32Array, out: number, inner: number;
      const r = m.rank;
      if (t.lora_embedding_A && t.lora_embedding_B) {
        // PEFT lora.Embedding: A [r, rows], B [dim, r]; ΔW [rows, dim] = s·(B·A)ᵀ = s·Aᵀ·Bᵀ.
        const rows = t.lora_embedding_A.shape[1];
        const dim = t.lora_embedding_B.shape[0];
        up = transpose(get(t.lora_embedding_A.name), r, rows); // [rows, r]
        down = transpose(get(t.lora_embedding_B.name), dim, r); // [r, dim]
        out = rows;
        inner = dim;
      } else if (format === 'mlx') {
        // lora_a [in, r], lora_b [r, out]: ΔW = scale · (a b)ᵀ = scale · bᵀ aᵀ
        const a = t.lora_a;
        const b = t.lora_b;
        up = transpose(get(b.name), r, b.shape[1]); // [out, r]
        down = transpose(get(a.name), a.shape[0], r); // [r, in]
        out = b.shape[1];
        inner = a.shape[0];
      } else {
        const d = t.lora_down ?? t.lora_A ?? t.down;
        const u = t.lora_up ?? t.lora_B ?? t.up;
        down = get(d.name); // [r, in(, kh, kw)]
        up = get(u.name); // [out, r(, 1, 1)]
        out = u.shape[0];
        inner = size(d.shape) / r;
      }
      return { shape: m.deltaShape, data: scaleInPlace(matmul(up, down, out, r, inner), m.scale) };
    }
    case 'locon': {
      // down [r, in, 1, 1], mid [r, r, kh, kw], up [out, r, 1, 1]: ΔW[o, i, k] = Σ_ab up[o, a] mid[a, b, k] down[b, i]
      const r = m.rank;
      const down = get(t.lora_down.name);
      const mid = get(t.lora_mid.name);
      const up = get(t.lora_up.name);
      const inF = t.lora_down.shape[1];
      const kk = size(t.lora_mid.shape.slice(2));
      const out = t.lora_up.shape[0];
      // up·mid: [out, r·kk] viewing mid as [r, r·kk]
      const um = matmul(up, mid, out, r, r * kk); // [out, (b, k)]
      const res = new Float32Array(out * inF * kk);
      for (let o = 0; o < out; o++)
        for (let b = 0; b < r; b++)
          for (let k = 0; k < kk; k++) {
            const v = um[o * r * kk + b * kk + k];
            if (v === 0) continue;
            for (let i = 0; i < inF; i++) res[(o * inF + i) * kk + k] += v * down[b * inF + i];
          }
      return { shape: m.deltaShape, data: scaleInPlace(res, m.scale) };
    }
    case 'loha': {
      if (t.hada_t1 || t.hada_t2) {
        // Tucker (use_tucker / CP): w?_a [r, out], w?_b [r, in], t? [r, r, kh, kw]; ΔW = T1 ⊙ T2 · scale, [out, in, kh, kw].
        if (!t.hada_t1 || !t.hada_t2) throw new InteropError('unknown-format', `${m.name}: LoHa with ${t.hada_t1 ? 'hada_t1' : 'hada_t2'} but no ${t.hada_t1 ? 'hada_t2' : 'hada_t1'}`);
        const half = (tt: TensorInfo, a: TensorInfo, b: TensorInfo) => rebuildTucker(get(tt.name), tt.shape, get(a.name), a.shape, get(b.name), b.shape);
        const p1 = half(t.hada_t1, t.hada_w1_a, t.hada_w1_b);
        const p2 = half(t.hada_t2, t.hada_w2_a, t.hada_w2_b);
        for (let i = 0; i < p1.length; i++) p1[i] *= p2[i] * m.scale;
        return { shape: [t.hada_w1_a.shape[1], t.hada_w1_b.shape[1], ...t.hada_t1.shape.slice(2)], data: p1 };
      }
      const [out, r] = t.hada_w1_a.shape;
      const inF = size(t.hada_w1_b.shape) / r;
      const p1 = matmul(get(t.hada_w1_a.name), get(t.hada_w1_b.name), out, r, inF);
      const p2 = matmul(get(t.hada_w2_a.name), get(t.hada_w2_b.name), out, t.hada_w2_b.shape[0], inF);
      for (let i = 0; i < p1.length; i++) p1[i] *= p2[i] * m.scale;
      return { shape: [out, inF], data: p1 };
    }
    case 'lokr': {
      const factor = (full: string, a: string, b: string): [Float32Array, number[]] => {
        if (t[full]) return [get(t[full].name), t[full].shape];
        // Tucker w2 (conv): lokr_t2 [r, r, kh, kw], lokr_w2_a [r, out_k], lokr_w2_b [r, in_n] -> [out_k, in_n, kh, kw].
        if (full === 'lokr_w2' && t.lokr_t2) return [rebuildTucker(get(t.lokr_t2.name), t.lokr_t2.shape, get(t[a].name), t[a].shape, get(t[b].name), t[b].shape), [t[a].shape[1], t[b].shape[1], ...t.lokr_t2.shape.slice(2)]];
        const A = t[a];
        const B = t[b];
        const inner = A.shape[1];
        const cols = size(B.shape) / inner;
        return [matmul(get(A.name), get(B.name), A.shape[0], inner, cols), [A.shape[0], cols]];
      };
      const [w1, s1] = factor('lokr_w1', 'lokr_w1_a', 'lokr_w1_b');
      const [w2, s2] = factor('lokr_w2', 'lokr_w2_a', 'lokr_w2_b');
      return { shape: m.deltaShape, data: scaleInPlace(kron(w1, s1, w2, s2), m.scale) };
    }
  }
}

function gram(x: Float32Array, rows: number, cols: number, byRows: boolean): Float64Array {
  // byRows: X Xᵀ ([rows, rows]); else Xᵀ X ([cols, cols]).
  const n = byRows ? rows : cols;
  const g = new Float64Array(n * n);
  if (byRows) {
    for (let i = 0; i < rows; i++)
      for (let j = i; j < rows; j++) {
        let s = 0;
        for (let k = 0; k < cols; k++) s += x[i * cols + k] * x[j * cols + k];
        g[i * n + j] = g[j * n + i] = s;
      }
  } else {
    for (let k = 0; k < rows; k++)
      for (let i = 0; i < cols; i++) {
        const v = x[k * cols + i];
        if (v === 0) continue;
        for (let j = 0; j < cols; j++) g[i * n + j] += v * x[k * cols + j];
      }
  }
  return g;
}

function frob(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/**
 * ‖ΔW‖_F without forming ΔW where the factors allow it: for U·D (U [out, r], D [r, in])
 * ‖U D‖² = tr((UᵀU)(D Dᵀ)), two r×r Gram matrices; for a Kronecker product ‖w1 ⊗ w2‖ = ‖w1‖·‖w2‖.
 * LoHa and LoCon fall back to the full ΔW (undefined beyond `maxElements`).
 */
export function deltaNorm(format: AdapterFormat, m: AdapterModule, get: (name: string) => Float32Array, maxElements = 4_000_000): number | undefined {
  const t = m.tensors;
  const r = m.rank;
  if (m.kind === 'lora') {
    let UtU: Float64Array, DDt: Float64Array;
    if (t.lora_embedding_A && t.lora_embedding_B) {
      // ‖(B·A)ᵀ‖ = ‖B·A‖: U = B [dim, r], D = A [r, rows]
      UtU = gram(get(t.lora_embedding_B.name), t.lora_embedding_B.shape[0], r, false);
      DDt = gram(get(t.lora_embedding_A.name), r, t.lora_embedding_A.shape[1], true);
    } else if (format === 'mlx') {
      // U = bᵀ, D = aᵀ: UᵀU = b bᵀ, D Dᵀ = aᵀ a
      UtU = gram(get(t.lora_b.name), r, t.lora_b.shape[1], true);
      DDt = gram(get(t.lora_a.name), t.lora_a.shape[0], r, false);
    } else {
      const d = t.lora_down ?? t.lora_A ?? t.down;
      const u = t.lora_up ?? t.lora_B ?? t.up;
      const out = u.shape[0];
      UtU = gram(get(u.name), out, r, false);
      DDt = gram(get(d.name), r, d.shape.reduce((a, b) => a * b, 1) / r, true);
    }
    let tr = 0;
    for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) tr += UtU[i * r + j] * DDt[j * r + i];
    return Math.abs(m.scale) * Math.sqrt(Math.max(0, tr));
  }
  if (m.kind === 'lokr') {
    const f = (full: string, a: string, b: string) => {
      if (t[full]) return frob(get(t[full].name));
      if (full === 'lokr_w2' && t.lokr_t2) return frob(rebuildTucker(get(t.lokr_t2.name), t.lokr_t2.shape, get(t[a].name), t[a].shape, get(t[b].name), t[b].shape));
      const A = t[a];
      const B = t[b];
      return frob(matmul(get(A.name), get(B.name), A.shape[0], A.shape[1], B.shape.reduce((x, y) => x * y, 1) / A.shape[1]));
    };
    return Math.abs(m.scale) * f('lokr_w1', 'lokr_w1_a', 'lokr_w1_b') * f('lokr_w2', 'lokr_w2_a', 'lokr_w2_b');
  }
  if (m.deltaShape.reduce((a, b) => a * b, 1) > maxElements) return undefined;
  try {
    return frob(deltaW(format, m, get).data);
  } catch {
    return undefined;
  }
}
