// The memory estimate in a causal-lm experiment's hover: the parts equal estimateTrainingMemory on the
// backend the hover assumes (and parts worked out here by hand for GPT-2 small), the limit it is judged
// against, what it assumes, and what to change when the run would be refused; config.json is read
// asynchronously and cached by mtime.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseHfConfig } from '../../../src/formats/hfConfig';
import { resolveConfigDefaults } from '../../../src/formats/experimentConfig';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import { causalLmMemoryInput, estimateTrainingMemory, memoryRefusal, WASM_HEAP_BYTES } from '../../../src/formats/memoryEstimate';
import { formatBytes } from '../../../src/shared/format';
import { memoryHoverText, modelHoverText } from '../../../src/insight/hoverText';
import { hfModelShape } from '../../../src/insight/modelShapes';
import { backendAssumption, defaultBackendAssumption, memorySummaryOf, runBackendAssumption } from '../../../src/insight/runMemory';
import { readModelConfigCached, weightFileBytes } from '../../../src/io/modelConfigCache';
import { nativeCandidates } from '../../../src/runs/nativeLoader';

const GPT2_SMALL = { model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 };
const gpt2Small = parseHfConfig(JSON.stringify(GPT2_SMALL));
const GIB = 2 ** 30;
const native = backendAssumption({ name: 'wasm', kernels: 'native avx2 kernels' }, 'assumes the default path');

function experiment(batchSize: number, seqLen: number, gradientCheckpointing: boolean, optimizer = 'adamw'): ExperimentConfig {
  return resolveConfigDefaults(
    {
      name: 'gpt2-small',
      kind: 'causal-lm',
      model: { modelPath: 'models/gpt2', dataset: { path: 'data.txt', seqLen } },
      lora: { r: 8, alpha: 16, targetModules: ['c_attn'] },
      optimizer: { name: optimizer, lr: 1e-4 },
      training: { steps: 10, batchSize, gradientCheckpointing },
    },
    'gpt2.lora.json',
  );
}

