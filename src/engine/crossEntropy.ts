// Token cross-entropy over a large vocabulary, as memory-lean trainers compute it: the output layer's
// logits are made a chunk of rows at a time, forward and backward, so the full N×V logits, their
// softmax and their gradient never exist at once (at GPT-2's vocabulary and B8×T512 they would be
// 0.8 GB each). When a gradient is recorded, each chunk's gradient with respect to the hidden states
// is made in the forward pass, while its logits exist (as fused linear cross-entropy kernels do), so
// the logits are made once per step. With the native kernels each chunk's softmax, loss and gradient
// are one pass per row (src/engine/kernels/softmaxXent.ts); elsewhere tfjs ops compute the same. The
// plain form below is the reference and the path for an adapted output layer.
//
// Labels: one per row, a token id, or a negative number for a row that does not count (transformers'
// ignore_index -100: padding, the last position of a causal window). The loss is the mean over the
// counted rows; with none counted it is NaN, as torch's mean cross-entropy is.
import * as tf from '@tensorflow/tfjs-core';
import { lossChunkRows } from './memoryEstimate';
import { subtractAtFresh } from './kernels/inPlace';
import { softmaxXentFresh } from './kernels/softmaxXent';

/** One-hot rows as float32. The wasm backend's OneHot writes int32 whatever dtype is asked for, so cast. */
function oneHotF32(labels: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.cast(tf.oneHot(labels, depth), 'float32') as tf.Tensor2D;
}

function checkLabels(labels: Int32Array, n: number, vocab: number, what: string): number {
  if (labels.length !== n) throw new RangeError(`${what}: ${labels.length} labels for ${n} rows`);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const l = labels[i];
    if (l >= vocab) throw new RangeError(`${what}: label ${l} at row ${i} is outside the vocabulary of ${vocab}`);
    if (l >= 0) count++;
  }
  return count;
}

/** Mean cross-entropy of logits [N, V] against labels (negative: ignored), all rows at once. */
export function plainCrossEntropy(logits: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  const [n, v] = logits.shape;
  const count = checkLabels(labels, n, v, 'plainCrossEntropy');
  return tf.tidy(() => {
    const mask = tf.tensor1d(Float32Array.from(labels, (l) => (l >= 0 ? 1 : 0))); // [N]
    const safe = tf.tensor1d(Int32Array.from(labels, (l) => Math.max(l, 0)), 'int32'); // [N]
    const logp = tf.logSoftmax(logits); // [N, V]
    const picked = tf.sum(tf.mul(logp, oneHotF32(safe, v)), 1); // [N]
    return tf.div(tf.neg(tf.sum(tf.mul(picked, mask))), count) as tf.Scalar;
  });
}

/** The output layer as two products (a weight outside the heap): x·Wᵀ [rows, V] and its input gradient g·W [rows, H]. */
export interface OutputProduct {
  logits(x: tf.Tensor2D): tf.Tensor2D;
  inputGrad(g: tf.Tensor2D): tf.Tensor2D;
  vocab: number;
}

/**
 * Mean cross-entropy of the logits h·wt (+ bias) against labels, in chunks of `chunkRows` rows each
 * way. h [N, H]; wt [H, V] (frozen: no gradient flows to it, nor to bias); the gradient reaches h.
 */
