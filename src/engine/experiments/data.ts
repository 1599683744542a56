// Small data helpers shared by the built-in experiments.
import * as tf from '@tensorflow/tfjs-core';
import type { RunParamSummary } from '../reports';
import type { LoRALinear } from '../lora';
import { modelParamCount } from '../../shared/paramCount';
import { Rng } from '../rng';

/** Indices of the batch for update `u`: a pure function of (seed, u), so a resumed run sees the same data. */
export function batchIndices(seed: number, u: number, poolSize: number, batchSize: number): Int32Array {
  const rng = Rng.derive(seed, 'batch', u);
  return rng.sampleWithoutReplacement(poolSize, Math.min(batchSize, poolSize));
}

/**
 * Rows `idx` of a row-major pool (rowLen values per row) as a new array. The training pools live in JS
 * memory and batches are assembled here because a tf.gather of the rows on the wasm backend costs about
 * as much as the layer's forward matMul, and this copy a small fraction of it (figures in
 * test/bench/README.md).
 */
export function gatherRows(pool: Float32Array, rowLen: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * rowLen);
  for (let i = 0; i < idx.length; i++) out.set(pool.subarray(idx[i] * rowLen, (idx[i] + 1) * rowLen), i * rowLen);
  return out;
}

/** Mean squared error, the loss of both built-in experiments. */
export function mse(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.mean(tf.squaredDifference(pred, target)) as tf.Scalar;
}

/** Frobenius norm of a plain array. */
export function frobenius(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/** U [k, r*] and V [r*, d] with ‖U·V‖_F = targetNorm (Gaussian factors, the scale split evenly). */
export function lowRankFactors(k: number, d: number, rank: number, targetNorm: number, rng: Rng): { U: Float32Array; V: Float32Array; UV: Float32Array } {
  const U = rng.normalArray(k * rank);
  const V = rng.normalArray(rank * d);
  const UV = new Float64Array(k * d);
  for (let i = 0; i < k; i++) for (let j = 0; j < rank; j++) {
    const u = U[i * rank + j];
    for (let c = 0; c < d; c++) UV[i * d + c] += u * V[j * d + c];
  }
  const norm = frobenius(UV);
  const c = norm > 0 ? Math.sqrt(targetNorm / norm) : 0;
  for (let i = 0; i < U.length; i++) U[i] *= c;
  for (let i = 0; i < V.length; i++) V[i] *= c;
  const out = new Float32Array(k * d);
  for (let i = 0; i < out.length; i++) out[i] = UV[i] * c * c;
  return { U, V, UV: out };
}

/**
 * The run's parameter summary from its adapted modules (what trains: A, B, trained biases and `extraTrainable`
 * base parameters; the percentage is PEFT's, of base + LoRA).
 */
export function paramSummary(baseParams: number, modules: Record<string, LoRALinear>, extraTrainable = 0): RunParamSummary {
  const adapted = Object.entries(modules).map(([name, m]) => ({ name, inFeatures: m.inFeatures, outFeatures: m.outFeatures, r: m.r, hasBias: m.hasBias }));
  const c = modelParamCount(baseParams, adapted, { trainBias: Object.values(modules).some((m) => m.trainBias), extraTrainable });
  return { totalParams: c.baseParams, trainableParams: c.trainableParams, trainablePercentPeft: c.trainablePercent };
}
