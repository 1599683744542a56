// Shared helpers for the interop tests: the cpu backend, fixture paths, a causal-lm session opened as a
// run opens it, max-abs-difference.
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { backendFacts, startBackend } from '../../../src/runs/backendSetup';
import { openCausalLmSession } from '../../../src/runs/openSession';
import type { CausalLmSession } from '../../../src/models/causalLmSession';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';

export const PEFT_FIXTURES = path.resolve(__dirname, '../../fixtures/peft');
export const PEFT_CASES = ['llama-tiny-qkvo-r8', 'llama-tiny-dora'] as const;
export const REAL_WORLD = path.resolve(__dirname, '../../../../shared/fixtures/real-world');

/** The cpu backend, through the runtime's startBackend (so without tfjs-backend-cpu's console banner). */
export async function useCpu(): Promise<void> {
  if (tf.getBackend() !== 'cpu') await startBackend({ prefer: 'cpu' });
  await tf.ready();
}

/** A causal-lm session opened from disk as trainRun opens it, on the backend now in use. */
export function openCausalLm(config: ExperimentConfig, configDir: string): Promise<CausalLmSession> {
  return openCausalLmSession(config, { configDir, backend: backendFacts() });
}

export interface PeftReference {
  probe_input_ids: number[][];
  probe_logits_shape: number[];
  base_logits: number[];
  adapted_logits: number[];
  merged_logits: number[];
  train_input_ids: number[][];
  trainable_params: number;
  all_params: number;
  sgd_step: { lr: number; loss_before: number };
  /** PEFT's full-batch AdamW run from init_adapter_params on train_input_ids: the loss before each step. */
  train: { optimizer: string; lr: number; betas: [number, number]; eps: number; weight_decay: number; steps: number; losses: number[] };
  base_loss: number;
  adapted_loss: number;
}

export function readReference(caseName: string): PeftReference {
  return JSON.parse(fs.readFileSync(path.join(PEFT_FIXTURES, caseName, 'reference.json'), 'utf8')) as PeftReference;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
