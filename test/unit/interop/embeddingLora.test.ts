// PEFT LoRA on embedding tables (lora_embedding_A [r, num_embeddings], lora_embedding_B [dim, r];
// ΔW = s·(B·A)ᵀ for the [num_embeddings, dim] weight, peft/tuners/lora/layer.py Embedding): inspect,
// attach (Llama embed_tokens; GPT-2 wte tied to lm_head) and merge, against ΔW computed here entry by entry.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { maxAbsDiff, useCpu } from './helpers';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { attachPeftAdapter, loadPeftModel } from '../../../src/models/peftAdapter';
import { overlayWeights, weightsFromRecord, type HostTensor, type WeightSource } from '../../../src/models/weights';
import { parsePeftConfig } from '../../../src/formats/peftConfig';
import { parseSafetensors, serializeSafetensors } from '../../../src/formats/safetensors';
import { inspectAdapter } from '../../../src/formats/adapters/inspect';
import { deltaW } from '../../../src/formats/adapters/deltaW';
import { InteropError } from '../../../src/formats/adapters/interopError';

const ROOT = path.resolve(__dirname, '../../..');
const EXAMPLES = path.join(ROOT, 'examples/models');

/** Deterministic values, different per tensor (seed). */
function values(n: number, seed: number, amp: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin(0.37 * i + seed) * Math.cos(0.011 * i * seed));
}

/** ΔW[v, h] = s·Σ_k A[k, v]·B[h, k], written out entry by entry (float64 sums). */
function referenceDelta(A: HostTensor, B: HostTensor, s: number): Float32Array {
  const [r, rows] = A.shape;
  const dim = B.shape[0];
  const out = new Float32Array(rows * dim);
  for (let v = 0; v < rows; v++)
    for (let h = 0; h < dim; h++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += A.data[k * rows + v] * B.data[h * r + k];
      out[v * dim + h] = s * acc;
    }
  return out;
}

function plus(w: HostTensor, d: Float32Array): HostTensor {
  return { shape: [...w.shape], data: w.data.map((x, i) => x + d[i]) };
}

const probe = [
  [1, 77, 200, 3, 45, 45, 9, 255],
  [10, 11, 12, 13, 14, 15, 16, 17],
];

function logitsOf(model: ReturnType<typeof buildCausalLm>, lookup?: Parameters<ReturnType<typeof buildCausalLm>['forward']>[1]): Float32Array {
  return tf.tidy(() => model.forward(idsTensor(probe, 256), lookup).dataSync() as Float32Array);
}

