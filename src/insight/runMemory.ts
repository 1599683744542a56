// The memory estimate of a causal-lm run for the config hover and the dashboard's Parameters view. The
// arithmetic is src/formats/memoryEstimate.ts, the same the training run prints and refuses with; what
// this adds is the backend it is judged for. The extension host never loads tfjs, so it cannot ask the
// backend: it knows which one the training worker will pick (src/engine/backend.ts: tfjs-node when it
// is installed, else wasm; src/runs/nativeLoader.ts: the native kernels when their addon is built and
// LORA_LAB_NATIVE is not 0) and assumes that, and says so next to the numbers. A finished run says
// which backend it ran on in run.json; its estimate uses that.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { HfModelConfig } from '../formats/hfConfig';
import { causalLmMemoryInput, estimateTrainingMemory, HEAP_USABLE, memoryShortfall, WASM_HEAP_BYTES } from '../formats/memoryEstimate';
import type { MemorySummary } from '../shared/memorySummary';
import { nativeCandidates } from '../runs/nativeLoader';

/** The backend facts the estimate depends on. */
export interface BackendAssumption {
  /** Frozen products on the native kernels (no cached transposed copies). */
  nativeKernels: boolean;
  /** Frozen weights kept as stored, outside the tensor heap. */
  frozenOutsideHeap: boolean;
  /** The wasm backend: every tensor in one WebAssembly memory of at most 4 GiB. */
  wasmHeap: boolean;
  /** Said with the numbers. */
  text: string;
}

const WASM_HEAP_WHAT = 'the wasm heap';

/**
 * What the training worker would run on, as causalLmSession (src/runs) counts it: the native kernels
 * and frozen weights outside the heap only on the wasm backend; no heap bound on tfjs-node or cpu.
 */
export function backendAssumption(b: { name: string; kernels?: string }, why: string): BackendAssumption {
  if (b.name === 'wasm' && b.kernels) {
    return { nativeKernels: true, frozenOutsideHeap: true, wasmHeap: true, text: `${why}: wasm with the native kernels, frozen weights outside the 4 GiB wasm heap` };
  }
  if (b.name === 'wasm') return { nativeKernels: false, frozenOutsideHeap: false, wasmHeap: true, text: `${why}: wasm without the native kernels, frozen weights inside the 4 GiB wasm heap` };
  const name = b.name === 'tensorflow' ? 'tfjs-node' : b.name;
  return { nativeKernels: false, frozenOutsideHeap: false, wasmHeap: false, text: `${why}: ${name}, no 4 GiB heap bound (machine memory only)` };
}

/** For a run: the backend its run.json records. */
export function runBackendAssumption(backend: { name: string; kernels?: string }): BackendAssumption {
  return backendAssumption(backend, 'as this run ran');
}

let probed: { tfjsNode: boolean; nativeBuilt: boolean } | undefined;

/**
 * For an experiment not yet run: the backend the training worker picks here (what is installed and
 * built is probed once; LORA_LAB_NATIVE=0 in `env` turns the native kernels off, as for the worker).
 */
export function defaultBackendAssumption(env: NodeJS.ProcessEnv = process.env): BackendAssumption {
  if (!probed) {
    let tfjsNode = false;
    try {
      createRequire(__filename).resolve('@tensorflow/tfjs-node');
      tfjsNode = true;
    } catch {
      // the optional dependency is not installed: the worker runs wasm
    }
    probed = { tfjsNode, nativeBuilt: nativeCandidates().some((p) => fs.existsSync(p)) };
  }
  const native = probed.nativeBuilt && env.LORA_LAB_NATIVE !== '0';
  return backendAssumption(probed.tfjsNode ? { name: 'tensorflow' } : { name: 'wasm', kernels: native ? 'native' : undefined }, 'assumes the default path');
}

/** The estimate of `config` on the model `hf`, judged against the heap bound and the machine's memory. */
export function memorySummaryOf(
  config: ExperimentConfig,
  hf: HfModelConfig,
  backend: BackendAssumption,
  opts: { machineBytes?: number; storedWeightBytes?: number } = {},
): MemorySummary {
  const input = causalLmMemoryInput(config, hf, { nativeKernels: backend.nativeKernels, frozenOutsideHeap: backend.frozenOutsideHeap, storedWeightBytes: opts.storedWeightBytes || undefined });
  const e = estimateTrainingMemory(input);
  const shortfall = memoryShortfall(input, e, {
    heapBytes: backend.wasmHeap ? WASM_HEAP_BYTES : undefined,
    heapWhy: WASM_HEAP_WHAT,
    totalBytes: opts.machineBytes,
  });
  return {
    batchSize: input.batchSize,
    seqLen: input.seqLen,
    gradientCheckpointing: input.gradientCheckpointing,
    optimizer: input.optimizer,
    frozenWeights: e.frozenWeights,
    lora: e.lora,
    activations: e.activations,
    loss: e.loss,
    chunkedLoss: e.chunkedLoss,
    heap: e.heap,
    host: e.host,
    total: e.total,
    ...(backend.wasmHeap ? { heapLimit: { bytes: WASM_HEAP_BYTES, usableShare: HEAP_USABLE, what: WASM_HEAP_WHAT } } : {}),
    ...(opts.machineBytes !== undefined ? { machineBytes: opts.machineBytes } : {}),
    assumption: backend.text,
    ...(shortfall ? { remedies: shortfall.remedies } : {}),
  };
}