export function chunkedCrossEntropy(
  h: tf.Tensor2D, wt: tf.Tensor2D | OutputProduct, bias: tf.Tensor1D | undefined, labels: Int32Array,
  chunkRows = lossChunkRows(wt instanceof tf.Tensor ? wt.shape[1] : wt.vocab),
): tf.Scalar {
  const [n, hidden] = h.shape;
  const out: OutputProduct = wt instanceof tf.Tensor
    ? { logits: (x) => tf.matMul(x, wt), inputGrad: (g) => tf.matMul(g, wt, false, true), vocab: wt.shape[1] }
    : wt;
  const v = out.vocab;
  if (wt instanceof tf.Tensor && wt.shape[0] !== hidden) throw new RangeError(`chunkedCrossEntropy: h is [${n}, ${hidden}] but the output weight is [${wt.shape}] (expected [${hidden}, V])`);
  const count = checkLabels(labels, n, v, 'chunkedCrossEntropy');
  const rows = Math.max(1, Math.min(n, Math.floor(chunkRows)));
  const chunks: { r0: number; len: number; safe: Int32Array; mask: Float32Array }[] = [];
  for (let r0 = 0; r0 < n; r0 += rows) {
    const len = Math.min(rows, n - r0);
    const part = labels.subarray(r0, r0 + len);
    chunks.push({ r0, len, safe: Int32Array.from(part, (l) => Math.max(l, 0)), mask: Float32Array.from(part, (l) => (l >= 0 ? 1 : 0)) });
  }
  const logitsOf = (x: tf.Tensor2D, c: (typeof chunks)[number]): tf.Tensor2D => {
    const z = out.logits(tf.slice(x, [c.r0, 0], [c.len, hidden])); // [len, V]
    return (bias ? tf.add(z, bias) : z) as tf.Tensor2D;
  };
  // Whether a gradient is being recorded: then each chunk's gradient with respect to h is made while its
  // logits exist (the loss is the last op, so dL/dh is the chunk's part times the scalar dy of the
  // backward pass), and the backward pass neither recomputes the logits nor runs a second softmax.
  const recording = (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
  const f = tf.customGrad((x: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const hx = x as tf.Tensor2D;
    let total: tf.Tensor = tf.scalar(0);
    const parts: tf.Tensor[] = [];
    for (const c of chunks) {
      const [next, dh] = tf.tidy(() => {
        const z = logitsOf(hx, c); // [len, V]
        const scale = recording ? Float32Array.from(c.mask, (k) => k / count) : undefined;
        const rowLoss = softmaxXentFresh(z, c.safe, scale);
        if (rowLoss) {
          // The native pass: each row's loss, and z now holds d(loss)/dz (below).
          let part = 0;
          for (let i = 0; i < c.len; i++) part += rowLoss[i] * c.mask[i];
          const sum = tf.add(total, part);
          return recording ? [sum, out.inputGrad(z)] : [sum];
        }
        const m = tf.max(z, 1, true); // [len, 1]
        const e = tf.exp(tf.sub(z, m)); // [len, V]
        const s = tf.sum(e, 1, true); // [len, 1]
        const lse = tf.reshape(tf.add(tf.log(s), m), [c.len]);
        const idx = Int32Array.from(c.safe, (l, i) => i * v + l);
        const picked = tf.gather(tf.reshape(z, [-1]), tf.tensor1d(idx, 'int32')); // [len]
        const sum = tf.add(total, tf.sum(tf.mul(tf.sub(lse, picked), tf.tensor1d(c.mask))));
        if (!recording) return [sum];
        // d(loss)/dz = (softmax(z) − onehot(label)) · mask / count = e · (mask / count / s) − onehot · mask / count
        const g = subtractAtFresh(tf.mul(e, tf.div(tf.tensor2d(scale!, [c.len, 1]), s)), idx, scale!) as tf.Tensor2D;
        return [sum, out.inputGrad(g)]; // [len, H]
      });
      total.dispose();
      total = next;
      if (dh) parts.push(dh);
    }
    const value = tf.div(total, count) as tf.Scalar;
    if (recording) {
      const dh = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
      (save as tf.GradSaveFunc)([dh]);
    }
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        if (saved.length === 0) throw new Error('chunkedCrossEntropy: a gradient was asked of a loss computed with no gradient recording');
        return [tf.mul(saved[0], dy as tf.Tensor)];
      },
    };
  });
  return f(h) as tf.Scalar;
}

/** Labels of a causal LM over ids [B, T]: row b·T + t predicts ids[b, t+1]; each window's last row is ignored. */
export function causalLabels(ids: Int32Array, batch: number, seqLen: number): Int32Array {
  const out = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seqLen; t++) out[b * seqLen + t] = t + 1 < seqLen ? ids[b * seqLen + t + 1] : -100;
  }
  return out;
}
