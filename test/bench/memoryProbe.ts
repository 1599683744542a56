// One causal-lm training run on a random model of a given shape, in this process, measured: the wasm
// heap's size after the steps (a WebAssembly memory only grows, so that is its peak), peak RSS, ms per
// step and the losses, beside the memory estimate (src/formats/memoryEstimate.ts) for the same run.
// Run in a fresh process per shape:
//   tsx test/bench/memoryProbe.ts '{"model":"gpt2","over":{"n_layer":2},"batch":2,"seqLen":256,"steps":2}'
// Prints one JSON line. Used by the real-size benchmarks and to check the estimate against measurement.
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { loadHfFolder } from '../../src/io/hfFolder';
import { frozenNative } from '../../src/engine/kernels/frozenWeights';
import { startBackend } from '../../src/runs/backendSetup';
import { causalLmSessionFrom } from '../../src/models/causalLmSession';
import { weightsFromRecord } from '../../src/models/weights';
import { causalLmMemoryInput, estimateTrainingMemory, memoryRefusal } from '../../src/formats/memoryEstimate';
import { memoryLimits } from '../../src/runs/causalLmSession';
import { wasmNativeKernels } from '../../src/engine/kernels/wasmFastKernels';
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

export async function probe(req: ProbeRequest): Promise<ProbeResult> {
  const putBackPlain = keepPlainKernels(req.plainKernels);
  const backend = await startBackend({ prefer: req.backend ?? 'wasm', threads: req.threads, native: req.native ?? true });
  putBackPlain();
  const folder = req.folder ? await loadHfFolder(req.folder) : undefined;
  const hf = folder ? folder.config : parseConfigJson(req.model === 'gpt2' ? gpt2ConfigJson(req.over) : llama1bConfigJson(req.over));
  const config: ExperimentConfig = {
    name: 'probe',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath: 'random', dataset: { path: 'random.txt', seqLen: req.seqLen, evalFraction: 0, tokenizer: 'bytes' } },
    lora: { r: req.r ?? 8, alpha: 2 * (req.r ?? 8), scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules: req.targets ?? [], trainBias: false },
    optimizer: { name: 'adamw', lr: 1e-4, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: req.steps, batchSize: req.batch, seed: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 1, gradientCheckpointing: req.checkpoint === true },
  };
  const input = causalLmMemoryInput(config, hf, {
    nativeKernels: tf.getBackend() === 'wasm' && wasmNativeKernels() !== undefined,
    storedWeightBytes: folder ? folder.float32Bytes : 0,
    frozenOutsideHeap: folder !== undefined && frozenNative() !== undefined,
  });
  if (folder) input.storedWeightBytes = folder.weightFiles.reduce((a, f) => a + fs.statSync(f).size, 0);
  const estimate = estimateTrainingMemory(input);
  const refusal = memoryRefusal(input, estimate, memoryLimits(), req.folder ?? 'random model');
  if (refusal) throw new Error(refusal);
  const weights = folder ? folder.weights : weightsFromRecord(randomCheckpoint(hf, 1));
  let text = '';
  for (let i = 0; text.length < (req.batch + 4) * req.seqLen * 4; i++) text += `sample ${i} of the probe text, ${(i * 7919) % 1000}. `;
  const session = causalLmSessionFrom(config, { folder: { config: hf, weights, weightFiles: folder?.weightFiles ?? ['random'] }, modelPath: req.folder ?? 'random', datasetPath: 'random.txt', datasetText: text });
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
