// A GPT-2-small-shaped model (n_embd 768, 12 layers, 12 heads, vocab 50257, n_positions 1024, 124 M
// parameters) written here as random F32 safetensors trains 2 steps at batch 2 × seqLen 256 (LoRA r 8 on
// c_attn, AdamW) on the default path: the wasm backend with the native kernels, frozen weights outside
// the wasm heap. A block of 2 GiB + 64 MiB is taken from the heap first, so every operand of the run
// lies past 2^31 bytes, where signed offsets and 2^31 argument bounds break; every native product's
// operand offsets are recorded to prove it. The same run with the frozen weights in the heap (a weight
// source without stored bytes, which is what switches that path off) gives the same two losses: the
// frozen products read the same float32 values as the heap's tensors, so they agree to rounding order.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { frozenNative } from '../../../src/engine/kernels/frozenWeights';
import { registerWasmFastKernels, wasmNativeKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { backendFacts, startBackend } from '../../../src/runs/backendSetup';
import { openCausalLmSession } from '../../../src/runs/openSession';
import { loadCausalLmInputs } from '../../../src/io/hfFolder';
import { buildCausalLmSession } from '../../../src/models/causalLmSession';
import { runLosses } from '../perf/helpers';
import type { WeightSource } from '../../../src/formats/weightSource';
import { gpt2ConfigJson, writeRandomModelFolder } from '../../bench/randomModel';
import { useCpu } from '../interop/helpers';

const BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && process.arch === 'x64';
const TWO_GIB = 2 ** 31;
/** Relative tolerance on each loss: the two paths sum the same products in different orders. */
const LOSS_RTOL = 1e-5;

// The emscripten module's allocator (tfjs-backend-wasm 4.22 internals, read only by this test).
type Heap = { wasm: { _malloc(n: number): number; _free(p: number): void } };

function experiment(): ExperimentConfig {
  return {
    name: 'gpt2-small-random',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath: 'gpt2-small', dataset: { path: 'data.txt', seqLen: 256, evalFraction: 0.1, tokenizer: 'bytes' } },
    lora: { r: 8, alpha: 16, scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules: ['c_attn'], trainBias: false },
    optimizer: { name: 'adamw', lr: 1e-3, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 1 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: 2, batchSize: 2, seed: 3, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 1 },
  };
}

/**
 * Per native entry point, the lowest over its calls while `run` runs of the call's highest operand byte
 * offset (the operands' places in the wasm heap): at least 2^31 when every call had an operand past
 * 2 GiB. (A small operand, e.g. a few token ids, may still land in a hole below the reserved block.) The
 * addon's exports are read-only, so the kernels are registered again on a recording copy.
 */
async function recordOffsets<T>(nk: NativeKernels, run: () => Promise<T>): Promise<{ result: T; lowest: Record<string, number>; calls: Record<string, number> }> {
  const lowest: Record<string, number> = {};
  const calls: Record<string, number> = {};
  const note = (name: string, ...floatOffsets: number[]) => {
    calls[name] = (calls[name] ?? 0) + 1;
    lowest[name] = Math.min(lowest[name] ?? Infinity, Math.max(...floatOffsets.map((o) => o * 4)));
  };
  const orig = nk as unknown as Record<string, (...a: unknown[]) => unknown>;
  const copy: Record<string, unknown> = {};
  for (const name of Object.getOwnPropertyNames(nk)) copy[name] = orig[name];
  copy.gemm = (...a: unknown[]) => (note('gemm', a[1] as number, a[3] as number, a[5] as number), orig.gemm(...a));
  copy.frozenMatMul = (...a: unknown[]) => (note('frozenMatMul', a[2] as number, a[4] as number), orig.frozenMatMul(...a));
  copy.frozenGather = (...a: unknown[]) => (note('frozenGather', (a[1] as Int32Array).byteOffset / 4, a[5] as number), orig.frozenGather(...a));
  registerWasmFastKernels(copy as unknown as NativeKernels);
  try {
    return { result: await run(), lowest, calls };
  } finally {
    registerWasmFastKernels(nk);
  }
}

