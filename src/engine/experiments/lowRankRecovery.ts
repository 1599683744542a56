// `low-rank-recovery`: the intrinsic-rank hypothesis made visible.
// A frozen random layer W [k, d] (N(0, 1/d)) and bias b; the target layer is W* = W + U·V with rank r*
// and ‖U·V‖_F = updateScale·‖W‖_F. Inputs x ~ N(0, 1), targets y = x W*ᵀ + b (+ noise). A LoRA of rank r
// on W learns ΔW: with r ≥ r* the loss falls to ~0 (the noise floor) and s·B·A ≈ U·V; with r < r* it
// plateaus at the energy of U·V's discarded singular values (Eckart–Young).
// Everything random derives from `training.seed`; the held-out set is generated separately.
import * as tf from '@tensorflow/tfjs-core';
import type { ExperimentConfig, LowRankRecoveryModel } from '../../formats/experimentTypes';
import { invalidArgument } from '../errors';
import { LoRALinear } from '../lora';
import { toPlain } from '../namedTensors';
import { Rng, hashInts, streamId } from '../rng';
import { batchIndices, frobenius, gatherRows, lowRankFactors, mse, paramSummary } from './data';
import type { ExperimentTask } from './types';

export interface LrrBatch {
  x: tf.Tensor2D; // [B, d]
  y: tf.Tensor2D; // [B, k]
}

/** Module path of the adapted layer (PEFT key stem). */
export const LRR_MODULE = 'linear';

/** Training pool size: ≥ 2·d rows so ΔW is identifiable, capped to keep memory ≤ ~128 MiB. */
export function lrrPoolSize(d: number, k: number, batchSize: number): number {
  const cap = Math.max(batchSize, Math.floor(2 ** 25 / (d + k)));
  return Math.min(cap, Math.max(4 * batchSize, 2 * d));
}

export function buildLowRankRecovery(config: ExperimentConfig): ExperimentTask<LrrBatch> {
  const m = config.model as LowRankRecoveryModel;
  if (m.kind !== 'low-rank-recovery') throw invalidArgument(`model.kind: expected "low-rank-recovery", got "${m.kind}"`);
  const { inFeatures: d, outFeatures: k, trueRank } = m;
  const { seed, batchSize, evalBatches } = config.training;
  const L = config.lora;
  if (L.r > Math.min(d, k)) throw invalidArgument(`lora.r should be ≤ min(inFeatures, outFeatures) = ${Math.min(d, k)}, got ${L.r}`);
  if (trueRank < 1 || trueRank > Math.min(d, k)) throw invalidArgument(`model.trueRank should be in [1, ${Math.min(d, k)}], got ${trueRank}`);

  const initRng = Rng.derive(seed, 'init');
  const W = initRng.normalArray(k * d, 1 / Math.sqrt(d)); // [k, d]
  const b = initRng.normalArray(k, 0.1); // [k]
  const { UV } = lowRankFactors(k, d, trueRank, m.updateScale * frobenius(W), Rng.derive(seed, 'truth'));
  const layer = new LoRALinear({
    name: LRR_MODULE,
    inFeatures: d,
    outFeatures: k,
    r: L.r,
    alpha: L.alpha,
    scaling: L.scaling,
    dropout: L.dropout,
    init: L.init,
    trainBias: L.trainBias,
    weight: W,
    bias: b,
    rng: Rng.derive(seed, 'lora-init'),
  });

  // Data: x ~ N(0, 1); y = x·W*ᵀ + b + noise, computed on device once.
  const WstarT = tf.tidy(() => tf.transpose(tf.add(tf.tensor2d(W, [k, d]), tf.tensor2d(UV, [k, d])))); // [d, k]
  const bT = tf.tensor1d(b);
  const makeSet = (n: number, stream: string) => {
    const rng = Rng.derive(seed, stream);
    const xs = rng.normalArray(n * d);
    const noise = m.noise > 0 ? rng.normalArray(n * k, m.noise) : undefined;
    return tf.tidy(() => {
      const x = tf.tensor2d(xs, [n, d]); // [n, d]
      let y = tf.add(tf.matMul(x, WstarT as tf.Tensor2D), bT) as tf.Tensor2D; // [n, k]
      if (noise) y = tf.add(y, tf.tensor2d(noise, [n, k]));
      return { x, y };
    });
  };
  const nTrain = lrrPoolSize(d, k, batchSize);
  const trainT = makeSet(nTrain, 'train');
  // The training pool is kept in JS memory; batches are copied out row by row (see gatherRows).
  const train = { x: trainT.x.dataSync() as Float32Array, y: trainT.y.dataSync() as Float32Array };
  tf.dispose([trainT.x, trainT.y]);
  const nEval = Math.max(1, evalBatches) * batchSize;
  const evalSet = makeSet(nEval, 'eval');
  WstarT.dispose();
  bT.dispose();

  const dropoutStream = streamId('dropout');

  return {
    modules: { [LRR_MODULE]: layer },
    variables: Object.fromEntries(Object.entries(layer.trainableVariables()).map(([n, v]) => [`${LRR_MODULE}.${n}`, v])),
    params: paramSummary(k * d + k, { [LRR_MODULE]: layer }),
    nextBatch(u) {
      const idx = batchIndices(seed, u, nTrain, batchSize);
      return { x: tf.tensor2d(gatherRows(train.x, d, idx), [idx.length, d]), y: tf.tensor2d(gatherRows(train.y, k, idx), [idx.length, k]) };
    },
    disposeBatch(batch) {
      tf.dispose([batch.x, batch.y]);
    },
    lossFn(batch, training, u) {
      return mse(layer.apply(batch.x, { training, dropoutSeed: hashInts(seed, dropoutStream, u) }), batch.y);
    },
    async evalLoss() {
      let sum = 0;
      for (let i = 0; i < nEval; i += batchSize) {
        const n = Math.min(batchSize, nEval - i);
        const se = tf.tidy(() => {
          const x = tf.slice(evalSet.x, [i, 0], [n, d]);
          const y = tf.slice(evalSet.y, [i, 0], [n, k]);
          return tf.sum(tf.squaredDifference(layer.apply(x), y));
        });
        sum += (await se.data())[0];
        se.dispose();
      }
      return sum / (nEval * k);
    },
    extraTrainable: () => ({}),
    reference() {
      return {
        true_delta_w: { shape: [k, d], data: UV.slice() },
        base_weight: { shape: [k, d], data: W.slice() },
      };
    },
    dispose() {
      layer.dispose();
      tf.dispose([evalSet.x, evalSet.y]);
    },
  };
}

/** ‖ΔW_learned − U·V‖_F / ‖U·V‖_F: how well the adapter recovered the true update. */
export function recoveryError(layer: LoRALinear, trueDeltaW: Float32Array): number {
  const dW = layer.deltaW();
  const plain = toPlain(dW);
  dW.dispose();
  let num = 0;
  let den = 0;
  for (let i = 0; i < trueDeltaW.length; i++) {
    num += (plain.data[i] - trueDeltaW[i]) ** 2;
    den += trueDeltaW[i] ** 2;
  }
  return Math.sqrt(num / den);
}
