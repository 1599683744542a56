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

  it('a fan_in_fan_out LoRA on c_attn/c_proj/c_fc: merge and forward both equal W + s·(B·A)ᵀ computed here in float64', async () => {
    // The oracle is written out in this test with Conv1D's orientation explicit: the base weight is
    // stored [in, out], PEFT's lora_A is [r, in] and lora_B [out, r], so the merged Conv1D weight is
    // W'[i, o] = W[i, o] + s·Σ_k B[o, k]·A[k, i]. c_attn (64→192) and c_fc (64→256) are not square, and
    // on the square c_proj the explicit index order still tells ΔW from ΔWᵀ.
    const folder = await loadHfFolder(MODEL);
    const model = buildCausalLm(folder.config, folder.weights);
    const rng = Rng.derive(3, 'gpt2-test');
    const r = 4;
    const s = 8 / 4;
    const tensors: Record<string, HostTensor> = {};
    const expected = new Map<string, HostTensor>();
    for (const [p] of model.linears) {
      if (p === 'lm_head') continue;
      const w = folder.weights.get(`${p}.weight`)!;
      const [nIn, nOut] = w.shape;
      const a = rng.normalArray(r * nIn, 0.1);
      const b = rng.normalArray(nOut * r, 0.1);
      tensors[`base_model.model.${p}.lora_A.weight`] = { shape: [r, nIn], data: a };
      tensors[`base_model.model.${p}.lora_B.weight`] = { shape: [nOut, r], data: b };
      const merged = new Float32Array(nIn * nOut);
      for (let i = 0; i < nIn; i++) {
        for (let o = 0; o < nOut; o++) {
          let d = 0;
          for (let k = 0; k < r; k++) d += b[o * r + k] * a[k * nIn + i];
          merged[i * nOut + o] = w.data[i * nOut + o] + s * d;
        }
      }
      expected.set(`${p}.weight`, { shape: [nIn, nOut], data: merged });
    }
    assert.deepEqual(
      [...expected].filter(([n]) => /c_attn|c_fc|c_proj/.test(n)).map(([n, t]) => `${n.replace(/^transformer\.h\.\d+\./, '')} ${t.shape.join('×')}`).slice(0, 4),
      ['attn.c_attn.weight 64×192', 'attn.c_proj.weight 64×64', 'mlp.c_fc.weight 64×256', 'mlp.c_proj.weight 256×64'],
    );
    const config = peftConfigFromJson({ peft_type: 'LORA', r, lora_alpha: 8, target_modules: ['c_attn', 'c_proj', 'c_fc'], fan_in_fan_out: true });
    const adapter = attachPeftAdapter(model, config, weightsFromRecord(tensors));
    assert.equal(adapter.modules.size, 8);
    // Merging: each Conv1D weight stays [in, out] and equals the float64 oracle.
    const merged = mergeAdapterWeights(model, adapter.modules);
    assert.equal(merged.size, expected.size);
    for (const [n, want] of expected) {
      const got = merged.get(n);
      assert.ok(got, `${n} not merged`);
      assert.deepEqual(got.shape, want.shape, n);
      const d = maxAbsDiff(got.data, want.data);
      assert.ok(d < 1e-6, `${n}: merged vs float64 W + s·(B·A)ᵀ max |Δ| ${d}`);
    }
    // The adapted forward against a model built from the oracle's merged weights (not from ours).
    const rec: Record<string, HostTensor> = {};
    for (const n of folder.weights.names()) rec[n] = expected.get(n) ?? folder.weights.get(n)!;
    const m2 = buildCausalLm(folder.config, weightsFromRecord(rec));
    const ids = idsTensor(ref.input_ids, 256);
    const adapted = model.forward(ids, adapter.lookup);
    const base = model.forward(ids);
    const oracleLogits = m2.forward(ids);
    const d = maxAbsDiff(adapted.dataSync(), oracleLogits.dataSync());
    const change = maxAbsDiff(adapted.dataSync(), base.dataSync());
    tf.dispose([ids, adapted, base, oracleLogits]);
    adapter.dispose();
    model.dispose();
    m2.dispose();
    assert.ok(change > 1e-2, `the adapter changes the logits (${change})`);
    assert.ok(d < 1e-4, `adapted vs the oracle-merged model max |Δ| ${d}`);
  });
});
