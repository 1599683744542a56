// Small data helpers shared by the built-in experiments.
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../rng';

/** Indices of the batch for update `u`: a pure function of (seed, u), so a resumed run sees the same data. */
export function batchIndices(seed: number, u: number, poolSize: number, batchSize: number): tf.Tensor1D {
  const rng = Rng.derive(seed, 'batch', u);
  const n = Math.min(batchSize, poolSize);
  return tf.tensor1d(rng.sampleWithoutReplacement(poolSize, n), 'int32');
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
