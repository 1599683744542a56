// The PEFT discrepancies found by loading LoRA Lab's adapters in the real PEFT and PEFT's in LoRA Lab,
// each checked here without Python (the real PEFT checks them too: peftRoundTrip.test.ts):
// bias="all" under base_layer, scaling "none", unconverted PiSSA / OLoRA and the initialisations that
// cannot be reproduced, saved embedding / lm_head copies and resized vocabularies, modules_to_save on a
// tied lm_head, rank_pattern key
// semantics before and from PEFT 0.15, inspect totals and multi-adapter folders.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { maxAbsDiff, useCpu, openCausalLm } from './helpers';
import { loadHfFolder, loadInspectInput, type HfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor, type CausalLm } from '../../../src/models/causalLm';
import { attachPeftAdapter, loadPeftModel } from '../../../src/models/peftAdapter';
import { initHandling, residualWeight, symmetricEigenTridiagonal } from '../../../src/models/loraInit';
import { overlayWeights, weightsFromRecord, type HostTensor } from '../../../src/models/weights';
import { moduleHyper, normalizePeftKey, peftConfigFromJson, resolvePatternSemantics } from '../../../src/formats/peftConfig';
import { serializeSafetensors } from '../../../src/formats/safetensors';
import { inspectAdapter } from '../../../src/formats/adapters/inspect';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { sniffBytes } from '../../../src/formats/adapters/sniff';
import { formatReport } from '../../../src/cli/commands/inspect';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';

const EXAMPLES = path.resolve(__dirname, '../../../examples/models');
const probe = [
  [1, 77, 200, 3, 45, 45, 9, 255],
  [10, 11, 12, 13, 14, 15, 16, 17],
];

/** Deterministic values, different per seed. */
function values(n: number, seed: number, amp: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin(0.37 * i + seed) * Math.cos(0.011 * i * seed));
}

function logitsOf(model: CausalLm, lookup?: Parameters<CausalLm['forward']>[1], rows = probe): Float32Array {
  return tf.tidy(() => model.forward(idsTensor(rows, model.config.vocabSize), lookup).dataSync() as Float32Array);
}

/** LoRA on q_proj / v_proj of tiny-llama's two layers, rank `rankOf(path)`. */
function llamaLora(rankOf: (path: string) => number = () => 4): Record<string, HostTensor> {
  const t: Record<string, HostTensor> = {};
  let seed = 1;
  for (const l of [0, 1]) {
    for (const [m, out] of [['q_proj', 64], ['v_proj', 32]] as const) {
      const p = `model.layers.${l}.self_attn.${m}`;
      const r = rankOf(p);
      t[`base_model.model.${p}.lora_A.weight`] = { shape: [r, 64], data: values(r * 64, seed++, 0.2) };
      t[`base_model.model.${p}.lora_B.weight`] = { shape: [out, r], data: values(out * r, seed++, 0.2) };
    }
  }
  return t;
}

