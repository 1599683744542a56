// What a wasm fast kernel gains, measured in one process per side: tfjs's own wasm kernels of the
// named kernels are taken before the fast kernels are registered and put back after, so a run with
// `plainKernels` has every override but those.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

/**
 * Takes tfjs's wasm kernels of `names` now (call it before the backend starts); the function it returns
 * registers them again in place of the overrides (call it after).
 */
export function keepPlainKernels(names: string[] = []): () => void {
  const plain = names.map((n) => {
    const k = tf.getKernel(n, 'wasm');
    if (!k) throw new Error(`plainKernels: tfjs-backend-wasm has no kernel ${n}`);
    return k;
  });
  return () => {
    for (const k of plain) {
      tf.unregisterKernel(k.kernelName, 'wasm');
      tf.registerKernel(k);
    }
  };
}
