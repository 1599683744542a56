// adapter_config.json semantics as PEFT applies them, and config.json / weight errors of the model loader.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { matchTargetModules, moduleHyper, normalizePeftKey, parsePeftConfig } from '../../../src/formats/peftConfig';
import { parseHfConfig } from '../../../src/formats/hfConfig';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { weightsFromRecord, type HostTensor } from '../../../src/models/weights';
import { encodeBf16, decodeBf16, encodeF16, decodeF16 } from '../../../src/formats/dtype';
import { PEFT_FIXTURES, maxAbsDiff, readReference, useCpu } from './helpers';

const LLAMA = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const paths = [0, 1, 2].flatMap((i) => LLAMA.map((m) => `model.layers.${i}.${m.endsWith('proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}`)).concat('lm_head');
const cfg = (o: Record<string, unknown>) => parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, ...o })).config;

describe('interop: PEFT adapter_config semantics', () => {
  it('target_modules: list (exact or suffix), regex string (full match), all-linear (not lm_head)', () => {
    assert.equal(matchTargetModules(cfg({ target_modules: ['q_proj', 'v_proj'] }), paths).length, 6);
    assert.deepEqual(matchTargetModules(cfg({ target_modules: ['model.layers.1.self_attn.q_proj'] }), paths), ['model.layers.1.self_attn.q_proj']);
    assert.equal(matchTargetModules(cfg({ target_modules: ['proj'] }), paths).length, 0); // suffix match is per name component
    assert.deepEqual(matchTargetModules(cfg({ target_modules: '.*\\.1\\.self_attn\\.(q|v)_proj' }), paths), ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    assert.equal(matchTargetModules(cfg({ target_modules: 'q_proj' }), paths).length, 0); // a regex string must match the whole path
    const all = matchTargetModules(cfg({ target_modules: 'all-linear' }), paths);
    assert.equal(all.length, 21);
    assert.ok(!all.includes('lm_head'));
    assert.equal(matchTargetModules(cfg({ target_modules: ['q_proj'], exclude_modules: ['model.layers.0.self_attn.q_proj'] }), paths).length, 2);
  });

  it('layers_to_transform (int or list, with layers_pattern) narrows list targets only', () => {
    assert.deepEqual(matchTargetModules(cfg({ target_modules: ['q_proj'], layers_to_transform: [0, 2] }), paths), ['model.layers.0.self_attn.q_proj', 'model.layers.2.self_attn.q_proj']);
    assert.deepEqual(matchTargetModules(cfg({ target_modules: ['q_proj'], layers_to_transform: 1, layers_pattern: 'layers' }), paths), ['model.layers.1.self_attn.q_proj']);
    assert.equal(matchTargetModules(cfg({ target_modules: ['q_proj'], layers_to_transform: 1, layers_pattern: 'blocks' }), paths).length, 0);
  });

  it('rank_pattern / alpha_pattern override per module; use_rslora scales by α/√r', () => {
    const c = cfg({ target_modules: ['q_proj', 'v_proj'], rank_pattern: { 'layers\\.1\\.self_attn\\.q_proj': 4 }, alpha_pattern: { v_proj: 32 } });
    assert.deepEqual(moduleHyper(c, 'model.layers.1.self_attn.q_proj'), { r: 4, alpha: 16, scale: 4 });
    assert.deepEqual(moduleHyper(c, 'model.layers.0.self_attn.q_proj'), { r: 8, alpha: 16, scale: 2 });
    assert.deepEqual(moduleHyper(c, 'model.layers.0.self_attn.v_proj'), { r: 8, alpha: 32, scale: 4 });
    assert.equal(moduleHyper(cfg({ use_rslora: true, r: 16, lora_alpha: 8 }), 'x.q_proj').scale, 2);
  });

  it('unknown fields are ignored with a note; old configs default the missing newer keys; peft_type is required', () => {
    const p = parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 4, target_modules: ['q_proj'], shiny_new_option: true, layer_replication: [[0, 2]] }));
    assert.match(p.notes.join('\n'), /unknown field "shiny_new_option" ignored/);
    assert.match(p.notes.join('\n'), /"layer_replication".*not supported/);
    assert.equal(p.config.useDora, false);
    assert.equal(p.config.useRslora, false);
    assert.equal(p.config.bias, 'none');
    assert.throws(() => parsePeftConfig('{"lora_parameters": {"rank": 8}}', 'adapter_config.json'), (e) => InteropError.is(e, 'bad-config') && /no "peft_type"/.test(e.message));
    assert.throws(() => parsePeftConfig('{"peft_type": "LORA", "r": 0}'), /"r" should be a positive integer, got 0/);
    assert.throws(() => parsePeftConfig('{"peft_type": "IA3"}'), /peft_type "IA3" is not supported/);
    // Keys named like Object.prototype's members are unknown fields too (found by the fuzzer: "__proto__" threw a TypeError).
    const proto = parsePeftConfig('{"peft_type": "LORA", "r": 4, "__proto__": false, "toString": 1, "constructor": null}');
    for (const k of ['__proto__', 'toString', 'constructor']) assert.match(proto.notes.join('\n'), new RegExp(`unknown field "${k}" ignored`));
  });

  it('refuses regexes it cannot compile (they would match nothing) and fractional ranks, naming the field', () => {
    const cfg = (extra: object) => JSON.stringify({ peft_type: 'LORA', r: 4, target_modules: ['q_proj'], ...extra });
    assert.throws(() => parsePeftConfig(cfg({ target_modules: '.*(q_proj|v_proj' })), /"target_modules" ".*\(q_proj\|v_proj" is not a regular expression/);
    assert.throws(() => parsePeftConfig(cfg({ rank_pattern: { '[': 8 } })), /"rank_pattern" key "\[" is not a regular expression/);
    assert.throws(() => parsePeftConfig(cfg({ alpha_pattern: { '(?P<x>q)': 8 } })), /"alpha_pattern" key/);
    assert.throws(() => parsePeftConfig(cfg({ rank_pattern: { q_proj: 2.5 } })), /"rank_pattern\.q_proj" should be a positive integer, got 2\.5/);
    assert.equal(parsePeftConfig(cfg({ target_modules: 'all-linear', alpha_pattern: { q_proj: 2.5 } })).config.alphaPattern.q_proj, 2.5);
  });

  it('normalises PEFT keys (wrapper prefix, adapter name, modules_to_save)', () => {
    assert.equal(normalizePeftKey('base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight'), 'model.layers.0.self_attn.q_proj.lora_A.weight');
    assert.equal(normalizePeftKey('base_model.model.x.lora_magnitude_vector.default'), 'x.lora_magnitude_vector');
    assert.equal(normalizePeftKey('base_model.model.score.modules_to_save.default.weight'), 'score.weight');
  });
});

