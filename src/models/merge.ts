// merge_and_unload: fold each LoRA module into its base weight, W' = W + s·BA (DoRA: rescaled rows),
// in the checkpoint's own layout (Linear [out, in]; GPT-2 Conv1D [in, out], i.e. PEFT's fan_in_fan_out
// where only ΔW is transposed). Refuses NaN/Inf like PEFT's merge(safe_merge=True).
import * as tf from '@tensorflow/tfjs-core';
import { InteropError } from '../formats/adapters/interopError';
import type { CausalLm } from './causalLm';
import type { LinearLayer, LoraModule } from './linear';
import type { HostTensor } from './weights';

/** Merged weight of one layer, in stored layout. */
export function mergedWeight(layer: LinearLayer, lora: LoraModule): HostTensor {
  const data = tf.tidy(() => {
    let wt = tf.add(layer.wt, tf.mul(tf.matMul(lora.A, lora.B, true, true), lora.scale)); // [in, out] = Wᵀ + (s·BA)ᵀ
    if (lora.magnitude) {
      // PEFT 0.10 merge: dora_factor = m / ‖W + ΔW‖ per output feature.
      wt = tf.mul(wt, tf.div(lora.magnitude, tf.norm(wt, 'euclidean', 0))); // [in, out]
    }
    return (layer.conv1d ? wt : tf.transpose(wt)).dataSync() as Float32Array;
  });
  const shape = layer.conv1d ? [layer.inFeatures, layer.outFeatures] : [layer.outFeatures, layer.inFeatures];
  return { shape, data: new Float32Array(data) };
}

/**
 * Merged weights for every adapted layer, keyed by checkpoint tensor name.
 * `adapterName` goes into the NaN error, as PEFT's message names the adapter.
 */
export function mergeAdapterWeights(model: CausalLm, modules: Map<string, LoraModule>, adapterName = 'default'): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [path, lora] of modules) {
    const layer = model.linears.get(path);
    if (!layer) throw new InteropError('missing-tensor', `merge: the model has no layer "${path}"`);
    const merged = mergedWeight(layer, lora);
    const bad = merged.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new InteropError(
        'non-finite',
        `NaNs detected in the merged weights of ${path} (value ${merged.data[bad]} at index ${bad}). The adapter "${adapterName}" seems to be broken; nothing was written`,
      );
    }
    out.set(layer.weightName, merged);
  }
  return out;
}
