// Where a model's tensors come from, as types only: src/io fills them from safetensors files and
// src/models builds layers from them, so the contract sits below both.
import type { HfModelConfig } from './hfConfig';

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface WeightSource {
  /** Every tensor name available. */
  names(): string[];
  /** The tensor as float32 (F16/BF16 already widened), or undefined if absent. */
  get(name: string): HostTensor | undefined;
  /** The stored dtype ("F32", "F16", "BF16", ...) when known; merge writes results back in it. */
  dtype?(name: string): string | undefined;
  /**
   * The tensor as stored (its bytes in the file's dtype, not widened), where the source keeps the
   * file's bytes: frozen weights are then used in place (src/engine/kernels/frozenWeights.ts).
   */
  stored?(name: string): StoredTensor | undefined;
}

export interface StoredTensor {
  shape: number[];
  dtype: string;
  bytes: Uint8Array;
}

/** What a causal-LM training session is built from: the model folder, read, and the dataset text. */
export interface CausalLmInputs {
  folder: {
    config: HfModelConfig;
    weights: WeightSource;
    /** The weight files the tensors came from (named in tensor errors). */
    weightFiles: string[];
    /** tokenizer.json text, when the model folder has one. */
    tokenizerJson?: string;
  };
  /** Absolute model folder path (goes into the adapter's base_model_name_or_path). */
  modelPath: string;
  datasetPath: string;
  datasetText: string;
  tokenizerConfigJson?: string;
}
