// RoPE's rotate_half as one product: rotate_half(x) = [-x2, x1] on the last axis equals
// x · P with P the signed permutation below. Entries are exactly 0 and ±1, so the product is exact;
// it replaces two slices, a negation and a concat forward (and a split, a negation and a concat
// backward) by one XNNPACK matMul each way, a large saving where tfjs's per-kernel overhead dominates.
import * as tf from '@tensorflow/tfjs-core';

/** P [dim, dim] with x·P = rotate_half(x) = concat(-x[half:], x[:half]). dim must be even. */
export function rotateHalfMatrix(dim: number): tf.Tensor2D {
  if (dim % 2 !== 0 || dim <= 0) throw new Error(`rotateHalfMatrix: dim must be a positive even number, got ${dim}`);
  const half = dim / 2;
  const p = new Float32Array(dim * dim); // row = input index, column = output index
  for (let i = 0; i < half; i++) {
    p[(i + half) * dim + i] = -1; // out[i] = -x[i + half]
    p[i * dim + i + half] = 1; // out[i + half] = x[i]
  }
  return tf.tensor2d(p, [dim, dim]);
}

/** rotate_half(x) for x [..., dim] as one matMul with p = rotateHalfMatrix(dim). */
export function rotateHalfMatMul(x: tf.Tensor, p: tf.Tensor2D): tf.Tensor {
  const dim = p.shape[0];
  return tf.reshape(tf.matMul(tf.reshape(x, [-1, dim]), p), x.shape);
}
