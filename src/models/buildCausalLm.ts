// Dispatch on model_type: one entry point for the CLI, the training session and merge.
import type { HfModelConfig } from '../formats/hfConfig';
import type { CausalLm } from './causalLm';
import { buildGpt2 } from './gpt2';
import { buildLlama } from './llama';
import type { WeightSource } from './weights';

export function buildCausalLm(config: HfModelConfig, weights: WeightSource, source = 'model.safetensors'): CausalLm {
  return config.modelType === 'llama' ? buildLlama(config, weights, source) : buildGpt2(config, weights, source);
}
