// One causal-lm training run on a random model of a given shape, in this process, measured: the wasm
// heap's size after the steps (a WebAssembly memory only grows, so that is its peak), peak RSS, ms per
// step and the losses, beside the memory estimate (src/formats/memoryEstimate.ts) for the same run.
// Run in a fresh process per shape:
//   tsx test/bench/memoryProbe.ts '{"model":"gpt2","over":{"n_layer":2},"batch":2,"seqLen":256,"steps":2}'
// Prints one JSON line. Used by the real-size benchmarks and to check the estimate against measurement.
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { loadHfFolder, type HfFolder } from '../../src/io/hfFolder';
import { backendFacts, startBackend } from '../../src/runs/backendSetup';
import { buildCausalLmSession, type CausalLmSession } from '../../src/models/causalLmSession';
import type { HfModelConfig } from '../../src/formats/hfConfig';
import { weightsFromRecord } from '../../src/models/weights';
import { causalLmMemoryInput, estimateTrainingMemory, memoryRefusal } from '../../src/formats/memoryEstimate';
import type { ExperimentConfig } from '../../src/formats/experimentTypes';
import { keepPlainKernels } from './plainKernels';
import { gpt2ConfigJson, llama1bConfigJson, parseConfigJson, randomCheckpoint } from './randomModel';

export interface ProbeRequest {
  model: 'gpt2' | 'llama';
  /** A model folder to train (config.json + model.safetensors) instead of random weights in memory. */
  folder?: string;
  /** config.json overrides of the family's real-size default. */
  over?: Record<string, unknown>;
  batch: number;
  seqLen: number;
  steps: number;
  r?: number;
  targets?: string[];
  checkpoint?: boolean;
  threads?: number;
  backend?: 'wasm' | 'cpu';
  native?: boolean;
  /** Kernel names that keep tfjs's own wasm kernels (the fast kernels' overrides of them left out), to measure an override. */
  plainKernels?: string[];
}

export interface ProbeResult {
  request: ProbeRequest;
  params: number;
  losses: number[];
  msPerStep: number[];
  heapBytes: number;
  rssPeakBytes: number;
  estimate: ReturnType<typeof estimateTrainingMemory>;
  backend: string;
}

function heapBytes(): number {
  const be = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array; wasmMemory?: { buffer: ArrayBufferLike } } };
  return be.wasm ? (be.wasm.wasmMemory?.buffer ?? be.wasm.HEAPU8.buffer).byteLength : 0;
}

/** The probe's model: a folder's config and weights, or a family's real-size config (random weights later). */
export async function probeModel(req: ProbeRequest): Promise<{ folder?: HfFolder; hf: HfModelConfig }> {
  const folder = req.folder ? await loadHfFolder(req.folder) : undefined;
  return { folder, hf: folder ? folder.config : parseConfigJson(req.model === 'gpt2' ? gpt2ConfigJson(req.over) : llama1bConfigJson(req.over)) };
}

/** The probe's experiment: LoRA r (α = 2r) on the targets, AdamW, a constant learning rate, no eval. */
export function probeExperiment(req: ProbeRequest): ExperimentConfig {
  return {
    name: 'probe',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath: 'random', dataset: { path: 'random.txt', seqLen: req.seqLen, evalFraction: 0, tokenizer: 'bytes' } },
    lora: { r: req.r ?? 8, alpha: 2 * (req.r ?? 8), scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules: req.targets ?? [], trainBias: false },
    optimizer: { name: 'adamw', lr: 1e-4, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: req.steps, batchSize: req.batch, seed: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 1, gradientCheckpointing: req.checkpoint === true },
  };
}

/** The probe's session on its model (random weights, seed 1, where no folder is given) and a text long enough for its batches. */
export function probeSession(req: ProbeRequest, config: ExperimentConfig, model: { folder?: HfFolder; hf: HfModelConfig }): CausalLmSession {
  const weights = model.folder ? model.folder.weights : weightsFromRecord(randomCheckpoint(model.hf, 1));
  let text = '';
  for (let i = 0; text.length < (req.batch + 4) * req.seqLen * 4; i++) text += `sample ${i} of the probe text, ${(i * 7919) % 1000}. `;
  return buildCausalLmSession(config, { folder: { config: model.hf, weights, weightFiles: model.folder?.weightFiles ?? ['random'] }, modelPath: req.folder ?? 'random', datasetPath: 'random.txt', datasetText: text });
}

export async function probe(req: ProbeRequest): Promise<ProbeResult> {
  const putBackPlain = keepPlainKernels(req.plainKernels);
  const backend = await startBackend({ prefer: req.backend ?? 'wasm', threads: req.threads, native: req.native ?? true });
  putBackPlain();
  const model = await probeModel(req);
  const { folder, hf } = model;
  const config = probeExperiment(req);
  const facts = backendFacts();
  const input = causalLmMemoryInput(config, hf, {
    nativeKernels: facts.nativeKernels,
    storedWeightBytes: folder ? folder.float32Bytes : 0,
    frozenOutsideHeap: folder !== undefined && facts.frozenOutsideHeap,
  });
  if (folder) input.storedWeightBytes = folder.weightFiles.reduce((a, f) => a + fs.statSync(f).size, 0);
  const estimate = estimateTrainingMemory(input);
  const refusal = memoryRefusal(input, estimate, facts.memoryLimits, req.folder ?? 'random model');
  if (refusal) throw new Error(refusal);
  const session = probeSession(req, config, model);
  const losses: number[] = [];
  const msPerStep: number[] = [];
  let last = performance.now();
  for await (const p of session.run()) {
    const now = performance.now();
    losses.push(p.loss);
    msPerStep.push(now - last);
    last = now;
  }
  const heap = heapBytes();
  session.dispose();
  return { request: req, params: session.params.totalParams, losses, msPerStep, heapBytes: heap, rssPeakBytes: process.resourceUsage().maxRSS * 1024, estimate, backend: backend.name };
}

if (require.main === module) {
  probe(JSON.parse(process.argv[2] ?? '{}') as ProbeRequest).then(
    (r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    },
    (e) => {
      console.error(e instanceof Error ? e.stack : e);
      process.exit(1);
    },
  );
}
