// LayerNorm and RMSNorm over the last axis, with hand-written gradients where the backend has the fused
// kernels (the wasm backend with the native kernels registers them: wasm/norms.ts): one pass each
// way instead of ~6 tfjs kernels forward and ~15 backward per norm, which in a small model's step are a
// good part of all kernels, each paying tfjs's per-kernel cost. Elsewhere: the op-by-op forms below,
// exactly as the models computed them before (Hugging Face's order of operations).
import * as tf from '@tensorflow/tfjs-core';
import { kernelsAvailable } from './registry';

/** Kernel: inputs {x, w, b?} → [y, stats] with stats [rows, 2] = (mean, 1/√(var + eps)); attrs {eps, center}. */
export const NORM = 'LoraLabNorm';
/** Kernel: inputs {dy, x, w, stats} → [dx, dw] or [dx, dw, db] (with attrs.hasBias); attrs {center, hasBias}. */
export const NORM_GRAD = 'LoraLabNormGrad';

function fusedAvailable(x: tf.Tensor): boolean {
  return x.dtype === 'float32' && kernelsAvailable(NORM, NORM_GRAD);
}

function fusedNorm(x: tf.Tensor, w: tf.Tensor1D, b: tf.Tensor1D | undefined, eps: number, center: boolean): tf.Tensor {
  const hasBias = b !== undefined;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xx, ww, bb] = args.slice(0, -1) as tf.Tensor[];
    const inputs: tf.NamedTensorMap = hasBias ? { x: xx, w: ww, b: bb } : { x: xx, w: ww };
    const [y, stats] = tf.engine().runKernel(NORM, inputs, { eps, center }) as tf.Tensor[];
    save([xx, ww, stats]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw, sstats] = saved;
        return tf.engine().runKernel(NORM_GRAD, { dy, x: sx, w: sw, s: sstats }, { center, hasBias }) as tf.Tensor[];
      },
    };
  });
  return (hasBias ? f(x, w, b!) : f(x, w)) as tf.Tensor;
}

/** Llama's RMSNorm: w·(x / √(mean(x²) + eps)). */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor1D, eps: number): tf.Tensor {
  if (fusedAvailable(x)) return fusedNorm(x, w, undefined, eps, false);
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(w, tf.mul(x, tf.rsqrt(tf.add(variance, eps))));
}

/** LayerNorm: (x − mean)/√(var + eps)·w (+ b), the biased variance as torch.nn.LayerNorm. */
export function layerNorm(x: tf.Tensor, w: tf.Tensor1D, b: tf.Tensor1D | undefined, eps: number): tf.Tensor {
  if (fusedAvailable(x)) return fusedNorm(x, w, b, eps, true);
  const { mean, variance } = tf.moments(x, -1, true);
  const y = tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), w);
  return b ? tf.add(y, b) : y;
}
