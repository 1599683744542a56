// A PEFT LoRA/DoRA adapter attached to a CausalLm: adapter_config.json semantics decide which layers
// are adapted and with what r/α/scale; adapter_model.safetensors supplies A, B (and DoRA's magnitude).
// Tensors that are not LoRA factors (modules_to_save copies, trained biases) replace base weights.
import * as tf from '@tensorflow/tfjs-core';
import { InteropError } from '../formats/adapters/interopError';
import { matchTargetModules, moduleHyper, normalizePeftKey, type ParsedPeftConfig, type PeftLoraConfig } from '../formats/peftConfig';
import type { CausalLm } from './causalLm';
import type { LoraLookup, LoraModule } from './linear';
import { shapeText, type HostTensor, type WeightSource } from './weights';

export interface AttachedAdapter {
  config: PeftLoraConfig;
  /** Notes from the config plus mismatches found against the weights. */
  notes: string[];
  modules: Map<string, LoraModule>;
  lookup: LoraLookup;
  dispose(): void;
}

const LORA_PART = /\.(lora_A|lora_B|lora_magnitude_vector|lora_embedding_A|lora_embedding_B)(\.weight)?$/;

/** Adapter tensors that are whole-module replacements, keyed by the base weight name they replace. */
export function adapterOverrides(adapter: WeightSource): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const key of adapter.names()) {
    const k = normalizePeftKey(key);
    if (!LORA_PART.test(k)) out[k] = adapter.get(key)!;
  }
  return out;
}

/** Index adapter tensors by normalized key ("model.layers.0.self_attn.q_proj.lora_A.weight"). */
function indexLora(adapter: WeightSource): Map<string, { key: string; t: HostTensor }> {
  const m = new Map<string, { key: string; t: HostTensor }>();
  for (const key of adapter.names()) {
    const k = normalizePeftKey(key).replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector');
    if (LORA_PART.test(k)) m.set(k, { key, t: adapter.get(key)! });
  }
  return m;
}

/**
 * Which of the model's linear layers the config targets, with their r / α / scale.
 * Throws (as PEFT does) when the targets match nothing.
 */
export function resolveTargets(model: CausalLm, config: PeftLoraConfig): { path: string; r: number; alpha: number; scale: number }[] {
  const paths = matchTargetModules(config, [...model.linears.keys()]);
  if (paths.length === 0) {
    throw new InteropError(
      'bad-config',
      `adapter_config.json: target_modules ${JSON.stringify(config.targetModules)} match no linear layer of this ${model.config.declaredType} model ` +
        `(its layers end in ${[...new Set([...model.linears.keys()].map((p) => p.split('.').pop()))].join(', ')})` +
        (config.baseModelNameOrPath ? `; the adapter was made for ${config.baseModelNameOrPath}` : ''),
    );
  }
  return paths.map((path) => ({ path, ...moduleHyper(config, path) }));
}

export function attachPeftAdapter(model: CausalLm, parsed: ParsedPeftConfig, adapter: WeightSource, source = 'adapter_model.safetensors'): AttachedAdapter {
  const { config } = parsed;
  const notes = [...parsed.notes];
  const lora = indexLora(adapter);
  const modules = new Map<string, LoraModule>();
  const created: tf.Tensor[] = [];
  const used = new Set<string>();
  try {
    for (const { path, r, alpha, scale } of resolveTargets(model, config)) {
      const layer = model.linears.get(path)!;
      const take = (part: string, shape: number[]): tf.Tensor | undefined => {
        const hit = lora.get(`${path}.${part}`);
        if (!hit) return undefined;
        used.add(`${path}.${part}`);
        if (hit.t.shape.length !== shape.length || hit.t.shape.some((d, i) => d !== shape[i])) {
          throw new InteropError('shape-mismatch', `${source}: tensor "${hit.key}" has shape ${shapeText(hit.t.shape)} but ${path} (in ${layer.inFeatures}, out ${layer.outFeatures}, r ${r}) needs ${shapeText(shape)}`, source);
        }
        const t = tf.tensor(hit.t.data, shape, 'float32');
        created.push(t);
        return t;
      };
      const A = take('lora_A.weight', [r, layer.inFeatures]);
      const B = take('lora_B.weight', [layer.outFeatures, r]);
      if (!A || !B) {
        throw new InteropError('missing-tensor', `${source}: tensor "base_model.model.${path}.${A ? 'lora_B' : 'lora_A'}.weight" is missing; adapter_config.json targets ${path}`, source);
      }
      let magnitude: tf.Tensor1D | undefined;
      if (config.useDora) {
        magnitude = take('lora_magnitude_vector', [layer.outFeatures]) as tf.Tensor1D | undefined;
        if (!magnitude) throw new InteropError('missing-tensor', `${source}: use_dora is set but "base_model.model.${path}.lora_magnitude_vector" is missing`, source);
      }
      modules.set(path, { path, r, alpha, scale, A: A as tf.Tensor2D, B: B as tf.Tensor2D, magnitude });
    }
  } catch (e) {
    for (const t of created) t.dispose();
    throw e;
  }
  const unused = [...lora.keys()].filter((k) => !used.has(k));
  if (unused.length > 0) {
    notes.push(`${unused.length} LoRA tensor(s) in the weights are not targeted by adapter_config.json and were ignored, e.g. "${unused[0]}"`);
  }
  return {
    config,
    notes,
    modules,
    lookup: (p) => modules.get(p),
    dispose: () => created.forEach((t) => t.dispose()),
  };
}
