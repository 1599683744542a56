// Llama on tfjs, matching transformers' LlamaForCausalLM (v4.39): RMSNorm, rotary embeddings in the
// rotate_half layout, grouped-query attention (num_key_value_heads), SwiGLU MLP, tied or untied lm_head.
import * as tf from '@tensorflow/tfjs-core';
import { scaledMaskedSoftmax } from '../engine/kernels/attentionSoftmax';
import type { Llama3RopeScaling, LlamaConfig } from '../formats/hfConfig';
import { WeightLoader, causalMask, takeEmbedding, tiedHead, type CausalLm, type ForwardOptions } from './causalLm';
import { checkpointBlock } from './checkpoint';
import { applyLinearNd, type LinearLayer, type LoraLookup } from './linear';
import type { WeightSource } from './weights';
import { geluTanh } from '../engine/kernels/gelu';
import { rmsNorm } from '../engine/kernels/norm';
import { rotateHalfMatMul, rotateHalfMatrix } from '../engine/kernels/rope';

interface LlamaLayer {
  inputNorm: tf.Tensor1D;
  postNorm: tf.Tensor1D;
  q: LinearLayer;
  k: LinearLayer;
  v: LinearLayer;
  o: LinearLayer;
  gate: LinearLayer;
  up: LinearLayer;
  down: LinearLayer;
}


/**
 * RoPE's inverse frequencies θ^(−2i/d), i < d/2, in float32 as transformers computes them; with Llama 3's
 * rope_scaling ("llama3"), long wavelengths (> original context / low_freq_factor) are divided by
 * factor, short ones (< original context / high_freq_factor) kept, and those between blended:
 * (1 − t)·f/factor + t·f with t = (original context / wavelength − low) / (high − low).
 */
export function ropeInvFreq(headDim: number, theta: number, llama3?: Llama3RopeScaling): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < out.length; i++) {
    const inv = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
    if (!llama3) {
      out[i] = inv;
      continue;
    }
    const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: ctx } = llama3;
    const wavelen = f(f(2 * Math.PI) / inv);
    if (wavelen < ctx / hi) out[i] = inv;
    else if (wavelen > ctx / lo) out[i] = f(inv / factor);
    else {
      const t = f(f(f(ctx / wavelen) - lo) / (hi - lo));
      // transformers' order of float32 operations: ((1 − t)·inv) / factor + t·inv
      out[i] = f(f(f(f(1 - t) * inv) / factor) + f(t * inv));
    }
  }
  return out;
}

/** cos and sin tables [s, headDim]: emb = cat(freqs, freqs), freqs[p, i] = (p / linearFactor)·invFreq[i]. */
export function ropeTables(s: number, headDim: number, theta: number, linearFactor: number, llama3?: Llama3RopeScaling): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = headDim / 2;
  const cos = new Float32Array(s * headDim);
  const sin = new Float32Array(s * headDim);
  const inv = ropeInvFreq(headDim, theta, llama3);
  for (let i = 0; i < half; i++) {
    const invFreq = inv[i];
    for (let p = 0; p < s; p++) {
      const angle = Math.fround(Math.fround(p / linearFactor) * invFreq);
      const c = Math.cos(angle);
      const sn = Math.sin(angle);
      cos[p * headDim + i] = c;
      cos[p * headDim + i + half] = c;
      sin[p * headDim + i] = sn;
      sin[p * headDim + i + half] = sn;
    }
  }
  return { cos: tf.tensor2d(cos, [s, headDim]), sin: tf.tensor2d(sin, [s, headDim]) };
}

function activation(x: tf.Tensor, act: LlamaConfig['hiddenAct']): tf.Tensor {
  switch (act) {
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
    case 'relu':
      return tf.relu(x);
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
    case 'gelu_new':
      return geluNew(x);
  }
}

/** GPT-2's tanh approximation of GELU ("gelu_new"), with a hand-written gradient (fewer kernels). */
export function geluNew(x: tf.Tensor): tf.Tensor {
  return geluTanh(x);
}

