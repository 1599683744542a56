// Attention's softmax(scores / divisor + mask) as one op. With the native kernels each row is one
// pass each way on the pool's threads (native/src/softmax.c), where tfjs would run a divide, an add
// and a softmax forward (and their gradients backward) over the whole [batch, heads, T, S] tensor,
// single-threaded; elsewhere it is those tfjs ops, as before.
import * as tf from '@tensorflow/tfjs-core';
import { nativeOnWasm } from './wasmFastKernels';

/**
 * softmax(scores / divisor + mask) over the last axis. scores [..., R, S]; mask (optional) [R, S],
 * additive, repeated over the leading axes. The gradient reaches scores only (the mask is a constant).
 */
export function scaledMaskedSoftmax(scores: tf.Tensor, divisor: number, mask?: tf.Tensor2D): tf.Tensor {
  const r = scores.rank;
  const cols = scores.shape[r - 1];
  const fits = r >= 2 && scores.dtype === 'float32' && (!mask || (mask.shape[0] === scores.shape[r - 2] && mask.shape[1] === cols && mask.dtype === 'float32'));
  const native = fits && divisor > 0 ? nativeOnWasm('softmaxRows', 'softmaxRowsGrad') : undefined;
  if (!native) {
    let x = divisor !== 1 ? tf.div(scores, divisor) : scores;
    if (mask) x = tf.add(x, mask);
    return tf.softmax(x);
  }
  const { nk, be } = native;
  const forward = nk.softmaxRows.bind(nk);
  const backward = nk.softmaxRowsGrad.bind(nk);
  const rows = scores.size / Math.max(1, cols);
  const op = tf.customGrad((s: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const x = s as tf.Tensor;
    const out = be.makeOutput(x.shape, 'float32');
    const xOff = be.offset(x);
    const oOff = be.offset(out);
    const mOff = mask ? be.offset(mask) : 0;
    const heap = be.heap(Math.max(xOff + x.size, oOff + x.size, mask ? mOff + mask.size : 0)); // after makeOutput: it may grow the heap
    forward(heap, xOff, mask ? heap : null, mOff, mask ? mask.shape[0] : 0, heap, oOff, rows, cols, divisor);
    const p = tf.engine().makeTensorFromTensorInfo(out);
    (save as tf.GradSaveFunc)([p]);
    return {
      value: p,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor;
        const ds = be.makeOutput(g.shape, 'float32');
        const pOff = be.offset(saved[0]);
        const gOff = be.offset(g);
        const dOff = be.offset(ds);
        const h = be.heap(Math.max(pOff, gOff, dOff) + g.size); // after makeOutput: it may grow the heap
        backward(h, pOff, h, gOff, h, dOff, rows, cols, divisor);
        return [tf.engine().makeTensorFromTensorInfo(ds)];
      },
    };
  });
  return op(scores);
}
