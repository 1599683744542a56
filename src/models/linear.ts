// A frozen linear layer of a Hugging Face model, with an optional LoRA (or DoRA) module on top.
// Why Wᵀ: the base weight is kept as Wᵀ [in, out] so the forward is one plain 2-D matMul with no
// transpose flags (the fast path of the wasm backend); Conv1D (GPT-2) already stores [in, out].
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import { frozenMatMul, type FrozenWeight } from '../engine/kernels/frozenWeights';

export interface LinearLayer {
  /** Module path as PEFT names it, e.g. "model.layers.0.self_attn.q_proj". */
  path: string;
  /** Name of the weight tensor in the checkpoint. */
  weightName: string;
  biasName?: string;
  inFeatures: number;
  outFeatures: number;
  /** GPT-2 Conv1D: stored [in, out] (PEFT's fan_in_fan_out). */
  conv1d: boolean;
  /** [in, out]. With `frozen`, made in the heap on first use only (merge, DoRA's weight norm). */
  wt: tf.Tensor2D;
  bias?: tf.Tensor1D; // [out]
  /** The weight as stored, outside the heap: x·Wᵀ (mode 0, stored [out, in]) or x·W (mode 1, stored [in, out]). */
  frozen?: { w: FrozenWeight; mode: 0 | 1 };
}

/** x·Wᵀ of the frozen base weight: [N, in] -> [N, out], from outside the heap where it lives there. */
export function baseProduct(layer: LinearLayer, x: tf.Tensor2D): tf.Tensor2D {
  return (layer.frozen ? frozenMatMul(x, layer.frozen.w, layer.frozen.mode) : tf.matMul(x, layer.wt)) as tf.Tensor2D;
}

/** The trainable (or loaded) tensors of one LoRA module; PEFT's names and shapes. */
export interface LoraModule {
  path: string;
  r: number;
  alpha: number;
  /** alpha / r, or alpha / √r with rsLoRA. */
  scale: number;
  A: tf.Tensor2D; // [r, in]   lora_A.weight
  B: tf.Tensor2D; // [out, r]  lora_B.weight
  /** DoRA: lora_magnitude_vector [out]. */
  magnitude?: tf.Tensor1D;
  /** A trainable copy of the layer's bias that replaces it (PEFT's bias "lora_only"). */
  bias?: tf.Tensor1D;
  /** Training only: dropout on the LoRA path's input (PEFT's lora_dropout). */
  inputDropout?: (x: tf.Tensor2D) => tf.Tensor2D;
}

/** Looks up the LoRA module (if any) for a layer path. */
export type LoraLookup = (path: string) => LoraModule | undefined;

/**
 * Stop the gradient: DoRA treats ‖W + s·BA‖ as a constant in the backward pass (DoRA paper §4.3;
 * PEFT calls `.detach()` on it), so the gradient must not flow through the norm.
 */
const detach = tf.customGrad((x: tf.Tensor | tf.GradSaveFunc) => {
  const t = x as tf.Tensor;
  return { value: t.clone(), gradFunc: () => tf.zerosLike(t) };
}) as (x: tf.Tensor) => tf.Tensor;

/** Row norms of the adapted weight W + s·BA, one per output feature: [out]. */
export function doraWeightNorm(layer: LinearLayer, lora: LoraModule): tf.Tensor1D {
  return tf.tidy(() => {
    const deltaT = tf.matMul(lora.A, lora.B, true, true).mul(lora.scale); // [in, out] = (s·BA)ᵀ
    return tf.norm(layer.wt.add(deltaT), 'euclidean', 0) as tf.Tensor1D; // [out]
  });
}

/** y = x Wᵀ + b (+ s·(x Aᵀ) Bᵀ, or the DoRA form). x: [N, in] -> [N, out]. */
export function applyLinear(layer: LinearLayer, x: tf.Tensor2D, lora?: LoraModule): tf.Tensor2D {
  let plain = baseProduct(layer, x); // [N, out]
  const bias = lora?.bias ?? layer.bias;
  const base = bias ? plain.add(bias) : plain;
  if (!lora) return base as tf.Tensor2D;
  // PEFT: result = base_layer(x) + lora_B(lora_A(dropout(x))); DoRA uses dropout(x) in both its terms.
  if (lora.inputDropout) {
    x = lora.inputDropout(x);
    if (lora.magnitude) plain = baseProduct(layer, x);
  }
  // Factored: never materialise B·A on the forward path.
  const low = tf.matMul(tf.matMul(x, lora.A, false, true), lora.B, false, true).mul(lora.scale); // [N, out]
  if (!lora.magnitude) return base.add(low) as tf.Tensor2D;
  // DoRA (PEFT 0.10 `_apply_dora`): m/‖W+sBA‖ rescales each output row of the adapted weight.
  const norm = detach(doraWeightNorm(layer, lora)); // [out]
  const magScale = lora.magnitude.div(norm); // [out]
  return base.add(plain.mul(magScale.sub(1))).add(low.mul(magScale)) as tf.Tensor2D;
}

/** Same for [..., in] inputs (keeps matMuls 2-D). */
export function applyLinearNd(layer: LinearLayer, x: tf.Tensor, lora?: LoraModule): tf.Tensor {
  const lead = x.shape.slice(0, -1);
  const y = applyLinear(layer, x.reshape([-1, layer.inFeatures]) as tf.Tensor2D, lora);
  return y.reshape([...lead, layer.outFeatures]);
}
