// The LoRA modules of a PEFT adapter exactly as LoRA Lab applies them to its base model (same target
// matching, r, scale and shape checks as `logits` and `merge`), as plain factors for the exporters
// in src/formats (GGUF, mlx-lm). Tensors that replace base weights (modules_to_save, trained biases)
// are refused with the reason; DoRA's magnitude and LoRA on embedding tables come back for the
// exporter to carry or refuse.
import { InteropError } from '../formats/adapters/interopError';
import type { ParsedPeftConfig } from '../formats/peftConfig';
import type { HfModelConfig } from '../formats/hfConfig';
import type { EmbeddingFactors, LoraFactors } from '../formats/gguf/loraToGguf';
import { loadPeftModel } from './peftAdapter';
import type { WeightSource } from './weights';

export function adapterFactors(
  modelConfig: HfModelConfig,
  base: WeightSource,
  parsed: ParsedPeftConfig,
  adapter: WeightSource,
  opts: { target: string; baseSource?: string; adapterSource?: string },
): { factors: LoraFactors[]; embeddings: EmbeddingFactors[]; notes: string[] } {
  const src = opts.adapterSource ?? 'adapter_model.safetensors';
  const loaded = loadPeftModel(modelConfig, base, parsed, adapter, { baseSource: opts.baseSource, adapterSource: src });
  try {
    const { adapter: attached, overrides } = loaded;
    // Adapted embedding tables are in the overrides as W + ΔW; they travel as LoRA factors instead.
    const replaced = Object.keys(overrides).filter((k) => !attached.embeddings.some((e) => e.weightName === k));
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
        ...(m.magnitude ? { magnitude: Float32Array.from(m.magnitude.dataSync() as Float32Array) } : {}),
      });
    }
    const head = loaded.model.linears.get('lm_head');
    const bare = (n: string) => n.replace(/^transformer\./, '');
    const embeddings: EmbeddingFactors[] = attached.embeddings.map((e) => ({
      path: e.path,
      rank: e.r,
      scale: e.scale,
      A: { shape: [...e.A.shape], data: e.A.data },
      B: { shape: [...e.B.shape], data: e.B.data },
      tiedToHead: !!head && bare(head.weightName) === bare(e.weightName),
    }));
    return { factors, embeddings, notes: attached.notes };
  } finally {
    loaded.adapter.dispose();
    loaded.model.dispose();
  }
}
