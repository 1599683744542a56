// GPT-2: forward against an independent float64 numpy implementation (gpt2Reference.py), and PEFT's
// fan_in_fan_out semantics (Conv1D stores W as [in, out]; only ΔW is transposed when merging).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { maxAbsDiff, useCpu } from './helpers';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { peftConfigFromJson } from '../../../src/formats/peftConfig';
import { attachPeftAdapter } from '../../../src/models/peftAdapter';
import { mergeAdapterWeights } from '../../../src/models/merge';
import { weightsFromRecord, type HostTensor } from '../../../src/models/weights';
import { Rng } from '../../../src/engine/rng';

const MODEL = path.resolve(__dirname, '../../../examples/models/tiny-gpt2');
const ref = JSON.parse(fs.readFileSync(path.join(__dirname, 'gpt2Reference.json'), 'utf8')) as { input_ids: number[][]; shape: number[]; logits: number[] };

describe('interop: GPT-2', () => {
  before(useCpu);

  it('logits equal an independent float64 numpy GPT-2 within 1e-4', async () => {
    const folder = await loadHfFolder(MODEL);
    const model = buildCausalLm(folder.config, folder.weights);
    const logits = tf.tidy(() => model.forward(idsTensor(ref.input_ids, 256)));
    assert.deepEqual(logits.shape, ref.shape);
    const d = maxAbsDiff(logits.dataSync(), ref.logits);
    logits.dispose();
    model.dispose();
    assert.ok(d < 1e-4, `max |Δ| ${d}`);
  });

  it('a fan_in_fan_out LoRA on c_attn/c_proj/c_fc: merged weights give the adapted logits', async () => {
    const folder = await loadHfFolder(MODEL);
    const model = buildCausalLm(folder.config, folder.weights);
    const rng = Rng.derive(3, 'gpt2-test');
    const tensors: Record<string, HostTensor> = {};
    for (const [p, layer] of model.linears) {
      if (p === 'lm_head') continue;
      tensors[`base_model.model.${p}.lora_A.weight`] = { shape: [4, layer.inFeatures], data: rng.normalArray(4 * layer.inFeatures, 0.1) };
      tensors[`base_model.model.${p}.lora_B.weight`] = { shape: [layer.outFeatures, 4], data: rng.normalArray(layer.outFeatures * 4, 0.1) };
    }
    const config = peftConfigFromJson({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_proj', 'c_fc'], fan_in_fan_out: true });
    const adapter = attachPeftAdapter(model, config, weightsFromRecord(tensors));
    assert.equal(adapter.modules.size, 8);
    const ids = idsTensor(ref.input_ids, 256);
    const adapted = model.forward(ids, adapter.lookup);
    const base = model.forward(ids);
    const merged = mergeAdapterWeights(model, adapter.modules);
    // Conv1D weights stay [in, out] after merging.
    assert.deepEqual(merged.get('transformer.h.0.attn.c_attn.weight')!.shape, [64, 192]);
    const rec: Record<string, HostTensor> = {};
    for (const n of folder.weights.names()) rec[n] = merged.get(n) ?? folder.weights.get(n)!;
    const m2 = buildCausalLm(folder.config, weightsFromRecord(rec));
    const mergedLogits = m2.forward(ids);
    const d = maxAbsDiff(adapted.dataSync(), mergedLogits.dataSync());
    const change = maxAbsDiff(adapted.dataSync(), base.dataSync());
    tf.dispose([ids, adapted, base, mergedLogits]);
    adapter.dispose();
    model.dispose();
    m2.dispose();
    assert.ok(change > 1e-2, `the adapter changes the logits (${change})`);
    assert.ok(d < 1e-4, `merged vs adapted max |Δ| ${d}`);
  });
});
