// The optional native kernels (native/src, N-API binding in native/src/binding.c) as the engine sees them: an object with a
// matrix-product entry point. The engine never loads them itself (it stays free of node built-ins);
// src/runs/nativeLoader.ts loads the addon where it was built and hands it to initBackend.

/** flags for NativeKernels.gemm */
export const GEMM_TRANS_A = 1;
export const GEMM_TRANS_B = 2;
export const GEMM_A_BATCHED = 4;
export const GEMM_B_BATCHED = 8;

export interface NativeKernels {
  /**
   * For each batch entry e < batch: C[e] (m×n, row-major) = op(A[e])·op(B[e]) (+ bias of n on every
   * row). op(A) = A stored m×k, or Aᵀ stored k×m with GEMM_TRANS_A; op(B) = B stored k×n, or Bᵀ
   * stored n×k with GEMM_TRANS_B. Without GEMM_A_BATCHED every entry uses the one A at aOff (the
   * same for B). Offsets are in elements. Throws when a size or offset does not fit its array, or C
   * overlaps an input.
   */
  gemm(
    a: Float32Array, aOff: number, b: Float32Array, bOff: number, c: Float32Array, cOff: number,
    bias: Float32Array | null, biasOff: number, batch: number, m: number, n: number, k: number, flags: number,
  ): void;
  /**
   * out[outOff + i] = e^x[xOff + i] for i < count (≤ 1 ulp from float64 exp over the normal range;
   * NaN, ±∞, overflow and underflow as Math.exp rounded to float32). out may be x at the same offset.
   */
  exp(x: Float32Array, xOff: number, out: Float32Array, outOff: number, count: number): void;
  /** GELU (tanh approximation) of count floats: y = x·s, s = σ(2c·(x + 0.044715·x³)), c = √(2/π). */
  geluTanh(x: Float32Array, xOff: number, y: Float32Array, yOff: number, s: Float32Array, sOff: number, count: number): void;
  /** Its gradient: dx = dy·(s + x·s·(1 − s)·2c·(1 + 3·0.044715·x²)). */
  geluTanhGrad(
    dy: Float32Array, dyOff: number, x: Float32Array, xOff: number, s: Float32Array, sOff: number,
    dx: Float32Array, dxOff: number, count: number,
  ): void;
  /**
   * LayerNorm (center 1) or RMSNorm (center 0) of rows × dim floats over the last axis: y = w·x̂ (+ b),
   * stats[2·row] = mean (0 for RMSNorm), stats[2·row + 1] = 1/√(var + eps).
   */
  norm(
    x: Float32Array, xOff: number, w: Float32Array, wOff: number, b: Float32Array | null, bOff: number,
    y: Float32Array, yOff: number, stats: Float32Array, statsOff: number, rows: number, dim: number, eps: number, center: number,
  ): void;
  /** Its gradient: dx, dw = Σ dy·x̂ and (with db) db = Σ dy, from the forward pass's stats. */
  normGrad(
    dy: Float32Array, dyOff: number, x: Float32Array, xOff: number, w: Float32Array, wOff: number, stats: Float32Array, statsOff: number,
    dx: Float32Array, dxOff: number, dw: Float32Array, dwOff: number, db: Float32Array | null, dbOff: number, rows: number, dim: number, center: number,
  ): void;
  /**
   * A frozen weight W, stored row-major [rows, cols] in `bytes` (F32, BF16 or F16 as in the file),
   * left where it is (the addon keeps a reference to the bytes) and never widened as a whole.
   * Absent from addons built before it.
   */
  frozenWeight?(bytes: Uint8Array, dtype: 'F32' | 'BF16' | 'F16', rows: number, cols: number): object;
  /** mode 0: y [n, rows] = x [n, cols]·Wᵀ; mode 1: y [n, cols] = x [n, rows]·W. Equal to gemm on W widened. */
  frozenMatMul?(w: object, x: Float32Array, xOff: number, y: Float32Array, yOff: number, n: number, mode: 0 | 1): void;
  /** out [count, cols] = rows idx[idxOff..idxOff + count) of W, widened to float32. */
  frozenGather?(w: object, idx: Int32Array, idxOff: number, count: number, out: Float32Array, outOff: number): void;
  /**
   * Softmax cross-entropy of the rows × vocab logits at z[zOff..] against labels (each in [0, vocab)):
   * loss[i] = log Σ e^z[i] − z[i, labels[i]]; with scale (else null) the logits are overwritten in place
   * by the gradient scale[i]·(softmax(z[i]) − onehot(labels[i])). Absent from addons built before it.
   */
  softmaxXent?(z: Float32Array, zOff: number, rows: number, vocab: number, labels: Int32Array, scale: Float32Array | null, loss: Float32Array): void;
  /**
   * Attention's softmax: p = softmax(s / divisor + mask) over each of `rows` rows of `cols`, the mask
   * ([maskRows, cols], or null) repeated over the rows. Absent from addons built before it.
   */
  softmaxRows?(s: Float32Array, sOff: number, mask: Float32Array | null, maskOff: number, maskRows: number, p: Float32Array, pOff: number, rows: number, cols: number, divisor: number): void;
  /** Its gradient: ds = p·(dp − Σ dp·p) / divisor, row by row. */
  softmaxRowsGrad?(p: Float32Array, pOff: number, dp: Float32Array, dpOff: number, ds: Float32Array, dsOff: number, rows: number, cols: number, divisor: number): void;
  /** The instruction set in use: "avx512", "avx2", "neon" (arm64) or "generic". */
  isa(): string;
  /** The instruction sets this CPU can run, fastest first. */
  isas(): string[];
  /** Switches the instruction set (tests compare them); returns the one now in use. */
  selectIsa(name: string): string;
  /** Threads per product (1 to 64). Each element of C is summed in the same order whatever the count. */
  setThreads(n: number): number;
  threads(): number;
  version: number;
}

/** One line for reports: "native avx512 kernels, 2 threads (lora-lab-native 1)". */
export function describeNative(nk: NativeKernels): string {
  const t = nk.threads();
  return `native ${nk.isa()} kernels, ${t} thread${t === 1 ? '' : 's'} (lora-lab-native ${nk.version})`;
}