describe('hovers: the memory estimate of a causal-lm experiment', () => {
  it('GPT-2 small B8×T512 with checkpointing fits the wasm heap: its parts are the estimate, two worked out by hand', () => {
    const config = experiment(8, 512, true);
    const s = memorySummaryOf(config, gpt2Small, native, { machineBytes: 64 * GIB, storedWeightBytes: 497_759_232 });
    const e = estimateTrainingMemory(causalLmMemoryInput(config, gpt2Small, { nativeKernels: true, frozenOutsideHeap: true, storedWeightBytes: 497_759_232 }));
    assert.deepEqual([s.frozenWeights, s.lora, s.activations, s.loss, s.heap, s.host, s.total], [e.frozenWeights, e.lora, e.activations, e.loss, e.heap, e.host, e.total]);
    // Frozen weights outside the heap leave in it the positions, the LayerNorms and the biases, as float32.
    const positions = 1024 * 768;
    const norms = (2 * 12 + 1) * 2 * 768;
    const biases = 12 * (3 * 768 + 768 + 4 * 768 + 768);
    assert.equal(s.frozenWeights, (positions + norms + biases) * 4);
    // LoRA A [8, 768] and B [2304, 8] on 12 c_attn layers: parameter, gradient, Adam m and v, 4 bytes each.
    assert.equal(s.lora, 12 * 8 * (768 + 2304) * 4 * 4);
    assert.deepEqual(s.heapLimit, { bytes: WASM_HEAP_BYTES, usableShare: 0.9, what: 'the wasm heap' });
    assert.equal(s.remedies, undefined);

    const text = memoryHoverText(s);
    const lines = text.split('\n');
    assert.equal(lines[0], `- memory estimate (batch 8 × seqLen 512, AdamW, gradient checkpointing on): **${formatBytes(e.total)}** in all, of this machine's 64 GiB`);
    assert.ok(lines[1].startsWith(`  - tensor heap ${formatBytes(e.heap)} of the wasm heap's 4 GiB (90 % usable: 3.6 GiB): frozen weights (in the heap) 3.46 MiB; LoRA + optimizer (A, B, gradients, AdamW m, v) 4.5 MiB;`), lines[1]);
    assert.match(lines[1], new RegExp(`activations \\(gradient checkpointing\\) ${formatBytes(e.activations).replace('.', '\\.')}; loss \\(chunked cross-entropy\\) ${formatBytes(e.loss).replace('.', '\\.')}$`));
    assert.equal(lines[2], `  - weight files, held outside the heap: ${formatBytes(e.host)}`);
    assert.equal(lines[3], '  - assumes the default path: wasm with the native kernels, frozen weights outside the 4 GiB wasm heap');
    assert.equal(lines[4], '  - fits');
  });

  it('without checkpointing the same run is refused: the hover says why, against which limit, and what to change', () => {
    const config = experiment(8, 512, false);
    const s = memorySummaryOf(config, gpt2Small, native, { machineBytes: 64 * GIB });
    const input = causalLmMemoryInput(config, gpt2Small, { nativeKernels: true, frozenOutsideHeap: true });
    // The training run refuses it with the same estimate.
    assert.ok(memoryRefusal(input, estimateTrainingMemory(input), { heapBytes: WASM_HEAP_BYTES }, 'x'));
    assert.ok(s.heap > 0.9 * WASM_HEAP_BYTES);
    const last = memoryHoverText(s).split('\n').pop()!;
    assert.ok(last.startsWith(`  - **would not fit**: the tensor heap needs ${formatBytes(s.heap)}, more than the 3.6 GiB usable of the wasm heap's 4 GiB. To fit: `), last);
    assert.match(last, /To fit: set training\.gradientCheckpointing to true .*; or lower training\.batchSize \(now 8; .*; or lower model\.dataset\.seqLen \(now 512; /);
  });

  it('on tfjs-node or cpu no heap bound applies: only the machine memory refuses, and the hover says which backend it assumed', () => {
    const tfjsNode = backendAssumption({ name: 'tensorflow' }, 'assumes the default path');
    assert.deepEqual({ ...tfjsNode, text: '' }, { nativeKernels: false, frozenOutsideHeap: false, wasmHeap: false, text: '' });
    const big = experiment(8, 512, false);
    const s = memorySummaryOf(big, gpt2Small, tfjsNode, { machineBytes: 64 * GIB });
    assert.equal(s.heapLimit, undefined);
    assert.equal(s.remedies, undefined, 'fits 64 GiB');
    const text = memoryHoverText(s);
    assert.match(text, /\n {2}- tensor heap [\d.]+ GiB: frozen weights/);
    assert.match(text, /assumes the default path: tfjs-node, no 4 GiB heap bound \(machine memory only\)/);
    const small = memorySummaryOf(big, gpt2Small, tfjsNode, { machineBytes: 8 * GIB });
    assert.match(memoryHoverText(small), /\*\*would not fit\*\*: it needs [\d.]+ GiB in all, more than this machine's 8 GiB\. To fit: /);
    // A run's own backend, from run.json: pure wasm keeps the frozen weights (and cached Wᵀ copies) in the heap.
    const wasm = runBackendAssumption({ name: 'wasm' });
    assert.equal(wasm.text, 'as this run ran: wasm without the native kernels, frozen weights inside the 4 GiB wasm heap');
    const pure = memorySummaryOf(experiment(2, 64, false), gpt2Small, wasm);
    assert.ok(pure.frozenWeights > 124_439_808 * 4, 'every parameter as float32, and more');
  });

  it('the default path follows what is built here and LORA_LAB_NATIVE, as the worker does', () => {
    const built = nativeCandidates().some((p) => fs.existsSync(p));
    const a = defaultBackendAssumption({});
    if (a.wasmHeap) assert.equal(a.nativeKernels, built);
    assert.equal(defaultBackendAssumption({ LORA_LAB_NATIVE: '0' }).nativeKernels, false);
  });

  it('modelHoverText puts the memory item after the parameter counts, before the convention line', () => {
    const s = memorySummaryOf(experiment(2, 256, false), gpt2Small, native);
    const text = modelHoverText({ shape: hfModelShape(gpt2Small), r: 8, alpha: 16, scaling: 'standard', targets: ['c_attn'], trainBias: false, convention: 'peft', memory: memoryHoverText(s) });
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.startsWith('- memory estimate (batch 2 × seqLen 256'));
    assert.ok(at > 0 && lines[at - 1].startsWith('- trainable %'), text);
    assert.equal(lines[at + 4], '  - fits');
    assert.match(lines[at + 6], /^Convention: PEFT's/);
  });
});

describe('io: model config.json read asynchronously, cached by mtime', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-config-cache-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a second read of an unchanged file is the cached object; an edited one is read afresh', async () => {
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify(GPT2_SMALL));
    const a = await readModelConfigCached(file);
    assert.equal(a.hiddenSize, 768);
    assert.equal(await readModelConfigCached(file), a);
    fs.writeFileSync(file, JSON.stringify({ ...GPT2_SMALL, n_embd: 1024, n_head: 16 }));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const b = await readModelConfigCached(file);
    assert.equal(b.hiddenSize, 1024);
    fs.writeFileSync(file, '{ "model_type": ');
    fs.utimesSync(file, new Date(), new Date(Date.now() + 10000));
    await assert.rejects(readModelConfigCached(file));
  });

  it('weight file bytes: model.safetensors, else the shards of its index; 0 when there are none', async () => {
    const one = path.join(dir, 'one');
    fs.mkdirSync(one);
    fs.writeFileSync(path.join(one, 'model.safetensors'), Buffer.alloc(1234));
    assert.equal(await weightFileBytes(one), 1234);
    const sharded = path.join(dir, 'sharded');
    fs.mkdirSync(sharded);
    fs.writeFileSync(path.join(sharded, 'a.safetensors'), Buffer.alloc(100));
    fs.writeFileSync(path.join(sharded, 'b.safetensors'), Buffer.alloc(50));
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'b.safetensors', z: 'a.safetensors' } }));
    assert.equal(await weightFileBytes(sharded), 150);
    assert.equal(await weightFileBytes(path.join(dir, 'none')), 0);
  });
});
