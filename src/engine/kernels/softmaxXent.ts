// Softmax cross-entropy of a chunk of logits in one native pass per row (native/src/xent.c): the loss
// of each row and, when a gradient is wanted, the gradient written over the logits themselves. The
// logits must be a tensor the caller has just made and nobody else holds (the chunked loss's own
// product), since they are overwritten. Where the native kernel is not in use the caller computes the
// same with tfjs ops.
import * as tf from '@tensorflow/tfjs-core';
import { nativeOnWasm } from './wasmFastKernels';

/**
 * loss[i] = log Σ_j e^z[i,j] − z[i, labels[i]] for the fresh float32 logits z [rows, V]; with `scale`,
 * z now holds scale[i]·(softmax(z[i]) − onehot(labels[i])). Undefined (z untouched) where the native
 * kernel is not in use.
 */
export function softmaxXentFresh(z: tf.Tensor2D, labels: Int32Array, scale: Float32Array | undefined): Float32Array | undefined {
  const native = nativeOnWasm('softmaxXent');
  if (!native || z.dtype !== 'float32') return undefined;
  const { nk, be } = native;
  const [rows, vocab] = z.shape;
  if (labels.length !== rows || (scale && scale.length !== rows)) throw new RangeError(`softmaxXentFresh: ${labels.length} labels and ${scale?.length ?? 'no'} scales for ${rows} rows`);
  const off = be.offset(z);
  const loss = new Float32Array(rows);
  nk.softmaxXent(be.heap(off + rows * vocab), off, rows, vocab, labels, scale ?? null, loss);
  return loss;
}
