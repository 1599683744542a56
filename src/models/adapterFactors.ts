// The LoRA modules of a PEFT adapter exactly as LoRA Lab applies them to its base model (same target
// matching, r, scale and shape checks as `logits` and `merge`), as plain factors for the exporters
// in src/formats (GGUF, mlx-lm). What a plain LoRA file cannot carry is refused with the reason:
// DoRA's magnitude, LoRA on embedding tables, and tensors that replace base weights.
import { InteropError } from '../formats/adapters/interopError';
import type { ParsedPeftConfig } from '../formats/peftConfig';
import type { HfModelConfig } from '../formats/hfConfig';
import type { LoraFactors } from '../formats/gguf/loraToGguf';
import { loadPeftModel } from './peftAdapter';
import type { WeightSource } from './weights';

export function adapterFactors(
  modelConfig: HfModelConfig,
  base: WeightSource,
  parsed: ParsedPeftConfig,
  adapter: WeightSource,
  opts: { target: string; baseSource?: string; adapterSource?: string },
): { factors: LoraFactors[]; notes: string[] } {
  const src = opts.adapterSource ?? 'adapter_model.safetensors';
  const loaded = loadPeftModel(modelConfig, base, parsed, adapter, { baseSource: opts.baseSource, adapterSource: src });
  try {
    const { adapter: attached, overrides } = loaded;
    if (attached.config.useDora || [...attached.modules.values()].some((m) => m.magnitude)) {
      throw new InteropError('bad-config', `${src}: a DoRA adapter (use_dora, lora_magnitude_vector) cannot become ${opts.target}: it has no DoRA, and dropping the magnitude would change every adapted layer. Merge it instead (lora-lab merge) and convert the merged model`, src);
    }
    if (attached.embeddings.length > 0) {
      throw new InteropError('bad-config', `${src}: LoRA on the embedding table ${attached.embeddings[0].path} is not converted to ${opts.target}; merge the adapter (lora-lab merge) and convert the merged model`, src);
    }
    const replaced = Object.keys(overrides);
    if (replaced.length > 0) {
      throw new InteropError(
        'bad-config',
        `${src}: ${replaced.length} tensor(s) replace base weights (modules_to_save or trained biases, e.g. "${replaced[0]}"); ${opts.target} carries LoRA factors only. Merge the adapter (lora-lab merge) and convert the merged model`,
        src,
      );
    }
    const factors: LoraFactors[] = [];
    for (const [path, m] of attached.modules) {
      factors.push({
        path,
        rank: m.r,
        scale: m.scale,
        A: { shape: m.A.shape, data: Float32Array.from(m.A.dataSync() as Float32Array) },
        B: { shape: m.B.shape, data: Float32Array.from(m.B.dataSync() as Float32Array) },
      });
    }
    return { factors, notes: attached.notes };
  } finally {
    loaded.adapter.dispose();
    loaded.model.dispose();
  }
}
