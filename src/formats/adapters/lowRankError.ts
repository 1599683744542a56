// How far a converted LoRA module's ΔW is from the original, without forming either ΔW: both are
// low-rank products, so the norms come from r×r Gram matrices (‖U·D‖²_F = tr(UᵀU · D·Dᵀ)). Pure.

/** A low-rank ΔW = scale · U · D, U [out, r] and D [r, in] row-major. */
export interface LowRankDelta {
  U: Float32Array;
  D: Float32Array;
  scale: number;
}

/** Squared Frobenius norm of Σ_k X_k·Y_k for X_k [out, r], Y_k [r, in] (float64 Gram matrices). */
function normSq(terms: { X: Float64Array; Y: Float64Array }[], out: number, r: number, inF: number): number {
  const k = terms.length * r;
  // X = [X_1 … X_n] (out × k), Y = [Y_1; …; Y_n] (k × in): ‖X·Y‖² = tr(XᵀX · Y·Yᵀ).
  const XtX = new Float64Array(k * k);
  const YYt = new Float64Array(k * k);
  const col = (t: number, c: number) => [terms[t], c] as const;
  for (let a = 0; a < k; a++) {
    const [ta, ca] = col(Math.floor(a / r), a % r);
    for (let b = a; b < k; b++) {
      const [tb, cb] = col(Math.floor(b / r), b % r);
      let sx = 0;
      for (let o = 0; o < out; o++) sx += ta.X[o * r + ca] * tb.X[o * r + cb];
      let sy = 0;
      const ya = ca * inF;
      const yb = cb * inF;
      for (let i = 0; i < inF; i++) sy += ta.Y[ya + i] * tb.Y[yb + i];
      XtX[a * k + b] = XtX[b * k + a] = sx;
      YYt[a * k + b] = YYt[b * k + a] = sy;
    }
  }
  let tr = 0;
  for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) tr += XtX[a * k + b] * YYt[b * k + a];
  return Math.max(0, tr);
}

/**
 * ‖ΔW_got − ΔW_ref‖_F / ‖ΔW_ref‖_F for two modules of the same rank and shape, and ‖ΔW_ref‖_F.
 * The difference is written as (s·U − s'·U')·D + s'·U'·(D − D'), so rounding in the conversion is
 * measured directly rather than as the difference of two large norms. A zero ΔW_ref gives 0 when
 * ΔW_got is zero too, else Infinity.
 */
export function lowRankRelError(ref: LowRankDelta, got: LowRankDelta, out: number, rank: number, inF: number): { relError: number; norm: number } {
  const dU = new Float64Array(out * rank);
  const sU2 = new Float64Array(out * rank);
  const refU = new Float64Array(out * rank);
  for (let i = 0; i < dU.length; i++) {
    refU[i] = ref.scale * ref.U[i];
    sU2[i] = got.scale * got.U[i];
    dU[i] = refU[i] - sU2[i];
  }
  const D = Float64Array.from(ref.D);
  const dD = new Float64Array(rank * inF);
  for (let i = 0; i < dD.length; i++) dD[i] = ref.D[i] - got.D[i];
  const norm = Math.sqrt(normSq([{ X: refU, Y: D }], out, rank, inF));
  const diff = Math.sqrt(normSq([{ X: dU, Y: D }, { X: sU2, Y: dD }], out, rank, inF));
  if (norm === 0) return { relError: diff === 0 ? 0 : Infinity, norm };
  return { relError: diff / norm, norm };
}
