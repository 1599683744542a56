// Trainable LoRA (and DoRA) modules on a CausalLm: tf.Variables named by PEFT's saved keys, initialised
// as PEFT does (A Kaiming-uniform a=√5 or N(0, 0.02); B = 0; DoRA magnitude = ‖W‖ per output row),
// or loaded from a file (e.g. PEFT's init_adapter_params with ".default" adapter names).
import * as tf from '@tensorflow/tfjs-core';
import { InteropError } from '../formats/adapters/interopError';
import { normalizePeftKey } from '../formats/peftConfig';
import type { CausalLm } from './causalLm';
import { doraWeightNorm, type LoraLookup, type LoraModule } from './linear';
import { shapeText, type HostTensor, type WeightSource } from './weights';

export interface LoraTarget {
  path: string;
  r: number;
  alpha: number;
  scale: number;
}

export interface TrainableAdapter {
  modules: Map<string, LoraModule>;
  /** Variables by PEFT save key: "base_model.model.<path>.lora_A.weight", "... .lora_magnitude_vector". */
  variables: Record<string, tf.Variable>;
  lookup: LoraLookup;
  /** Trainable parameter count (PEFT's trainable_params). */
  paramCount: number;
  /** Current values, PEFT keys, for adapter_model.safetensors. */
  exportTensors(): Record<string, HostTensor>;
  dispose(): void;
}

export const peftKey = (path: string, part: 'lora_A' | 'lora_B' | 'lora_magnitude_vector' | 'bias'): string =>
  part === 'lora_magnitude_vector' || part === 'bias' ? `base_model.model.${path}.${part}` : `base_model.model.${path}.${part}.weight`;

export interface InitOptions {
  init: 'kaiming-uniform' | 'gaussian';
  dora: boolean;
  /** Train the biases of adapted layers that have one (PEFT's bias "lora_only"). */
  trainBias?: boolean;
  /** Uniform [0, 1) and standard normal sources (the engine's seeded Rng). */
  uniform(): number;
  normal(): number;
}

function build(model: CausalLm, targets: LoraTarget[], dora: boolean, trainBias: boolean, values: (path: string, part: 'lora_A' | 'lora_B', shape: number[]) => Float32Array, mag?: (path: string, shape: number[]) => Float32Array | undefined): TrainableAdapter {
  const modules = new Map<string, LoraModule>();
  const variables: Record<string, tf.Variable> = {};
  let count = 0;
  try {
    for (const t of targets) {
      const layer = model.linears.get(t.path);
      if (!layer) throw new InteropError('bad-config', `LoRA target "${t.path}" is not a linear layer of this model`);
      const aShape = [t.r, layer.inFeatures];
      const bShape = [layer.outFeatures, t.r];
      // tidy frees the initial value tensors (a variable keeps its own reference to the data).
      const A = tf.tidy(() => tf.variable(tf.tensor2d(values(t.path, 'lora_A', aShape), aShape as [number, number]), true, peftKey(t.path, 'lora_A') + '#' + uid()));
      const B = tf.tidy(() => tf.variable(tf.tensor2d(values(t.path, 'lora_B', bShape), bShape as [number, number]), true, peftKey(t.path, 'lora_B') + '#' + uid()));
      variables[peftKey(t.path, 'lora_A')] = A;
      variables[peftKey(t.path, 'lora_B')] = B;
      count += t.r * (layer.inFeatures + layer.outFeatures);
      const m: LoraModule = { path: t.path, r: t.r, alpha: t.alpha, scale: t.scale, A: A as tf.Variable<tf.Rank.R2>, B: B as tf.Variable<tf.Rank.R2> };
      if (dora) {
        const given = mag?.(t.path, [layer.outFeatures]);
        const M = tf.tidy(() => tf.variable(given ? tf.tensor1d(given) : doraWeightNorm(layer, m), true, peftKey(t.path, 'lora_magnitude_vector') + '#' + uid()));
        variables[peftKey(t.path, 'lora_magnitude_vector')] = M;
        m.magnitude = M as tf.Variable<tf.Rank.R1>;
        count += layer.outFeatures;
      }
      if (trainBias && layer.bias) {
        const bias = layer.bias;
        const Bv = tf.tidy(() => tf.variable(bias.clone(), true, peftKey(t.path, 'bias') + '#' + uid()));
        variables[peftKey(t.path, 'bias')] = Bv;
        m.bias = Bv as tf.Variable<tf.Rank.R1>;
        count += layer.outFeatures;
      }
      modules.set(t.path, m);
    }
  } catch (e) {
    tf.dispose(Object.values(variables));
    throw e;
  }
  return {
    modules,
    variables,
    lookup: (p) => modules.get(p),
    paramCount: count,
    exportTensors() {
      const out: Record<string, HostTensor> = {};
      for (const [k, v] of Object.entries(variables)) out[k] = { shape: [...v.shape], data: new Float32Array(v.dataSync()) };
      return out;
    },
    dispose: () => tf.dispose(Object.values(variables)),
  };
}

let counter = 0;
const uid = () => (++counter).toString(36);

/** Fresh adapter: A random, B zero (so the adapted model starts equal to the base model). */
export function initTrainableAdapter(model: CausalLm, targets: LoraTarget[], opts: InitOptions): TrainableAdapter {
  return build(model, targets, opts.dora, opts.trainBias ?? false, (_path, part, shape) => {
    const n = shape[0] * shape[1];
    const out = new Float32Array(n);
    if (part === 'lora_B') return out;
    if (opts.init === 'gaussian') {
      for (let i = 0; i < n; i++) out[i] = 0.02 * opts.normal();
    } else {
      // kaiming_uniform_(a=√5) on [r, in]: gain √(2/(1+a²)) = √(1/3), bound = gain·√(3/fan_in) = 1/√fan_in.
      const bound = 1 / Math.sqrt(shape[1]);
      for (let i = 0; i < n; i++) out[i] = (2 * opts.uniform() - 1) * bound;
    }
    return out;
  });
}

/** Adapter initialised from saved tensors (PEFT save keys or in-memory ".default" keys). */
export function trainableFromTensors(model: CausalLm, targets: LoraTarget[], dora: boolean, source: WeightSource, file = 'adapter'): TrainableAdapter {
  const byKey = new Map<string, HostTensor>();
  for (const k of source.names()) byKey.set(normalizePeftKey(k).replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector'), source.get(k)!);
  const get = (key: string, shape: number[]): Float32Array => {
    const t = byKey.get(key);
    if (!t) throw new InteropError('missing-tensor', `${file}: tensor "base_model.model.${key}" is missing (expected shape ${shapeText(shape)})`, file);
    if (t.shape.join() !== shape.join()) throw new InteropError('shape-mismatch', `${file}: tensor "base_model.model.${key}" has shape ${shapeText(t.shape)}, expected ${shapeText(shape)}`, file);
    return t.data;
  };
  return build(
    model,
    targets,
    dora,
    false,
    (path, part, shape) => get(`${path}.${part}.weight`, shape),
    (path, shape) => get(`${path}.lora_magnitude_vector`, shape),
  );
}
