import assert from 'node:assert/strict';
import { linearHoverText, loraLinearHoverText, modelCounts, modelHoverText, scaleText } from '../../../src/insight/hoverText';
import { experimentModelShape, hfModelShape } from '../../../src/insight/modelShapes';
import { hfConfigFromJson } from '../../../src/formats/hfConfig';
import { callAt, intArg } from '../../../src/insight/pythonCalls';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';

describe('insight/hoverText', () => {
  it("reads the LoRA article's worked example exactly: 1,049,600 vs 9,216, 0.88 %, about 114× fewer", () => {
    const t = loraLinearHoverText(1024, 1024, 4);
    assert.match(t, /full fine-tune 1,049,600 vs LoRA 9,216 trainable: 0\.88 %, about 114× fewer \(113\.9×\)/);
    assert.match(t, /A 4×1024 \+ B 1024×4 \+ b 1024 = 9,216/);
    assert.match(t, /Convention: the reference LoRA code's/);
  });

  it('nn.Linear: full count and LoRA table in the PEFT convention', () => {
    const t = linearHoverText(1024, 1024);
    assert.match(t, /\*\*nn\.Linear\(1024, 1024\)\*\* — 1,049,600 parameters/);
    assert.match(t, /\| 4 \| 8,192 \| 0\.78 % \| 128\.1× \|/);
    assert.match(t, /bias frozen/);
    assert.match(linearHoverText(10, 20, false), /— 200 parameters \(W 20×10\)/);
  });

  it('effective scale α/r, α/√r and none', () => {
    assert.equal(scaleText(16, 8, 'standard'), 'effective scale s = α/r = 16/8 = 2');
    assert.match(scaleText(16, 4, 'none'), /^effective scale s = 1 /);
    assert.equal(scaleText(1, 3, 'standard'), 'effective scale s = α/r = 1/3 = 0.3333');
    assert.equal(scaleText(16, 4, 'rslora'), 'effective scale s = α/√r = 16/√4 = 8 (rsLoRA)');
    assert.equal(scaleText(8, 4, 'standard'), 'effective scale s = α/r = 8/4 = 2');
  });

  it('low-rank-recovery config: one layer, whole model = that layer', () => {
    const shape = experimentModelShape({ model: { kind: 'low-rank-recovery', inFeatures: 1024, outFeatures: 1024, trueRank: 4, updateScale: 1, noise: 0 } } as ExperimentConfig)!;
    const input = { shape, r: 4, alpha: 4, scaling: 'standard' as const, targets: ['linear'], trainBias: true, convention: 'seed' as const, focus: 'linear' };
    const c = modelCounts(input);
    assert.equal(c.trainable, 9216);
    assert.equal(c.totalParams, 1_049_600);
    const t = modelHoverText(input);
    assert.match(t, /this layer: `linear` \(1024→1024, bias\): full 1,049,600 vs LoRA 9,216 — 0\.88 %, about 114× fewer/);
    assert.match(t, /whole model: 1,049,600 parameters; trainable 9,216/);
  });

  it('attention-adaptation: W_O trains in full unless LoRA is on o (seed)', () => {
    const shape = experimentModelShape({ model: { kind: 'attention-adaptation', embedDim: 64, numHeads: 1, seqLen: 8, kvSeqLen: 8, trueRank: 2, updateScale: 1 } } as ExperimentConfig)!;
    const c = modelCounts({ shape, r: 2, alpha: 2, scaling: 'standard', targets: ['q', 'k', 'v'], trainBias: false, convention: 'seed' });
    assert.equal(c.loraParams, 3 * (2 * 64 + 64 * 2));
    assert.equal(c.extraTrainable, 64 * 64 + 64);
    assert.equal(c.totalParams, 4 * (64 * 64 + 64));
  });

  it('Llama config: PEFT counts for q_proj,v_proj match the formula', () => {
    const cfg = hfConfigFromJson({ model_type: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false });
    const shape = hfModelShape(cfg);
    // per layer: q 32→32, k 32→16, v 32→16, o 32→32, gate/up 32→64, down 64→32, 2 norms of 32
    const perLayer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64 + 64;
    assert.equal(shape.totalParams, 2 * perLayer + 2 * 100 * 32 + 32);
    const c = modelCounts({ shape, r: 8, alpha: 16, scaling: 'standard', targets: ['q_proj', 'v_proj'], trainBias: false, convention: 'peft' });
    assert.equal(c.adapted.length, 4);
    assert.equal(c.loraParams, 2 * (8 * 32 + 32 * 8) + 2 * (8 * 32 + 16 * 8));
    assert.ok(Math.abs(c.percentOfAll - (100 * c.loraParams) / (shape.totalParams + c.loraParams)) < 1e-12);
    const t = modelHoverText({ shape, r: 8, alpha: 16, scaling: 'standard', targets: ['nope'], trainBias: false, convention: 'peft' });
    assert.match(t, /match no linear layer/);
  });

  it("DoRA: each adapted layer's magnitude vector [out] counts as LoRA-trainable, and the hover says so", () => {
    const cfg = hfConfigFromJson({ model_type: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false });
    const shape = hfModelShape(cfg);
    const input = { shape, r: 8, alpha: 16, scaling: 'standard' as const, targets: ['q_proj', 'v_proj'], trainBias: false, convention: 'peft' as const };
    const ab = 2 * (8 * 32 + 32 * 8) + 2 * (8 * 32 + 16 * 8);
    const magnitude = 2 * 32 + 2 * 16; // lora_magnitude_vector: q_proj [32] and v_proj [16] in each of 2 layers
    const plain = modelCounts(input);
    assert.equal(plain.doraParams, 0);
    assert.equal(plain.loraParams, ab);
    const c = modelCounts({ ...input, useDora: true });
    assert.equal(c.doraParams, magnitude);
    assert.equal(c.loraParams, ab + magnitude);
    assert.equal(c.trainable, ab + magnitude);
    assert.ok(Math.abs(c.percentOfAll - (100 * (ab + magnitude)) / (shape.totalParams + ab + magnitude)) < 1e-12);
    const t = modelHoverText({ ...input, useDora: true });
    assert.match(t, /\*\*LoRA r = 8, α = 16 \+ DoRA\*\*/);
    assert.match(t, new RegExp(`vs LoRA ${(ab + magnitude).toLocaleString('en-US')} \\(A, B ${ab.toLocaleString('en-US')} \\+ DoRA magnitude ${magnitude}\\)`));
    // the per-layer example (q_proj 32→32, r 8): A 8×32 + B 32×8 + magnitude 32 = 544
    assert.match(t, /`model\.layers\.0\.self_attn\.q_proj` \(32→32\): full 1,024 vs LoRA 544 \(incl\. DoRA magnitude 32\) — 53\.13 %/);
    assert.match(t, new RegExp(`trainable ${(ab + magnitude).toLocaleString('en-US')}`));
    assert.match(t, /Convention: PEFT's/);
    assert.doesNotMatch(modelHoverText(input), /DoRA/);
  });
});

describe('insight/pythonCalls', () => {
  const src = 'import torch.nn as nn\nlayer = nn.Linear(1024, 1024)  # base\nlora = LoRALinear(1024, 1024, 4)\ncfg = LoraConfig(\n    r=8,\n    lora_alpha=16,\n    target_modules=["q_proj", "v_proj"],  # attn\n    use_rslora=True,\n)\n';
  it('finds the call under the cursor and reads literal arguments', () => {
    const lin = callAt(src, src.indexOf('Linear(1024') + 3)!;
    assert.equal(lin.callee, 'nn.Linear');
    assert.deepEqual(lin.args, [1024, 1024]);
    const lora = callAt(src, src.indexOf('1024, 4') + 7)!;
    assert.equal(lora.name, 'LoRALinear');
    assert.equal(intArg(lora, 2, 'r'), 4);
    const cfg = callAt(src, src.indexOf('lora_alpha'))!;
    assert.equal(cfg.name, 'LoraConfig');
    assert.equal(cfg.kwargs.r, 8);
    assert.deepEqual(cfg.kwargs.target_modules, ['q_proj', 'v_proj']);
    assert.equal(cfg.kwargs.use_rslora, true);
    assert.equal(callAt(src, src.indexOf('import')), undefined);
  });
  it('reports non-literal arguments as unknown', () => {
    const c = callAt('nn.Linear(d_model, 4 * d_model, bias=False)', 3)!;
    assert.deepEqual(c.args[0], { unknown: 'd_model' });
    assert.equal(c.kwargs.bias, false);
    assert.equal(intArg(c, 0, 'in_features'), undefined);
  });
});
