// Llama 3's rope_scaling ("llama3", Llama 3.1 / 3.2 config.json): the config fields, the scaled inverse
// frequencies against an independent float64 port of Meta's apply_scaling, and the model through the
// real loader at both limits (every wavelength scaled = linear scaling; none = plain RoPE).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { parseHfConfig, type LlamaConfig } from '../../../src/formats/hfConfig';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { ropeInvFreq } from '../../../src/models/llama';
import { PEFT_FIXTURES, maxAbsDiff, useCpu } from './helpers';

// Llama 3.2 1B's config.json values.
const LLAMA32 = { rope_type: 'llama3', factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
const BASE = {
  model_type: 'llama', vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1,
  num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 500000.0,
};

/** Meta's apply_scaling (llama-models), in float64, written independently of src/models/llama.ts. */
function metaApplyScaling(headDim: number, theta: number, s: typeof LLAMA32): number[] {
  const lowWavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const highWavelen = s.original_max_position_embeddings / s.high_freq_factor;
  const out: number[] = [];
  for (let j = 0; j < headDim; j += 2) {
    const freq = 1 / theta ** (j / headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out.push(freq);
    else if (wavelen > lowWavelen) out.push(freq / s.factor);
    else {
      const smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out.push((1 - smooth) * (freq / s.factor) + smooth * freq);
    }
  }
  return out;
}

describe('interop: Llama 3 rope_scaling ("llama3")', () => {
  before(useCpu);

  it('reads the five fields and refuses missing or inconsistent ones, naming the field', () => {
    const c = parseHfConfig(JSON.stringify({ ...BASE, rope_scaling: LLAMA32 })) as LlamaConfig;
    assert.deepEqual(c.ropeLlama3, { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    assert.equal(c.ropeLinearFactor, 1);
    const { low_freq_factor: _omit, ...noLow } = LLAMA32;
    void _omit;
    assert.throws(() => parseHfConfig(JSON.stringify({ ...BASE, rope_scaling: noLow })), /rope_scaling\.low_freq_factor should be a positive number, got undefined/);
    assert.throws(() => parseHfConfig(JSON.stringify({ ...BASE, rope_scaling: { ...LLAMA32, high_freq_factor: 1 } })), /high_freq_factor \(1\) should be greater than low_freq_factor \(1\)/);
    assert.throws(
      () => parseHfConfig(JSON.stringify({ ...BASE, rope_scaling: { rope_type: 'yarn', factor: 4 } })),
      (e: Error) => InteropError.is(e, 'unsupported-model') && /rope_scaling .*"yarn".* is not supported \(only "linear" and "llama3"\)/.test(e.message),
    );
    assert.equal((parseHfConfig(JSON.stringify({ ...BASE, rope_scaling: { type: 'linear', factor: 2 } })) as LlamaConfig).ropeLinearFactor, 2);
  });

  it('scales the inverse frequencies as Meta\'s apply_scaling does (Llama 3.2 1B: head 64, θ 500000), within float32 rounding', () => {
    const ours = ropeInvFreq(64, 500000, { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    const ref = metaApplyScaling(64, 500000, LLAMA32);
    const plain = ropeInvFreq(64, 500000);
    let kept = 0;
    let divided = 0;
    let blended = 0;
    for (let i = 0; i < ref.length; i++) {
      // Ours rounds every step to float32 as transformers does (up to ~6 roundings on a blended value).
      assert.ok(Math.abs(ours[i] - ref[i]) <= 1e-6 * ref[i], `inv_freq[${i}]: ${ours[i]} vs ${ref[i]}`);
      if (ours[i] === plain[i]) kept++;
      else if (Math.abs(ours[i] - plain[i] / 32) <= 1e-7 * ours[i]) divided++;
      else blended++;
    }
    // All three regimes occur with these values: high frequencies kept, low ones ÷ 32, a band blended.
    assert.ok(kept > 0 && divided > 0 && blended > 0, `kept ${kept}, divided ${divided}, blended ${blended}`);
  });

  it('through the model loader: every wavelength above the old context equals linear scaling; none equals plain RoPE', async () => {
    const folder = await loadHfFolder(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'));
    const raw = folder.config.raw;
    const logits = (extra: Record<string, unknown>): Float32Array => {
      const m = buildCausalLm(parseHfConfig(JSON.stringify({ ...raw, ...extra })), folder.weights);
      const ids = idsTensor([[3, 17, 42, 99, 100, 7, 250, 1, 64, 65, 66, 67]], 256);
      const out = m.forward(ids);
      const data = out.dataSync() as Float32Array;
      tf.dispose([ids, out]);
      m.dispose();
      return data;
    };
    const plain = logits({});
    const linear4 = logits({ rope_scaling: { type: 'linear', factor: 4 } });
    // original context 1: every wavelength (≥ 2π) is long, so every frequency is divided by the factor.
    const allScaled = logits({ rope_scaling: { ...LLAMA32, factor: 4, original_max_position_embeddings: 1 } });
    // original context 1e9: every wavelength is short, so nothing changes.
    const noneScaled = logits({ rope_scaling: { ...LLAMA32, factor: 4, original_max_position_embeddings: 1e9 } });
    assert.ok(maxAbsDiff(plain, linear4) > 1e-3, 'linear scaling should change the logits of a 12-token input');
    assert.ok(maxAbsDiff(allScaled, linear4) < 1e-5, `llama3 with all frequencies scaled vs linear: ${maxAbsDiff(allScaled, linear4)}`);
    assert.equal(maxAbsDiff(noneScaled, plain), 0);
  });
});