describe('interop: PEFT LoRA on embeddings', function () {
  this.timeout(60000);
  before(useCpu);

  it('Llama embed_tokens: inspect (module, params, ΔW), attach and merge equal ΔW computed entry by entry', async () => {
    const folder = await loadHfFolder(path.join(EXAMPLES, 'tiny-llama'));
    // rank/alpha patterns pick embed_tokens' own r 3 and α 12 (scale 4); q_proj keeps r 4, α 8.
    const cfgJson = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['embed_tokens', 'q_proj'], rank_pattern: { embed_tokens: 3 }, alpha_pattern: { embed_tokens: 12 } };
    const A: HostTensor = { shape: [3, 256], data: values(3 * 256, 1, 0.2) };
    const B: HostTensor = { shape: [64, 3], data: values(64 * 3, 2, 0.2) };
    const tensors: Record<string, HostTensor> = {
      // PEFT saves the embedding factors without ".weight" (they are nn.ParameterDict entries).
      'base_model.model.model.embed_tokens.lora_embedding_A': A,
      'base_model.model.model.embed_tokens.lora_embedding_B': B,
    };
    for (const l of [0, 1]) {
      tensors[`base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`] = { shape: [4, 64], data: values(256, 3 + l, 0.1) };
      tensors[`base_model.model.model.layers.${l}.self_attn.q_proj.lora_B.weight`] = { shape: [64, 4], data: values(256, 5 + l, 0.1) };
    }
    const want = referenceDelta(A, B, 12 / 3);

    // inspect, from a real safetensors file.
    const bytes = serializeSafetensors(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }])));
    const st = parseSafetensors(bytes);
    const rep = inspectAdapter({
      path: 'emb',
      weights: { name: 'adapter_model.safetensors', size: bytes.length, head: bytes.subarray(0, 256), header: st.header, values: (n) => st.toFloat32(n) },
      configText: JSON.stringify(cfgJson),
      configName: 'adapter_config.json',
    });
    assert.equal(rep.format, 'peft');
    assert.deepEqual(rep.warnings, []);
    assert.equal(rep.modules.length, 3);
    const emb = rep.modules.find((m) => m.name === 'model.embed_tokens')!;
    assert.equal(emb.embedding, true);
    assert.deepEqual([emb.kind, emb.rank, emb.alpha, emb.scale, emb.paramCount], ['lora', 3, 12, 4, 3 * 256 + 64 * 3]);
    assert.deepEqual(emb.deltaShape, [256, 64]);
    assert.equal(rep.totals.params, 3 * 256 + 64 * 3 + 2 * 2 * 256);
    const dw = deltaW('peft', emb, (n) => st.toFloat32(n));
    assert.deepEqual(dw.shape, [256, 64]);
    assert.ok(maxAbsDiff(dw.data, want) < 1e-6, `inspect ΔW max |Δ| ${maxAbsDiff(dw.data, want)}`);
    const norm = Math.sqrt(want.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(emb.deltaNorm! - norm) < 1e-4 * norm, `‖ΔW‖ ${emb.deltaNorm} vs ${norm}`);

    // attach: equal to the base model with W + ΔW (ΔW from above) and the q_proj LoRA alone.
    const parsed = parsePeftConfig(JSON.stringify(cfgJson));
    const adapterWeights = weightsFromRecord(tensors);
    const { model, adapter, overrides } = loadPeftModel(folder.config, folder.weights, parsed, adapterWeights);
    assert.deepEqual(adapter.embeddings.map((e) => [e.path, e.r, e.scale]), [['model.embed_tokens', 3, 4]]);
    assert.equal(adapter.modules.size, 2);
    assert.ok(!adapter.notes.some((n) => /not targeted/.test(n)), adapter.notes.join('; '));
    const got = logitsOf(model, adapter.lookup);

    const W = folder.weights.get('model.embed_tokens.weight')!;
    const refModel = buildCausalLm(folder.config, overlayWeights(folder.weights, { 'model.embed_tokens.weight': plus(W, want) }));
    const qOnly = parsePeftConfig(JSON.stringify({ ...cfgJson, target_modules: ['q_proj'] }));
    const refAdapter = attachPeftAdapter(refModel, qOnly, weightsFromRecord(Object.fromEntries(Object.entries(tensors).filter(([k]) => k.includes('q_proj')))));
    const ref = logitsOf(refModel, refAdapter.lookup);
    const plain = logitsOf(model, (p) => adapter.modules.get(p));
    assert.ok(maxAbsDiff(got, ref) < 1e-5, `adapted logits max |Δ| ${maxAbsDiff(got, ref)}`);
    const base = buildCausalLm(folder.config, folder.weights);
    assert.ok(maxAbsDiff(logitsOf(base, refAdapter.lookup), got) > 1e-3, 'the embedding LoRA changes the logits');
    assert.ok(maxAbsDiff(plain, got) === 0, 'untied: lm_head has no correction module');

    // merge: the table becomes W + ΔW (written from the overrides).
    assert.ok(maxAbsDiff(overrides['model.embed_tokens.weight'].data, plus(W, want).data) < 1e-6);

    // Attaching to a model built without the adapted table is refused, not silently wrong.
    assert.throws(() => attachPeftAdapter(base, parsed, adapterWeights), (e) => InteropError.is(e, 'bad-config') && /LoRA on the embedding model\.embed_tokens.*loadPeftModel/.test(e.message));
    // Wrong factor shapes name the tensor and both shapes.
    const bad = weightsFromRecord({ ...tensors, 'base_model.model.model.embed_tokens.lora_embedding_B': { shape: [3, 64], data: B.data } });
    assert.throws(() => loadPeftModel(folder.config, folder.weights, parsed, bad), /"base_model\.model\.model\.embed_tokens\.lora_embedding_B" has shape \[3, 64\] but model\.embed_tokens \(256 embeddings of 64, r 3\) needs \[64, 3\]/);
    for (const m of [model, refModel, base]) m.dispose();
    adapter.dispose();
    refAdapter.dispose();
  });

  it('GPT-2 wte tied to lm_head: the input table is adapted, lm_head keeps W (PEFT before merging); merge writes W + ΔW', async () => {
    const folder = await loadHfFolder(path.join(EXAMPLES, 'tiny-gpt2'));
    const cfgJson = { peft_type: 'LORA', r: 2, lora_alpha: 3, target_modules: ['wte', 'c_attn'], fan_in_fan_out: true, use_rslora: true };
    const s = 3 / Math.sqrt(2);
    const A: HostTensor = { shape: [2, 256], data: values(512, 7, 0.3) };
    const B: HostTensor = { shape: [64, 2], data: values(128, 8, 0.3) };
    const tensors: Record<string, HostTensor> = {
      'base_model.model.transformer.wte.lora_embedding_A': A,
      'base_model.model.transformer.wte.lora_embedding_B': B,
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight': { shape: [2, 64], data: values(128, 9, 0.1) },
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight': { shape: [192, 2], data: values(384, 10, 0.1) },
    };
    const want = referenceDelta(A, B, s);
    const parsed = parsePeftConfig(JSON.stringify({ ...cfgJson, layers_to_transform: null }));
    // layers 0 and 1 both have c_attn; only layer 1's factors are in the file -> attach needs both: give layer 0 zeros.
    tensors['base_model.model.transformer.h.0.attn.c_attn.lora_A.weight'] = { shape: [2, 64], data: new Float32Array(128) };
    tensors['base_model.model.transformer.h.0.attn.c_attn.lora_B.weight'] = { shape: [192, 2], data: new Float32Array(384) };
    const { model, adapter, overrides } = loadPeftModel(folder.config, folder.weights, parsed, weightsFromRecord(tensors));
    assert.ok(adapter.notes.some((n) => /lm_head is tied to transformer\.wte/.test(n)), adapter.notes.join('; '));
    const got = logitsOf(model, adapter.lookup);

    // Reference: an untied model whose input table is W + ΔW and whose lm_head is the base W.
    const W = folder.weights.get('transformer.wte.weight')!;
    const untied = { ...folder.config, tieWordEmbeddings: false };
    const refWeights: WeightSource = overlayWeights(folder.weights, { 'transformer.wte.weight': plus(W, want), 'lm_head.weight': W });
    const refModel = buildCausalLm(untied, refWeights);
    const refAdapter = attachPeftAdapter(refModel, parsePeftConfig(JSON.stringify({ ...cfgJson, target_modules: ['c_attn'] })), weightsFromRecord(tensors));
    const ref = logitsOf(refModel, refAdapter.lookup);
    // lm_head computes h·(W + ΔW)ᵀ − s·(h·B)·A: exact up to float32 cancellation (measured 1.6e-5 with this large ΔW).
    const d = maxAbsDiff(got, ref);
    assert.ok(d < 1e-4, `tied GPT-2 adapted logits max |Δ| ${d}`);
    assert.ok(maxAbsDiff(got, logitsOf(model, (p) => adapter.modules.get(p))) > 1e-3, 'without the lm_head correction the logits differ');
    assert.ok(maxAbsDiff(overrides['transformer.wte.weight'].data, plus(W, want).data) < 1e-6);
    for (const m of [model, refModel]) m.dispose();
    adapter.dispose();
    refAdapter.dispose();

    // lora-lab merge: one table (tied), W + ΔW, as PEFT's in-place merge of the shared weight.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-emb-'));
    try {
      const ad = path.join(tmp, 'adapter');
      fs.mkdirSync(ad);
      fs.writeFileSync(path.join(ad, 'adapter_config.json'), JSON.stringify(cfgJson));
      fs.writeFileSync(path.join(ad, 'adapter_model.safetensors'), serializeSafetensors(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }]))));
      const out = path.join(tmp, 'merged');
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'merge', '--model', path.join(EXAMPLES, 'tiny-gpt2'), '--adapter', ad, '--out', out, '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
      assert.equal(r.status, 0, r.stderr);
      const merged = parseSafetensors(fs.readFileSync(path.join(out, 'model.safetensors')));
      assert.ok(!merged.has('lm_head.weight'));
      const dm = maxAbsDiff(merged.toFloat32('transformer.wte.weight'), plus(W, want).data);
      assert.ok(dm < 1e-6, `merged wte max |Δ| ${dm}`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