export function buildLlama(config: LlamaConfig, weights: WeightSource, source = 'model.safetensors'): CausalLm {
  const c = config;
  const ld = new WeightLoader(weights, source);
  try {
    const embed = takeEmbedding(ld, 'model.embed_tokens.weight', c.vocabSize, c.hiddenSize); // [V, H]
    const linears = new Map<string, LinearLayer>();
    const layers: LlamaLayer[] = [];
    const qOut = c.numHeads * c.headDim;
    const kvOut = c.numKvHeads * c.headDim;
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      const lin = (name: string, inF: number, outF: number, bias: boolean): LinearLayer => {
        const l = ld.linear(`${p}.${name}`, inF, outF, bias);
        linears.set(l.path, l);
        return l;
      };
      layers.push({
        inputNorm: ld.take(`${p}.input_layernorm.weight`, [c.hiddenSize]).tensor as tf.Tensor1D,
        q: lin('self_attn.q_proj', c.hiddenSize, qOut, c.attentionBias),
        k: lin('self_attn.k_proj', c.hiddenSize, kvOut, c.attentionBias),
        v: lin('self_attn.v_proj', c.hiddenSize, kvOut, c.attentionBias),
        // Qwen2 has biases on q/k/v only; Llama's attention_bias covers o_proj too.
        o: lin('self_attn.o_proj', qOut, c.hiddenSize, c.attentionBias && c.declaredType !== 'qwen2'),
        postNorm: ld.take(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]).tensor as tf.Tensor1D,
        gate: lin('mlp.gate_proj', c.hiddenSize, c.intermediateSize, c.mlpBias),
        up: lin('mlp.up_proj', c.hiddenSize, c.intermediateSize, c.mlpBias),
        down: lin('mlp.down_proj', c.intermediateSize, c.hiddenSize, c.mlpBias),
      });
    }
    const finalNorm = ld.take('model.norm.weight', [c.hiddenSize]).tensor as tf.Tensor1D;
    // Tied checkpoints usually omit lm_head.weight; use the embedding then (as transformers does).
    const tied = c.tieWordEmbeddings || !ld.has('lm_head.weight');
    const lmHead: LinearLayer = tied
      ? tiedHead(embed, c.hiddenSize, c.vocabSize)
      : ld.linear('lm_head', c.hiddenSize, c.vocabSize, false);
    linears.set('lm_head', lmHead);
    if (c.numHeads % c.numKvHeads !== 0 || c.headDim % 2 !== 0) throw new Error('unreachable: checked by parseHfConfig');
    const nRep = c.numHeads / c.numKvHeads;

    // Per sequence length, kept while the model lives: a checkpointed block recomputed in the backward
    // pass needs them after the forward pass's scope has ended.
    const constants = new Map<number, { cos: tf.Tensor2D; sin: tf.Tensor2D; rot: tf.Tensor2D; maskGrouped: tf.Tensor2D }>();
    const constantsFor = (s: number) => {
      let k = constants.get(s);
      if (!k) {
        k = tf.tidy(() => {
          const { cos, sin } = ropeTables(s, c.headDim, c.ropeTheta, c.ropeLinearFactor, c.ropeLlama3); // [s, hd]
          const mask = causalMask(s); // [s, s]
          // rotate_half as one exact product with a ±1 permutation (fewer kernels than split/neg/concat)
          const rot = rotateHalfMatrix(c.headDim); // [hd, hd]
          // Grouped-query attention without repeating k and v: the nRep query heads sharing a kv head
          // are consecutive, so q [b, nh, s, hd] is [b, nkv, nRep·s, hd] as stored, and the causal mask
          // is stacked nRep times. Same products as repeat_interleave, no tile and no tile gradient.
          const maskGrouped = (nRep === 1 ? mask : tf.tile(mask, [nRep, 1])) as tf.Tensor2D; // [nRep·s, s]
          return { cos: tf.keep(cos), sin: tf.keep(sin), rot: tf.keep(rot), maskGrouped: tf.keep(maskGrouped) };
        });
        constants.set(s, k);
      }
      return k;
    };
    const layerPaths = layers.map((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].map((x) => x.path));
    const hidden = (ids: tf.Tensor2D, lora?: LoraLookup, opts: ForwardOptions = {}): tf.Tensor3D =>
      tf.tidy(() => {
        const [b, s] = ids.shape;
        const { cos, sin, rot, maskGrouped } = constantsFor(s);
        let h = embed.rows(ids.reshape([-1])).reshape([b, s, c.hiddenSize]); // [b, s, H]
        const heads = (x: tf.Tensor, n: number) => x.reshape([b, s, n, c.headDim]).transpose([0, 2, 1, 3]) as tf.Tensor4D; // [b, n, s, hd]
        const rope = (x: tf.Tensor4D) => tf.add(tf.mul(x, cos), tf.mul(rotateHalfMatMul(x, rot), sin)) as tf.Tensor4D;
        layers.forEach((layer, i) => {
          const block = (hIn: tf.Tensor, lk?: LoraLookup): tf.Tensor => {
            const L = (l: LinearLayer, x: tf.Tensor) => applyLinearNd(l, x, lk?.(l.path));
            const x = rmsNorm(hIn, layer.inputNorm, c.rmsNormEps); // [b, s, H]
            const q = rope(heads(L(layer.q, x), c.numHeads)).reshape([b, c.numKvHeads, nRep * s, c.headDim]); // [b, nkv, nRep·s, hd]
            const k = rope(heads(L(layer.k, x), c.numKvHeads)); // [b, nkv, s, hd]
            const v = heads(L(layer.v, x), c.numKvHeads); // [b, nkv, s, hd]
            const scores = tf.matMul(q, k, false, true); // [b, nkv, nRep·s, s]
            const att = tf.matMul(scaledMaskedSoftmax(scores, Math.sqrt(c.headDim), maskGrouped), v).reshape([b, c.numHeads, s, c.headDim]); // [b, nh, s, hd]
            const merged = att.transpose([0, 2, 1, 3]).reshape([b, s, c.numHeads * c.headDim]); // [b, s, nh*hd]
            const h1 = tf.add(hIn, L(layer.o, merged));
            const y = rmsNorm(h1, layer.postNorm, c.rmsNormEps);
            const mlp = L(layer.down, tf.mul(activation(L(layer.gate, y), c.hiddenAct), L(layer.up, y))); // [b, s, H]
            return tf.add(h1, mlp);
          };
          h = opts.checkpoint ? checkpointBlock(block, h, lora, layerPaths[i]) : block(h, lora);
        });
        return rmsNorm(h, finalNorm, c.rmsNormEps) as tf.Tensor3D; // [b, s, H]
      });
    const forward = (ids: tf.Tensor2D, lora?: LoraLookup, opts: ForwardOptions = {}): tf.Tensor3D =>
      tf.tidy(() => applyLinearNd(lmHead, hidden(ids, lora, opts), lora?.(lmHead.path)) as tf.Tensor3D); // [b, s, V]

    return {
      config,
      linears,
      usedWeights: ld.used,
      paramCount: ld.paramCount,
      forward,
      hidden,
      dispose: () => {
        for (const k of constants.values()) tf.dispose([k.cos, k.sin, k.rot, k.maskGrouped]);
        constants.clear();
        ld.dispose();
      },
    };
  } catch (e) {
    ld.dispose();
    throw e;
  }
}
