// GPT-2 on tfjs, matching transformers' GPT2LMHeadModel: learned positions, pre-LayerNorm blocks,
// Conv1D weights stored [in, out], gelu_new MLP, lm_head tied to wte. Module paths are PEFT's
// ("transformer.h.0.attn.c_attn") whether or not the checkpoint names carry the "transformer." prefix.
import * as tf from '@tensorflow/tfjs-core';
import { scaledMaskedSoftmax } from '../engine/kernels/attentionSoftmax';
import { InteropError } from '../formats/adapters/interopError';
import type { Gpt2Config } from '../formats/hfConfig';
import { WeightLoader, causalMask, takeEmbedding, tiedHead, type CausalLm, type ForwardOptions } from './causalLm';
import { checkpointBlock } from './checkpoint';
import { geluNew } from './llama';
import { applyLinearNd, type LinearLayer, type LoraLookup } from './linear';
import type { WeightSource } from './weights';
import { layerNorm } from '../engine/kernels/norm';

interface Gpt2Block {
  ln1: [tf.Tensor1D, tf.Tensor1D];
  ln2: [tf.Tensor1D, tf.Tensor1D];
  cAttn: LinearLayer;
  attnProj: LinearLayer;
  cFc: LinearLayer;
  mlpProj: LinearLayer;
}

function lnorm(x: tf.Tensor, [g, b]: [tf.Tensor1D, tf.Tensor1D], eps: number): tf.Tensor {
  return layerNorm(x, g, b, eps);
}

function act(x: tf.Tensor, name: Gpt2Config['activation']): tf.Tensor {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return geluNew(x);
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
    case 'relu':
      return tf.relu(x);
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
  }
}

export function buildGpt2(config: Gpt2Config, weights: WeightSource, source = 'model.safetensors'): CausalLm {
  const c = config;
  const H = c.hiddenSize;
  const ld = new WeightLoader(weights, source, ['transformer.', '']);
  try {
    const wte = takeEmbedding(ld, 'wte.weight', c.vocabSize, H); // [V, H]
    const wpe = ld.take('wpe.weight', [c.maxPositions, H]).tensor as tf.Tensor2D; // [P, H]
    const linears = new Map<string, LinearLayer>();
    const blocks: Gpt2Block[] = [];
    const ln = (name: string): [tf.Tensor1D, tf.Tensor1D] => [
      ld.take(`${name}.weight`, [H]).tensor as tf.Tensor1D,
      ld.take(`${name}.bias`, [H]).tensor as tf.Tensor1D,
    ];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `h.${i}`;
      const conv = (name: string, inF: number, outF: number) => {
        const l = ld.conv1d(`transformer.${p}.${name}`, inF, outF, `${p}.${name}`);
        linears.set(l.path, l);
        return l;
      };
      blocks.push({
        ln1: ln(`${p}.ln_1`),
        cAttn: conv('attn.c_attn', H, 3 * H),
        attnProj: conv('attn.c_proj', H, H),
        ln2: ln(`${p}.ln_2`),
        cFc: conv('mlp.c_fc', H, c.intermediateSize),
        mlpProj: conv('mlp.c_proj', c.intermediateSize, H),
      });
    }
    const lnF = ln('ln_f');
    const untied = !c.tieWordEmbeddings && (weights.stored?.('lm_head.weight') ?? weights.get('lm_head.weight')) !== undefined;
    let lmHead: LinearLayer;
    if (untied) {
      const head = new WeightLoader(weights, source);
      lmHead = head.linear('lm_head', H, c.vocabSize, false);
      ld.tensors.push(...head.tensors);
      ld.used.push(...head.used);
    } else {
      lmHead = tiedHead(wte, H, c.vocabSize);
    }
    linears.set('lm_head', lmHead);
    const count = ld.paramCount + (untied ? H * c.vocabSize : 0);

    // Kept while the model lives: a checkpointed block recomputed in the backward pass needs it after
    // the forward pass's scope has ended.
    const masks = new Map<number, tf.Tensor2D>();
    const maskFor = (s: number): tf.Tensor2D => {
      let m = masks.get(s);
      if (!m) masks.set(s, (m = tf.keep(causalMask(s))));
      return m;
    };
    const blockPaths = blocks.map((blk) => [blk.cAttn, blk.attnProj, blk.cFc, blk.mlpProj].map((l) => l.path));
    const hidden = (ids: tf.Tensor2D, lora?: LoraLookup, opts: ForwardOptions = {}): tf.Tensor3D =>
      tf.tidy(() => {
        const [b, s] = ids.shape;
        if (s > c.maxPositions) throw new InteropError('bad-input', `input ids: sequence length ${s} exceeds the model's n_positions ${c.maxPositions}`);
        const mask = maskFor(s);
        const pos = wpe.slice([0, 0], [s, H]); // [s, H]
        let h = tf.add(wte.rows(ids.reshape([-1])).reshape([b, s, H]), pos); // [b, s, H]
        const heads = (x: tf.Tensor) => x.reshape([b, s, c.numHeads, c.headDim]).transpose([0, 2, 1, 3]); // [b, nh, s, hd]
        blocks.forEach((blk, i) => {
          const block = (hIn: tf.Tensor, lk?: LoraLookup): tf.Tensor => {
            const L = (l: LinearLayer, x: tf.Tensor) => applyLinearNd(l, x, lk?.(l.path));
            const x = lnorm(hIn, blk.ln1, c.layerNormEps);
            const [q, k, v] = tf.split(L(blk.cAttn, x), 3, 2).map(heads); // 3 × [b, nh, s, hd]
            let scores = tf.matMul(q, k, false, true); // [b, nh, s, s]
            if (c.scaleAttnByInverseLayerIdx) scores = tf.div(scores, i + 1);
            const att = tf.matMul(scaledMaskedSoftmax(scores, c.scaleAttnWeights ? Math.sqrt(c.headDim) : 1, mask), v); // [b, nh, s, hd]
            const h1 = tf.add(hIn, L(blk.attnProj, att.transpose([0, 2, 1, 3]).reshape([b, s, H])));
            const y = lnorm(h1, blk.ln2, c.layerNormEps);
            return tf.add(h1, L(blk.mlpProj, act(L(blk.cFc, y), c.activation)));
          };
          h = opts.checkpoint ? checkpointBlock(block, h, lora, blockPaths[i]) : block(h, lora);
        });
        return lnorm(h, lnF, c.layerNormEps) as tf.Tensor3D; // [b, s, H]
      });
    const forward = (ids: tf.Tensor2D, lora?: LoraLookup, opts: ForwardOptions = {}): tf.Tensor3D =>
      tf.tidy(() => applyLinearNd(lmHead, hidden(ids, lora, opts), lora?.(lmHead.path)) as tf.Tensor3D); // [b, s, V]

    return { config, linears, usedWeights: ld.used, paramCount: count, forward, hidden, dispose: () => {
      for (const m of masks.values()) m.dispose();
      masks.clear();
      ld.dispose();
    } };
  } catch (e) {
    ld.dispose();
    throw e;
  }
}