describe('models: a GPT-2-small-shaped random model on the default path', function () {
  // Writing 475 MiB of weights and two runs of 2 steps each.
  this.timeout(120_000);
  let dir: string;

  before(async function () {
    await startBackend({ prefer: 'wasm' });
    if (!frozenNative()) {
      if (BUILT_HERE) assert.fail('the native kernels with frozen products are not in use: run `npm run build:native`');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-gpt2-small-'));
    writeRandomModelFolder(path.join(dir, 'gpt2-small'), gpt2ConfigJson(), 'F32', 11);
    // Byte tokens: 16 windows of 256, enough for the 2 batches of 2 and the held-out tail.
    const words = ['low', 'rank', 'adapter', 'frozen', 'weights', 'heap', 'gradient', 'step', 'loss', 'native'];
    fs.writeFileSync(path.join(dir, 'data.txt'), Array.from({ length: 800 }, (_, i) => words[(i * 7) % words.length]).join(' '));
  });

  after(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await useCpu();
  });

  it('trains 2 steps at B2 × T256 with operands past 2 GiB of the wasm heap, with the in-heap losses', async () => {
    const started = Date.now();
    const config = experiment();
    const be = tf.backend() as unknown as Heap;
    const nk = wasmNativeKernels()!;
    // Untouched: only its header page is written, so the block costs address space, not memory.
    const block = be.wasm._malloc(TWO_GIB + (64 << 20)) >>> 0;
    assert.ok(block !== 0, 'the wasm heap could not grow past 2 GiB');
    // Holes below 2 GiB left by earlier tests in this process: fill them, so what comes next lies past the block.
    const fillers: number[] = [];
    for (const size of [16 << 20, 1 << 20, 1 << 16, 1 << 12, 1 << 8, 1 << 6]) {
      for (;;) {
        const p = be.wasm._malloc(size) >>> 0;
        if (p === 0 || p > TWO_GIB) {
          if (p) be.wasm._free(p);
          break;
        }
        fillers.push(p);
      }
    }
    let outside: number[];
    try {
      const rec = await recordOffsets(nk, async () => runLosses(await openCausalLmSession(config, { configDir: dir, backend: backendFacts() })));
      outside = rec.result;
      for (const name of ['gemm', 'frozenMatMul', 'frozenGather']) {
        assert.ok((rec.calls[name] ?? 0) > 0, `${name} was never called: not the default path`);
        assert.ok(rec.lowest[name] >= TWO_GIB, `a ${name} call had all its operands below 2^31 (the highest at byte ${rec.lowest[name]})`);
      }
    } finally {
      for (const p of fillers) be.wasm._free(p);
      be.wasm._free(block);
    }
    const outsideMs = Date.now() - started;

    // The in-heap path: the same files, read through a source without stored bytes.
    const inputs = await loadCausalLmInputs('gpt2-small', 'data.txt', dir);
    const w = inputs.folder.weights;
    const widened: WeightSource = { names: () => w.names(), get: (n) => w.get(n), dtype: (n) => w.dtype?.(n) };
    const heapRec = await recordOffsets(nk, async () => runLosses(buildCausalLmSession(config, { ...inputs, folder: { ...inputs.folder, weights: widened } })));
    const inHeap = heapRec.result;
    assert.equal(heapRec.calls.frozenMatMul ?? 0, 0, 'the in-heap run used frozen products');

    assert.equal(outside.length, 2);
    assert.ok(outside.every(Number.isFinite), `losses ${outside}`);
    // Random N(0, 0.02) weights: the first loss is near ln(50257) ≈ 10.8.
    assert.ok(Math.abs(outside[0] - Math.log(50257)) < 0.5, `first loss ${outside[0]}`);
    for (let i = 0; i < 2; i++) {
      const rel = Math.abs(outside[i] - inHeap[i]) / Math.abs(inHeap[i]);
      assert.ok(rel <= LOSS_RTOL, `step ${i + 1}: loss ${outside[i]} outside the heap vs ${inHeap[i]} in it (relative ${rel.toExponential(2)})`);
    }
    console.log(
      `      losses outside the heap ${outside.join(', ')}; in the heap ${inHeap.join(', ')}; ` +
        `|Δ| ${outside.map((x, i) => Math.abs(x - inHeap[i]).toExponential(2)).join(', ')}; ` +
        `${(outsideMs / 1000).toFixed(1)} s past 2 GiB, ${((Date.now() - started - outsideMs) / 1000).toFixed(1)} s in the heap`,
    );
  });
});
