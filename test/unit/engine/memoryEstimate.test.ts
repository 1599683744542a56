// The memory estimate (src/formats/memoryEstimate.ts): parameter counts of the real shapes, what each
// setting changes, and the refusal of a run that cannot fit, made before any weight is read.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  baseParamCount, causalLmMemoryInput, describeMemoryEstimate, estimateTrainingMemory, linearShapesOf, lossChunkRows, memoryRefusal, WASM_HEAP_BYTES,
  type MemoryEstimateInput,
} from '../../../src/formats/memoryEstimate';
import { parseHfConfig } from '../../../src/formats/hfConfig';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { startBackend } from '../../../src/runs/backendSetup';
import { useCpu, openCausalLm } from '../interop/helpers';

const gpt2Small = parseHfConfig(JSON.stringify({ model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 }));
const llama1b = parseHfConfig(
  JSON.stringify({
    model_type: 'llama', vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
    num_key_value_heads: 8, head_dim: 64, rope_theta: 500000, tie_word_embeddings: true,
  }),
);

function experiment(modelPath: string, batchSize: number, seqLen: number, gradientCheckpointing: boolean, targetModules: string[] = ['c_attn']): ExperimentConfig {
  return {
    name: 'big',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath, dataset: { path: 'data.txt', seqLen, evalFraction: 0, tokenizer: 'bytes' } },
    lora: { r: 8, alpha: 16, scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules, trainBias: false },
    optimizer: { name: 'adamw', lr: 1e-4, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 1 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: 2, batchSize, seed: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 1, gradientCheckpointing },
  };
}

