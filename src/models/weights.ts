// Where model weights come from: a name -> {shape, Float32 data} lookup. Kept abstract so src/models
// stays pure (the node side, src/io/hfFolder.ts, turns safetensors shards into one of these).

import type { HostTensor, WeightSource } from '../formats/weightSource';

export type { HostTensor, StoredTensor, WeightSource } from '../formats/weightSource';

export function weightsFromRecord(rec: Record<string, HostTensor>, dtypes?: Record<string, string>): WeightSource {
  return {
    names: () => Object.keys(rec),
    get: (name) => rec[name],
    dtype: (name) => dtypes?.[name] ?? (name in rec ? 'F32' : undefined),
  };
}

/** `base` with some tensors replaced or added (PEFT's modules_to_save and trained biases). */
export function overlayWeights(base: WeightSource, overrides: Record<string, HostTensor>): WeightSource {
  return {
    names: () => [...new Set([...base.names(), ...Object.keys(overrides)])],
    get: (name) => overrides[name] ?? base.get(name),
    dtype: (name) => base.dtype?.(name) ?? (name in overrides ? 'F32' : undefined),
    stored: (name) => (name in overrides ? undefined : base.stored?.(name)),
  };
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
