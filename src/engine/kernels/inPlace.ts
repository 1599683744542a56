// Writes into a tensor that the caller has just made and nobody else holds. On the wasm backend the
// tensor's floats are in the heap, so a handful of scattered updates cost as many stores; elsewhere
// (and on a tfjs-backend-wasm whose internals are not known) the update is an ordinary op (a new tensor).
import * as tf from '@tensorflow/tfjs-core';
import { wasmInternals } from './wasm/backendInternals';

/**
 * t.flat[idx[i]] −= values[i] for every i. `t` must be float32, fresh from a kernel and not shared:
 * on the wasm backend it is changed in place and returned; otherwise a new tensor is returned.
 */
export function subtractAtFresh<T extends tf.Tensor>(t: T, idx: Int32Array, values: Float32Array): T {
  if (idx.length !== values.length) throw new RangeError(`subtractAtFresh: ${idx.length} indices for ${values.length} values`);
  if (t.dtype !== 'float32') throw new TypeError(`subtractAtFresh: the tensor must be float32, got ${t.dtype}`);
  for (let i = 0; i < idx.length; i++) {
    if (!(idx[i] >= 0 && idx[i] < t.size)) throw new RangeError(`subtractAtFresh: index ${idx[i]} is outside the tensor's ${t.size} elements`);
  }
  const internals = tf.getBackend() === 'wasm' ? wasmInternals() : undefined;
  if (internals) {
    const be = internals(tf.backend());
    const off = be.offset(t);
    const heap = be.heap(off + t.size);
    for (let i = 0; i < idx.length; i++) heap[off + idx[i]] -= values[i];
    return t;
  }
  return tf.tidy(() => tf.sub(t, tf.reshape(tf.scatterND(tf.tensor2d(idx, [idx.length, 1], 'int32'), tf.tensor1d(values), [t.size]), t.shape))) as T;
}