describe('interop: model folders and weights', () => {
  before(useCpu);

  it('refuses unsupported or missing model_type with a clear message', () => {
    assert.throws(() => parseHfConfig('{"model_type": "bert"}', 'cfg.json'), (e) => InteropError.is(e, 'unsupported-model') && /model_type "bert" is not supported/.test(e.message));
    assert.throws(() => parseHfConfig('{"hidden_size": 4}', 'cfg.json'), /no "model_type"/);
    assert.throws(() => parseHfConfig('{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3, "intermediate_size": 8, "num_hidden_layers": 1, "vocab_size": 4}'), /not a multiple of num_key_value_heads 3/);
  });

  it('names a missing tensor and both shapes of a mismatched one', async () => {
    const folder = await loadHfFolder(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'));
    const rec: Record<string, HostTensor> = {};
    for (const n of folder.weights.names()) rec[n] = folder.weights.get(n)!;
    const missing = { ...rec };
    delete missing['model.layers.1.mlp.up_proj.weight'];
    assert.throws(() => buildCausalLm(folder.config, weightsFromRecord(missing), 'm.safetensors'), (e) => InteropError.is(e, 'missing-tensor') && /m\.safetensors: tensor "model\.layers\.1\.mlp\.up_proj\.weight" is missing \(expected shape \[128, 64\]\)/.test(e.message));
    const wrong = { ...rec, 'model.layers.0.self_attn.k_proj.weight': { shape: [64, 64], data: new Float32Array(64 * 64) } };
    assert.throws(() => buildCausalLm(folder.config, weightsFromRecord(wrong), 'm.safetensors'), (e) => InteropError.is(e, 'shape-mismatch') && /"model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[64, 64\] but the config implies \[32, 64\]/.test(e.message));
  });

  it('F16 and BF16 weights load and agree with F32 within their precision', async () => {
    const ref = readReference('llama-tiny-qkvo-r8');
    const folder = await loadHfFolder(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'));
    for (const [name, round, tol] of [['F16', (x: Float32Array) => decodeF16(encodeF16(x)), 2e-3], ['BF16', (x: Float32Array) => decodeBf16(encodeBf16(x)), 2e-2]] as const) {
      const rec: Record<string, HostTensor> = {};
      for (const n of folder.weights.names()) rec[n] = { shape: folder.weights.get(n)!.shape, data: round(folder.weights.get(n)!.data) };
      const m = buildCausalLm(folder.config, weightsFromRecord(rec));
      const logits = tf.tidy(() => m.forward(idsTensor(ref.probe_input_ids, 256)));
      const d = maxAbsDiff(logits.dataSync(), ref.base_logits);
      logits.dispose();
      m.dispose();
      assert.ok(d < tol, `${name}: max |Δ| ${d}`);
    }
  });

  it('tied Llama embeddings: no lm_head.weight, tie_word_embeddings true, same logits as an explicit copy', async () => {
    const folder = await loadHfFolder(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'));
    const rec: Record<string, HostTensor> = {};
    for (const n of folder.weights.names()) if (n !== 'lm_head.weight') rec[n] = folder.weights.get(n)!;
    const tiedCfg = parseHfConfig(JSON.stringify({ ...folder.config.raw, tie_word_embeddings: true }));
    const tied = buildCausalLm(tiedCfg, weightsFromRecord(rec));
    const copy = buildCausalLm(folder.config, weightsFromRecord({ ...rec, 'lm_head.weight': rec['model.embed_tokens.weight'] }));
    assert.equal(tied.paramCount, copy.paramCount - 256 * 64); // a tied weight is counted once
    const ids = idsTensor([[5, 6, 7, 8]], 256);
    const a = tied.forward(ids);
    const b = copy.forward(ids);
    assert.equal(maxAbsDiff(a.dataSync(), b.dataSync()), 0);
    tf.dispose([ids, a, b]);
    tied.dispose();
    copy.dispose();
  });

  it('rejects token ids outside the vocabulary', () => {
    assert.throws(() => idsTensor([[1, 2], [3, 256]], 256), /row 1 position 1 is 256, expected an integer in \[0, 256\)/);
    assert.throws(() => idsTensor([[1, 2], [3]], 256), /row 1 has 1 tokens/);
  });
});
