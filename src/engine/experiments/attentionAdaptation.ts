// `attention-adaptation`: an attention student learns a teacher whose W_Q, W_K, W_V differ from the
// student's frozen ones by low-rank updates (rank r*, ‖U·V‖_F = updateScale·‖W‖_F each).
// numHeads = 1: the seed's LoRAAttention (LoRA on Q, K, V; W_O trainable, as in the seed).
// numHeads > 1: MultiHeadLoRAAttention with LoRA on `lora.targetModules` (q, k, v, o; "q_proj" etc. accepted).
// Inputs ~ N(0, 1); self-attention (key = value = query) when kvSeqLen = seqLen, else cross-attention on a
// separate key/value memory. Targets are the teacher's outputs, computed once. Loss: MSE.
import * as tf from '@tensorflow/tfjs-core';
import { attentionProjectionOf } from '../../formats/attentionTargets';
import type { AttentionAdaptationModel, ExperimentConfig } from '../../formats/experimentTypes';
import { LoRAAttention, MultiHeadLoRAAttention, PROJECTIONS, randomAttentionWeights, type AttentionWeights, type Projection } from '../attention';
import { invalidArgument } from '../errors';
import type { LoRALinear } from '../lora';
import type { NamedTensors } from '../namedTensors';
import { Rng, hashInts, streamId } from '../rng';
import { batchIndices, frobenius, gatherRows, lowRankFactors, mse, paramSummary } from './data';
import type { ExperimentTask } from './types';

export interface AttnBatch {
  query: tf.Tensor3D; // [B, T, E]
  kv: tf.Tensor3D; // [B, S, E] (the same tensor as query for self-attention)
  target: tf.Tensor3D; // [B, T, E]
}

/** Module path prefix of the adapted attention block (PEFT key stem "attention.q", ...). */
export const ATTN_MODULE = 'attention';

/** "q", "q_proj", "attention.q_proj" → "q"; anything else is an error naming the value. */
export function projectionOf(name: string): Projection {
  const p = attentionProjectionOf(name);
  if (!p) throw invalidArgument(`lora.targetModules: "${name}" is not an attention projection (q, k, v, o or q_proj, …)`);
  return p;
}