describe('engine: memory estimate', () => {
  it('counts the parameters of GPT-2 small (124,439,808) and Llama-3.2-1B (1,235,814,400) as transformers does', () => {
    assert.equal(baseParamCount(gpt2Small), 124_439_808);
    assert.equal(baseParamCount(llama1b), 1_235_814_400);
    assert.equal(linearShapesOf(gpt2Small).length, 12 * 4 + 1);
    assert.deepEqual(linearShapesOf(llama1b)[1], { path: 'model.layers.0.self_attn.k_proj', inFeatures: 2048, outFeatures: 512 });
  });

  it('LoRA on c_attn r 8: parameters, gradients and Adam slots in 16 bytes each; SGD in 12', () => {
    const input = causalLmMemoryInput(experiment('m', 4, 256, false), gpt2Small, { nativeKernels: true });
    assert.equal(input.targets.length, 12);
    const params = 12 * 8 * (768 + 3 * 768);
    assert.equal(estimateTrainingMemory(input).lora, params * 16);
    assert.equal(estimateTrainingMemory({ ...input, optimizer: 'sgd' }).lora, params * 12);
    // PEFT's defaults for an empty list: c_attn on GPT-2, q_proj and v_proj on Llama
    assert.equal(causalLmMemoryInput(experiment('m', 1, 8, false, []), gpt2Small, { nativeKernels: true }).targets.length, 12);
    assert.equal(causalLmMemoryInput(experiment('m', 1, 8, false, []), llama1b, { nativeKernels: true }).targets.length, 32);
  });

  it('activations scale with batch × seqLen; checkpointing keeps one block; the chunked loss never holds B×T×V', () => {
    const base: MemoryEstimateInput = causalLmMemoryInput(experiment('m', 2, 256, false), gpt2Small, { nativeKernels: true });
    const e1 = estimateTrainingMemory(base);
    const e2 = estimateTrainingMemory({ ...base, batchSize: 4 });
    assert.ok(Math.abs(e2.activations / e1.activations - 2) < 0.01, 'twice the batch, twice the activations');
    const ck = estimateTrainingMemory({ ...base, batchSize: 8, seqLen: 512, gradientCheckpointing: true });
    const plain = estimateTrainingMemory({ ...base, batchSize: 8, seqLen: 512 });
    assert.ok(ck.activations < plain.activations / 3, `checkpointing: ${ck.activations} vs ${plain.activations}`);
    assert.ok(plain.loss < 8 * 512 * 50257 * 4, 'the chunked loss is below one B×T×V float32 tensor');
    assert.equal(lossChunkRows(50257), 333);
    const headAdapted = estimateTrainingMemory({ ...base, targets: [...base.targets, { path: 'lm_head', inFeatures: 768, outFeatures: 50257, r: 8 }] });
    assert.equal(headAdapted.chunkedLoss, false);
    assert.ok(headAdapted.loss >= 2 * 256 * 50257 * 4 * 4);
    // The pure wasm products cache Wᵀ of the frozen weights: more heap without the native kernels.
    assert.ok(estimateTrainingMemory({ ...base, nativeKernels: false }).frozenWeights > e1.frozenWeights);
    assert.match(describeMemoryEstimate(e1), /^memory estimate [\d.]+ GiB: tensor heap [\d.]+ (GiB|MiB) \(frozen weights \d+ MiB, LoRA \+ optimizer \d+ MiB, activations .* loss \d+ MiB chunked\), weight files on the host/);
  });

  it('refuses what cannot fit with the estimate, the limit and what to change; accepts what fits', () => {
    const big = causalLmMemoryInput(experiment('m', 8, 512, false), gpt2Small, { nativeKernels: true });
    const e = estimateTrainingMemory(big);
    const msg = memoryRefusal(big, e, { heapBytes: WASM_HEAP_BYTES, heapWhy: 'the wasm memory' }, '/models/gpt2');
    assert.ok(msg);
    assert.match(msg, /^\/models\/gpt2: this run cannot fit in memory: its tensors need [\d.]+ GiB but the wasm memory holds at most 4\.00 GiB \(90 % of it usable\) \(batch 8 × seqLen 512, gradient checkpointing off; memory estimate/);
    assert.match(msg, /To fit: set training\.gradientCheckpointing to true .*; or lower training\.batchSize \(now 8; .*; or lower model\.dataset\.seqLen \(now 512;/);
    const ck = { ...big, gradientCheckpointing: true };
    assert.equal(memoryRefusal(ck, estimateTrainingMemory(ck), { heapBytes: WASM_HEAP_BYTES }, 'x'), undefined, 'checkpointed, B8×T512 fits the 4 GiB heap');
    assert.match(memoryRefusal(ck, estimateTrainingMemory(ck), { totalBytes: 2 ** 30 }, 'x') ?? '', /it needs [\d.]+ GiB in all but this machine has 1\.00 GiB/);
  });

  it('Llama-3.2-1B in BF16 at B1×T512, checkpointed, fits the 4 GiB heap only with its frozen weights outside it', () => {
    const x = causalLmMemoryInput(experiment('m', 1, 512, true, ['q_proj', 'k_proj', 'v_proj', 'o_proj']), llama1b, { nativeKernels: true, storedWeightBytes: 2 * 1_235_814_400 });
    const inHeap = estimateTrainingMemory(x);
    const outside = estimateTrainingMemory({ ...x, frozenOutsideHeap: true });
    assert.ok(inHeap.heap > WASM_HEAP_BYTES, 'in the heap as float32 it cannot fit');
    assert.ok(outside.heap < WASM_HEAP_BYTES / 2, `outside: ${outside.heap}`);
    assert.ok(outside.frozenWeights < 2 ** 20, 'only the norms stay in the heap');
    assert.equal(outside.host, 2 * 1_235_814_400 + outside.frozenWeights, 'the file bytes, never widened');
    assert.equal(memoryRefusal({ ...x, frozenOutsideHeap: true }, outside, { heapBytes: WASM_HEAP_BYTES }, 'x'), undefined);
  });

  it('train refuses an impossible run before reading a weight (the weights file here is not even safetensors)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-estimate-'));
    try {
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 }));
      fs.writeFileSync(path.join(dir, 'model.safetensors'), 'not read');
      fs.writeFileSync(path.join(dir, 'data.txt'), 'text');
      await startBackend({ prefer: 'wasm' });
      await assert.rejects(
        openCausalLm(experiment(dir, 64, 1024, false), dir),
        (e: unknown) => InteropError.is(e, 'too-large') && e.message.startsWith(`${dir}: this run cannot fit in memory:`) && /gradientCheckpointing/.test(e.message) && /batchSize \(now 64/.test(e.message),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await useCpu();
    }
  });
});
