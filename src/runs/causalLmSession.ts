// The disk side of a causal-lm run: reads the model folder and the dataset named by the experiment
// (paths relative to the config file's folder), then builds the pure session from src/models.
// Before any weight is read, the run's memory is estimated from config.json and the experiment, and a
// run that cannot fit is refused with the estimate, the limit and what to change.
import * as fs from 'node:fs/promises';
import os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ExperimentConfig } from '../formats/experimentTypes';
import { parseHfConfig } from '../formats/hfConfig';
import { InteropError } from '../formats/adapters/interopError';
import { loadCausalLmInputs } from '../io/hfFolder';
import { causalLmSessionFrom, causalLmSettings, type CausalLmSession } from '../models/causalLmSession';
import { causalLmMemoryInput, describeMemoryEstimate, estimateTrainingMemory, memoryRefusal, WASM_HEAP_BYTES, type MemoryLimits } from '../engine/memoryEstimate';
import { wasmNativeKernels } from '../engine/kernels/wasmFastKernels';
import { frozenNative } from '../engine/kernels/frozenWeights';
import { modelSizeLimit } from './backendSetup';

/** What bounds memory on the backend in use: the wasm memory's 4 GiB, and the machine's memory. */
export function memoryLimits(): MemoryLimits {
  const wasm = tf.getBackend() === 'wasm';
  return {
    heapBytes: wasm ? WASM_HEAP_BYTES : undefined,
    heapWhy: wasm ? 'the wasm backend\'s one WebAssembly memory' : undefined,
    totalBytes: os.totalmem(),
  };
}

/** Bytes of the model's weight files (one file or the shards), 0 where none is found (loading says why). */
async function weightFileBytes(dir: string): Promise<number> {
  const single = path.join(dir, 'model.safetensors');
  const st = await fs.stat(single).catch(() => undefined);
  if (st) return st.size;
  try {
    const map = (JSON.parse(await fs.readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> }).weight_map;
    let n = 0;
    for (const f of new Set(Object.values(map))) n += (await fs.stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
    return n;
  } catch {
    return 0;
  }
}

export async function createCausalLmSession(config: ExperimentConfig, configDir: string, log?: (message: string) => void): Promise<CausalLmSession> {
  const m = causalLmSettings(config);
  const modelDir = path.resolve(configDir, m.modelPath);
  const configPath = path.join(modelDir, 'config.json');
  const configText = await fs.readFile(configPath, 'utf8').catch(() => undefined);
  if (configText !== undefined) {
    const hf = parseHfConfig(configText, configPath);
    const stored = await weightFileBytes(modelDir);
    const input = causalLmMemoryInput(config, hf, {
      nativeKernels: tf.getBackend() === 'wasm' && wasmNativeKernels() !== undefined,
      storedWeightBytes: stored || undefined,
      frozenOutsideHeap: frozenNative() !== undefined,
    });
    const estimate = estimateTrainingMemory(input);
    const refusal = memoryRefusal(input, estimate, memoryLimits(), modelDir);
    if (refusal) throw new InteropError('too-large', refusal, modelDir);
    log?.(describeMemoryEstimate(estimate));
  }
  // No config.json: loading names what is missing.
  return causalLmSessionFrom(config, await loadCausalLmInputs(m.modelPath, m.dataset.path, configDir, modelSizeLimit()));
}
