// Resolved configs for engine tests (what parseExperimentConfig would return), small enough to train fast.
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';

/** Nested overrides, merged key by key into the defaults (arrays replace). */
export type Overrides = { [K in keyof ExperimentConfig]?: ExperimentConfig[K] extends object ? Record<string, unknown> : ExperimentConfig[K] };

export function lrrConfig(over: Overrides = {}): ExperimentConfig {
  const base: ExperimentConfig = {
    name: 'test-lrr',
    kind: 'low-rank-recovery',
    model: { kind: 'low-rank-recovery', inFeatures: 32, outFeatures: 24, trueRank: 4, updateScale: 0.5, noise: 0 },
    lora: { r: 4, alpha: 4, scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules: ['linear'], trainBias: false },
    optimizer: { name: 'adam', lr: 0.02, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: 300, batchSize: 64, seed: 1234, evalEvery: 100, evalBatches: 2, checkpointEvery: 50, logEvery: 10 },
    outputDir: 'lora-runs',
  };
  return merge(base, over) as ExperimentConfig;
}

export function attnConfig(over: Overrides = {}): ExperimentConfig {
  const attn = lrrConfig({
    name: 'test-attn',
    kind: 'attention-adaptation',
    model: { kind: 'attention-adaptation', embedDim: 16, numHeads: 1, seqLen: 6, kvSeqLen: 6, trueRank: 2, updateScale: 0.5 },
    lora: { targetModules: ['q', 'k', 'v'], init: 'gaussian', scaling: 'none' },
    training: { batchSize: 16, steps: 60 },
  });
  return merge(attn, over) as ExperimentConfig;
}

function merge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (typeof a !== 'object' || a === null || Array.isArray(a) || typeof b !== 'object' || b === null || Array.isArray(b)) return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
  return out;
}