describe('interop: PEFT discrepancies', function () {
  this.timeout(60000);
  let llama: HfFolder;
  let gpt2: HfFolder;
  before(async () => {
    await useCpu();
    llama = await loadHfFolder(path.join(EXAMPLES, 'tiny-llama'));
    gpt2 = await loadHfFolder(path.join(EXAMPLES, 'tiny-gpt2'));
  });

  it('bias="all": "….base_layer.bias" (PEFT up to 0.13) and "….bias" (later) both replace the base bias', () => {
    assert.equal(normalizePeftKey('base_model.model.transformer.h.0.mlp.c_fc.base_layer.bias'), 'transformer.h.0.mlp.c_fc.bias');
    assert.equal(normalizePeftKey('base_model.model.model.embed_tokens.base_layer.weight'), 'model.embed_tokens.weight');
    const cfg = peftConfigFromJson({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['c_fc'], fan_in_fan_out: true, bias: 'all' });
    const lora: Record<string, HostTensor> = {};
    for (const l of [0, 1]) {
      lora[`base_model.model.transformer.h.${l}.mlp.c_fc.lora_A.weight`] = { shape: [2, 64], data: values(128, l + 1, 0.1) };
      lora[`base_model.model.transformer.h.${l}.mlp.c_fc.lora_B.weight`] = { shape: [256, 2], data: values(512, l + 3, 0.1) };
    }
    const bias = values(256, 9, 0.5);
    const withBias = (key: string) => ({ ...lora, [key]: { shape: [256], data: bias } });
    // Reference: the base with the trained bias put in by hand, then the LoRA modules.
    const ref = buildCausalLm(gpt2.config, overlayWeights(gpt2.weights, { 'transformer.h.0.mlp.c_fc.bias': { shape: [256], data: bias } }));
    const refAdapter = attachPeftAdapter(ref, cfg, weightsFromRecord(lora));
    const want = logitsOf(ref, refAdapter.lookup);
    refAdapter.dispose();
    ref.dispose();
    for (const key of ['base_model.model.transformer.h.0.mlp.c_fc.base_layer.bias', 'base_model.model.transformer.h.0.mlp.c_fc.bias']) {
      const { model, adapter, overrides } = loadPeftModel(gpt2.config, gpt2.weights, cfg, weightsFromRecord(withBias(key)));
      assert.deepEqual(Object.keys(overrides), ['transformer.h.0.mlp.c_fc.bias'], key);
      const d = maxAbsDiff(logitsOf(model, adapter.lookup), want);
      adapter.dispose();
      model.dispose();
      assert.ok(d < 1e-6, `${key}: max |Δ| ${d}`);
    }
  });

  it('scaling "none": the causal-LM adapter says lora_alpha = r and reloads with the logits training had', async () => {
    const config: ExperimentConfig = {
      name: 'none',
      kind: 'causal-lm',
      outputDir: 'lora-runs',
      model: { kind: 'causal-lm', modelPath: 'tiny-llama', dataset: { path: 'lora-notes.txt', seqLen: 16, evalFraction: 0.1, tokenizer: 'bytes' } },
      lora: { r: 4, alpha: 16, scaling: 'none', dropout: 0, init: 'kaiming-uniform', targetModules: ['q_proj', 'v_proj'], trainBias: false },
      optimizer: { name: 'adamw', lr: 0.05, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 1 },
      schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
      training: { steps: 2, batchSize: 2, seed: 3, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 0 },
    };
    const s = await openCausalLm(config, EXAMPLES);
    for await (const _ of s.run()) void _;
    const trained = s.logits(probe).data;
    const exported = s.exportAdapter();
    s.dispose();
    assert.equal(exported.config.lora_alpha, 4);
    assert.equal(exported.config.use_rslora, false);
    assert.match(exported.notes!.join('\n'), /scaling "none" trains with scale 1/);
    const { model, adapter } = loadPeftModel(llama.config, llama.weights, peftConfigFromJson(exported.config), weightsFromRecord(exported.tensors));
    assert.equal(adapter.modules.get('model.layers.0.self_attn.q_proj')!.scale, 1);
    const d = maxAbsDiff(logitsOf(model, adapter.lookup), trained);
    adapter.dispose();
    model.dispose();
    assert.ok(d < 1e-5, `reloaded vs trained logits max |Δ| ${d}`);
  });

  it('PiSSA / OLoRA residuals: W − s·B₀A₀ as PEFT initialises it', () => {
    const out = 12;
    const inF = 8;
    const w: HostTensor = { shape: [out, inF], data: values(out * inF, 5, 1) };
    // OLoRA: the first r columns of the residual are (1 − s)·W's; the rest lose s·(their projection).
    const o = residualWeight('olora', w, 3, 2, 'x');
    for (let i = 0; i < out; i++) for (let j = 0; j < 3; j++) assert.ok(Math.abs(o.data[i * inF + j] + w.data[i * inF + j]) < 1e-5);
    // PiSSA: the residual is W minus its best rank-r approximation, so W − residual has rank r and the
    // residual is orthogonal to it (Frobenius inner product 0), for any scale.
    const p = residualWeight('pissa', w, 3, 7, 'x');
    const low = w.data.map((x, i) => x - p.data[i]);
    let dot = 0;
    for (let i = 0; i < low.length; i++) dot += low[i] * p.data[i];
    assert.ok(Math.abs(dot) < 1e-4, `⟨W_r, W − W_r⟩ = ${dot}`);
    assert.throws(() => residualWeight('pissa', w, 9, 1, 'layer.x'), /layer\.x: r 9 is larger than the weight's smaller side 8/);
    // The eigensolver behind it: S = V·diag(λ)·Vᵀ with orthonormal V, for sizes around its special cases.
    for (const n of [1, 2, 7, 40]) {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = Math.sin(i * 31 + j * 17 + i * j);
      const { values: lam, vectors: v } = symmetricEigenTridiagonal(a, n);
      let rec = 0;
      let orth = 0;
      for (let r = 0; r < n; r++)
        for (let c = 0; c < n; c++) {
          let sum = 0;
          let dot = 0;
          for (let k = 0; k < n; k++) {
            sum += v[r * n + k] * lam[k] * v[c * n + k];
            dot += v[k * n + r] * v[k * n + c];
          }
          rec = Math.max(rec, Math.abs(sum - a[r * n + c]));
          orth = Math.max(orth, Math.abs(dot - (r === c ? 1 : 0)));
        }
      assert.ok(rec < 1e-12 && orth < 1e-12, `n ${n}: reconstruction ${rec}, orthogonality ${orth}`);
    }
  });

  it('PiSSA: loading an unconverted adapter replaces the adapted layers\' base by the residual, attaching alone refuses', () => {
    const cfgJson = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: 'pissa' };
    const tensors = llamaLora();
    const { model, adapter, overrides } = loadPeftModel(llama.config, llama.weights, peftConfigFromJson(cfgJson), weightsFromRecord(tensors));
    assert.deepEqual(Object.keys(overrides).sort(), ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.v_proj.weight']);
    assert.match(adapter.notes.join('\n'), /init_lora_weights "pissa": the base weights of the 4 adapted layer\(s\) were replaced by the residual/);
    const got = logitsOf(model, adapter.lookup);
    adapter.dispose();
    model.dispose();
    // The same logits as a plain adapter on a base that already holds the residuals.
    const residualBase = buildCausalLm(llama.config, overlayWeights(llama.weights, overrides));
    const plain = attachPeftAdapter(residualBase, peftConfigFromJson({ ...cfgJson, init_lora_weights: true }), weightsFromRecord(tensors));
    assert.ok(maxAbsDiff(got, logitsOf(residualBase, plain.lookup)) < 1e-6);
    assert.throws(
      () => attachPeftAdapter(residualBase, peftConfigFromJson(cfgJson), weightsFromRecord(tensors)),
      (e) => InteropError.is(e, 'bad-config') && /init_lora_weights "pissa" needs the base weights replaced by PEFT's residual/.test(e.message),
    );
    plain.dispose();
    residualBase.dispose();
  });

  it('init_lora_weights that cannot be reproduced are refused with how to convert; EVA applies as saved', () => {
    const cfg = (init: unknown) => peftConfigFromJson({ peft_type: 'LORA', r: 4, target_modules: ['q_proj'], init_lora_weights: init }).config;
    for (const [init, why] of [
      ['pissa_niter_4', /randomized SVD/],
      ['loftq', /quantised residual \(bitsandbytes\)/],
      ['corda', /activation covariances/],
      ['orthogonal', /not supported here/],
    ] as const) {
      assert.throws(
        () => initHandling(cfg(init), 'a/adapter_config.json'),
        (e) => InteropError.is(e, 'bad-config') && e.message.startsWith(`a/adapter_config.json: init_lora_weights "${init}"`) && why.test(e.message) && /path_initial_model_for_weight_conversion/.test(e.message),
      );
    }
    assert.deepEqual(initHandling(cfg('gaussian')), { kind: 'plain' });
    assert.match((initHandling(cfg('eva')) as { note: string }).note, /left the base weights unchanged/);
    assert.throws(() => loadPeftModel(llama.config, llama.weights, peftConfigFromJson({ peft_type: 'LORA', r: 4, target_modules: ['q_proj', 'v_proj'], init_lora_weights: 'loftq' }), weightsFromRecord(llamaLora())), /LoftQ/);
  });

  it('saved token table and lm_head with a resized vocabulary build the model with it; inconsistent copies are refused', () => {
    const cfg = peftConfigFromJson({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    const emb = llama.weights.get('model.embed_tokens.weight')!;
    const head = llama.weights.get('lm_head.weight')!;
    const grow = (t: HostTensor, seed: number): HostTensor => {
      const data = new Float32Array(272 * 64);
      data.set(t.data);
      data.set(values(16 * 64, seed, 0.02), 256 * 64);
      return { shape: [272, 64], data };
    };
    const tensors = { ...llamaLora(), 'base_model.model.model.embed_tokens.weight': grow(emb, 1), 'base_model.model.lm_head.weight': grow(head, 2) };
    const { model, adapter } = loadPeftModel(llama.config, llama.weights, cfg, weightsFromRecord(tensors));
    assert.equal(model.config.vocabSize, 272);
    assert.match(adapter.notes.join('\n'), /resized vocabulary: 272 tokens instead of the base model's 256/);
    const logits = logitsOf(model, adapter.lookup, [[270, 1, 2]]);
    assert.equal(logits.length, 3 * 272);
    adapter.dispose();
    model.dispose();
    const onlyEmb = { ...llamaLora(), 'base_model.model.model.embed_tokens.base_layer.weight': grow(emb, 1) };
    assert.throws(() => loadPeftModel(llama.config, llama.weights, cfg, weightsFromRecord(onlyEmb)), (e) => InteropError.is(e, 'shape-mismatch') && /token table "model\.embed_tokens\.weight" has 272 rows \(the base has 256\) but it has no lm_head\.weight/.test(e.message));
  });

  it('modules_to_save on GPT-2\'s tied lm_head: the saved copy unties the output layer (logits and merge config)', () => {
    const cfg = peftConfigFromJson({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['c_attn'], fan_in_fan_out: true, modules_to_save: ['lm_head'] });
    const wte = gpt2.weights.get('transformer.wte.weight') ?? gpt2.weights.get('wte.weight')!;
    const head: HostTensor = { shape: [...wte.shape], data: wte.data.map((v, i) => v + 0.05 * Math.sin(i)) };
    const lora: Record<string, HostTensor> = {};
    for (const l of [0, 1]) {
      lora[`base_model.model.transformer.h.${l}.attn.c_attn.lora_A.weight`] = { shape: [2, 64], data: values(128, l + 1, 0.1) };
      lora[`base_model.model.transformer.h.${l}.attn.c_attn.lora_B.weight`] = { shape: [192, 2], data: values(384, l + 3, 0.1) };
    }
    const { model, adapter } = loadPeftModel(gpt2.config, gpt2.weights, cfg, weightsFromRecord({ ...lora, 'base_model.model.lm_head.weight': head }));
    assert.equal(model.config.tieWordEmbeddings, false);
    assert.match(adapter.notes.join('\n'), /saves its own lm_head .* untied from the token table/);
    const got = logitsOf(model, adapter.lookup);
    adapter.dispose();
    model.dispose();
    const ref = buildCausalLm({ ...gpt2.config, tieWordEmbeddings: false }, overlayWeights(gpt2.weights, { 'lm_head.weight': head }));
    const refAdapter = attachPeftAdapter(ref, cfg, weightsFromRecord(lora));
    assert.ok(maxAbsDiff(got, logitsOf(ref, refAdapter.lookup)) < 1e-6);
    refAdapter.dispose();
    ref.dispose();
    // A saved copy equal to the table (a tied model's resized vocabulary) keeps it tied.
    const same = loadPeftModel(gpt2.config, gpt2.weights, cfg, weightsFromRecord({ ...lora, 'base_model.model.lm_head.weight': wte }));
    assert.equal(same.model.config.tieWordEmbeddings, true);
    same.adapter.dispose();
    same.model.dispose();
  });

  it('rank_pattern: PEFT 0.13\'s "^…" key, the saving version, and contradictions no version explains', () => {
    const raw = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], rank_pattern: { '^model.layers.0.*q_proj': 8 } };
    const q0 = 'model.layers.0.self_attn.q_proj';
    // The same config, two meanings: PEFT before 0.15 never matches a "^" key after ".*\.".
    assert.equal(moduleHyper(peftConfigFromJson(raw).config, q0, 'before-0.15').r, 4);
    assert.equal(moduleHyper(peftConfigFromJson(raw).config, q0, 'from-0.15').r, 8);
    // Saved by 0.13 (rank-4 tensors): loads, with rank 4 and α/r = 2.
    const saved13 = loadPeftModel(llama.config, llama.weights, peftConfigFromJson(raw), weightsFromRecord(llamaLora()));
    assert.equal(saved13.adapter.modules.get(q0)!.r, 4);
    assert.equal(saved13.adapter.modules.get(q0)!.scale, 2);
    assert.match(saved13.adapter.notes.join('\n'), /match as PEFT before 0\.15/);
    saved13.adapter.dispose();
    saved13.model.dispose();
    // Saved by 0.15+ (rank 8 on layer 0's q_proj): loads too, with that rank.
    const r8 = llamaLora((p) => (p === q0 ? 8 : 4));
    const saved15 = loadPeftModel(llama.config, llama.weights, peftConfigFromJson({ ...raw, peft_version: '0.15.2' }), weightsFromRecord(r8));
    assert.equal(saved15.adapter.modules.get(q0)!.r, 8);
    saved15.adapter.dispose();
    saved15.model.dispose();
    // peft_version says 0.15 but the tensors are 0.13's: PEFT 0.15 refuses it, so does LoRA Lab.
    assert.throws(() => loadPeftModel(llama.config, llama.weights, peftConfigFromJson({ ...raw, peft_version: '0.15.2' }), weightsFromRecord(llamaLora())), (e) => InteropError.is(e, 'shape-mismatch') && /give r = 8 for model\.layers\.0\.self_attn\.q_proj, but its lora_A has rank 4 \(keys matched as PEFT 0\.15\.2/.test(e.message));
    // A contradiction under every version's rules (once silently loaded with the wrong scale).
    assert.throws(
      () => loadPeftModel(llama.config, llama.weights, peftConfigFromJson({ ...raw, rank_pattern: { q_proj: 1000000000 } }), weightsFromRecord(llamaLora())),
      (e) => InteropError.is(e, 'shape-mismatch') && /r = 1000000000 for model\.layers\.0\.self_attn\.q_proj, but its lora_A has rank 4 under the pattern rules of every PEFT version; PEFT refuses this adapter too/.test(e.message),
    );
    assert.throws(() => resolvePatternSemantics(peftConfigFromJson({ ...raw, rank_pattern: {}, r: 8 }).config, [[q0, 4]]), /"r" gives r = 8/);
  });

  it('sniff: a safetensors header of 640…1408 bytes is not taken for a pickle (same first bytes)', () => {
    const st = Uint8Array.from([0x80, 0x02, 0, 0, 0, 0, 0, 0, 0x7b]);
    assert.equal(sniffBytes(st, 8 + 640 + 16), 'safetensors');
    assert.equal(sniffBytes(Uint8Array.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x05, 0x00]), 4096), 'pickle');
  });

  it('inspect: totals count modules_to_save copies and saved biases; a multi-adapter root lists its adapters', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-inspect-'));
    try {
      const f32 = (shape: number[]) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
      const write = (dir: string, cfg: Record<string, unknown>, tensors: Record<string, ReturnType<typeof f32>>) => {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, ...cfg }));
        fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors));
      };
      const lora = {
        'base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight': f32([2, 64]),
        'base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight': f32([256, 2]),
      };
      write(tmp, { target_modules: ['c_fc'], bias: 'all', modules_to_save: ['score'] }, {
        ...lora,
        'base_model.model.transformer.h.0.mlp.c_fc.base_layer.bias': f32([256]),
        'base_model.model.transformer.h.0.ln_1.bias': f32([64]),
        'base_model.model.score.weight': f32([3, 64]),
        // A resized vocabulary's copy is saved but not trained: PEFT does not count it.
        'base_model.model.transformer.wte.weight': f32([260, 64]),
      });
      write(path.join(tmp, 'second'), { target_modules: ['c_fc'] }, lora);
      write(path.join(tmp, 'third'), { target_modules: ['c_fc'] }, lora);
      const rep = inspectAdapter(await loadInspectInput(tmp));
      // This file's header happens to be 640 bytes (0x0280): its first bytes look like a pickle's magic.
      assert.equal(fs.readFileSync(path.join(tmp, 'adapter_model.safetensors')).readUInt32LE(0), 640);
      assert.deepEqual(rep.errors, []);
      assert.equal(rep.totals.savedParams, 256 + 64 + 3 * 64);
      assert.equal(rep.totals.params, 2 * 64 + 256 * 2 + 256 + 64 + 3 * 64);
      assert.deepEqual(rep.adapters?.map((a) => a.name), ['second', 'third']);
      // A root holding only subfolders is a multi-adapter folder, not an error.
      fs.rmSync(path.join(tmp, 'adapter_model.safetensors'));
      fs.rmSync(path.join(tmp, 'adapter_config.json'));
      const root = inspectAdapter(await loadInspectInput(tmp));
      assert.deepEqual(root.errors, []);
      assert.match(root.baseModelStatement, /A PEFT multi-adapter folder: 2 adapter\(s\) in subfolders \(second, third\)/);
      const text = formatReport(root, false);
      assert.match(text, /format: +PEFT multi-adapter folder/);
      assert.match(text, /adapters: +2 in subfolders/);
      assert.match(text, /\n +third\//);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
