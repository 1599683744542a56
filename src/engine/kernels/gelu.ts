// GELU, tanh approximation (GPT-2's gelu_new, PyTorch's gelu(approximate='tanh')), with a hand-written
// gradient. Why: written with tf ops and autodiff it costs ~14 elementwise passes forward and ~20
// backward over the [N, 4·d] MLP activation, each a full memory sweep on the wasm backend. Using
// 0.5·(1 + tanh(z)) = σ(2z) and saving σ for the backward pass brings that to 7 and 9. Where the
// backend has the fused kernels below (the wasm backend with the native kernels registers them:
// wasm/elementwise.ts), it is one pass each way.
import * as tf from '@tensorflow/tfjs-core';
import { kernelsAvailable } from './registry';

/** Kernel: inputs {x} → [y, s] with s = σ(z) (float32 x). */
export const GELU_TANH = 'LoraLabGeluTanh';
/** Kernel: inputs {dy, x, s} → dx. */
export const GELU_TANH_GRAD = 'LoraLabGeluTanhGrad';

function fusedAvailable(x: tf.Tensor): boolean {
  return x.dtype === 'float32' && kernelsAvailable(GELU_TANH, GELU_TANH_GRAD);
}

const C = Math.sqrt(2 / Math.PI); // 0.7978845608
const K = 0.044715;

/** y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) = x·σ(2√(2/π)·(x + 0.044715·x³)). */
export function geluTanh<T extends tf.Tensor>(x: T): T {
  if (fusedAvailable(x)) {
    const fused = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xx, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const [y, s] = tf.engine().runKernel(GELU_TANH, { x: xx }) as tf.Tensor[];
      save([xx, s]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.engine().runKernel(GELU_TANH_GRAD, { dy, x: saved[0], s: saved[1] }) as tf.Tensor],
      };
    });
    return fused(x) as T;
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xx, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const x2 = tf.square(xx);
    const z = tf.mul(tf.mul(xx, tf.add(tf.mul(x2, K), 1)), 2 * C); // 2c·(x + k·x³)
    const s = tf.sigmoid(z);
    save([xx, s]);
    return {
      value: tf.mul(xx, s),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, ss] = saved;
        // d/dx [x·σ(z)] = σ + x·σ(1−σ)·z',  z' = 2c·(1 + 3k·x²)
        const dz = tf.mul(tf.add(tf.mul(tf.square(sx), 3 * K), 1), 2 * C);
        const ds = tf.mul(ss, tf.sub(1, ss));
        return [tf.mul(dy, tf.add(ss, tf.mul(tf.mul(sx, ds), dz)))];
      },
    };
  });
  return f(x) as T;
}