export function buildAttentionAdaptation(config: ExperimentConfig): ExperimentTask<AttnBatch> {
  const m = config.model as AttentionAdaptationModel;
  if (m.kind !== 'attention-adaptation') throw invalidArgument(`model.kind: expected "attention-adaptation", got "${m.kind}"`);
  const E = m.embedDim;
  const T = m.seqLen;
  const S = m.kvSeqLen;
  const self = S === T;
  const { seed, batchSize, evalBatches } = config.training;
  const L = config.lora;
  if (L.r > E) throw invalidArgument(`lora.r should be ≤ embedDim = ${E}, got ${L.r}`);

  const base = randomAttentionWeights(E, Rng.derive(seed, 'init'));
  const truthRng = Rng.derive(seed, 'truth');
  const teacherW: AttentionWeights = { ...base };
  const truth: NamedTensors = {};
  for (const p of ['q', 'k', 'v'] as const) {
    const { UV } = lowRankFactors(E, E, m.trueRank, m.updateScale * frobenius(base[p].weight), truthRng);
    teacherW[p] = { weight: base[p].weight.map((w, i) => w + UV[i]), bias: base[p].bias };
    truth[`true_delta_w.${p}`] = { shape: [E, E], data: UV };
    truth[`base_weight.${p}`] = { shape: [E, E], data: base[p].weight.slice() };
  }

  const loraRng = Rng.derive(seed, 'lora-init');
  const hyper = { name: ATTN_MODULE, r: L.r, alpha: L.alpha, scaling: L.scaling, dropout: L.dropout, init: L.init };
  let student: LoRAAttention | MultiHeadLoRAAttention;
  let teacher: LoRAAttention | MultiHeadLoRAAttention;
  const modules: Record<string, LoRALinear> = {};
  let extraTrainableCount = 0;
  if (m.numHeads === 1) {
    const s = new LoRAAttention({ embedDim: E, weights: base, rng: loraRng, ...hyper });
    student = s;
    teacher = new LoRAAttention({ embedDim: E, weights: teacherW, r: 1 }); // B = 0: plain attention with W*
    for (const p of ['q', 'k', 'v'] as const) modules[`${ATTN_MODULE}.${p}`] = s[p];
    extraTrainableCount = E * E + E; // the seed's trainable W_O
  } else {
    const targets = [...new Set(L.targetModules.map(projectionOf))];
    if (targets.length === 0) throw invalidArgument('lora.targetModules: name at least one of q, k, v, o');
    const s = new MultiHeadLoRAAttention({ embedDim: E, numHeads: m.numHeads, targets, weights: base, trainBias: L.trainBias, rng: loraRng, ...hyper });
    student = s;
    teacher = new MultiHeadLoRAAttention({ embedDim: E, numHeads: m.numHeads, targets: [], weights: teacherW, r: 1 });
    for (const [p, mod] of s.loraModules()) modules[`${ATTN_MODULE}.${p}`] = mod;
  }

  const makeSet = (n: number, stream: string) => {
    const rng = Rng.derive(seed, stream);
    const q = rng.normalArray(n * T * E);
    const kvData = self ? undefined : rng.normalArray(n * S * E);
    const query = tf.tensor3d(q, [n, T, E]);
    const kv = kvData ? tf.tensor3d(kvData, [n, S, E]) : query;
    const chunks: tf.Tensor3D[] = [];
    for (let i = 0; i < n; i += batchSize) {
      const c = Math.min(batchSize, n - i);
      chunks.push(
        tf.tidy(() => {
          const qi = tf.slice(query, [i, 0, 0], [c, T, E]) as tf.Tensor3D;
          const ki = self ? qi : (tf.slice(kv, [i, 0, 0], [c, S, E]) as tf.Tensor3D);
          return teacher.apply(qi, ki, ki);
        }),
      );
    }
    const target = tf.concat(chunks, 0) as tf.Tensor3D;
    tf.dispose(chunks);
    return { query, kv, target, n };
  };
  const nTrain = Math.max(8 * batchSize, 256);
  const train = makeSet(nTrain, 'train');
  const evalSet = makeSet(Math.max(1, evalBatches) * batchSize, 'eval');
  teacher.dispose();

  const dropoutStream = streamId('dropout');
  const variables = Object.fromEntries(Object.entries(student.trainableVariables()).map(([n, v]) => [`${ATTN_MODULE}.${n}`, v]));

  // The training pool moves to JS memory; batches are copied out row by row (see gatherRows).
  const pool = { query: train.query.dataSync() as Float32Array, kv: self ? undefined : (train.kv.dataSync() as Float32Array), target: train.target.dataSync() as Float32Array };
  tf.dispose(self ? [train.query, train.target] : [train.query, train.kv, train.target]);

  return {
    modules,
    variables,
    params: paramSummary(4 * (E * E + E), modules, extraTrainableCount),
    nextBatch(u) {
      const idx = batchIndices(seed, u, nTrain, batchSize);
      const n = idx.length;
      const query = tf.tensor3d(gatherRows(pool.query, T * E, idx), [n, T, E]);
      const kv = pool.kv ? tf.tensor3d(gatherRows(pool.kv, S * E, idx), [n, S, E]) : query;
      return { query, kv, target: tf.tensor3d(gatherRows(pool.target, T * E, idx), [n, T, E]) };
    },
    disposeBatch(b) {
      tf.dispose(b.kv === b.query ? [b.query, b.target] : [b.query, b.kv, b.target]);
    },
    lossFn(b, training, u) {
      return mse(student.apply(b.query, b.kv, b.kv, { training, dropoutSeed: hashInts(seed, dropoutStream, u) }), b.target);
    },
    async evalLoss() {
      let sum = 0;
      for (let i = 0; i < evalSet.n; i += batchSize) {
        const c = Math.min(batchSize, evalSet.n - i);
        const se = tf.tidy(() => {
          const q = tf.slice(evalSet.query, [i, 0, 0], [c, T, E]) as tf.Tensor3D;
          const kv = self ? q : (tf.slice(evalSet.kv, [i, 0, 0], [c, S, E]) as tf.Tensor3D);
          const y = tf.slice(evalSet.target, [i, 0, 0], [c, T, E]);
          return tf.sum(tf.squaredDifference(student.apply(q, kv, kv), y));
        });
        sum += (await se.data())[0];
        se.dispose();
      }
      return sum / (evalSet.n * T * E);
    },
    extraTrainable(): Record<string, tf.Tensor> {
      if (!(student instanceof LoRAAttention)) return {};
      return { [`${ATTN_MODULE}.o.weight`]: student.outputWeight(), [`${ATTN_MODULE}.o.bias`]: tf.clone(student.bo) };
    },
    reference: () => ({ ...truth }),
    dispose() {
      student.dispose();
      tf.dispose(self ? [evalSet.query, evalSet.target] : [evalSet.query, evalSet.kv, evalSet.target]);
    },
  };
}

export { PROJECTIONS };
