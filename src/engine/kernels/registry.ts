// Our own kernels (fused Adam, GELU, norms) are registered per backend: a fused path is taken only
// where the backend in use has all of its kernels.
import * as tf from '@tensorflow/tfjs-core';

/** Whether the backend in use has every one of these kernels. */
export function kernelsAvailable(...names: string[]): boolean {
  const be = tf.getBackend();
  return names.every((n) => tf.getKernel(n, be) !== undefined);
}
