// A causal language model built from a Hugging Face config + weights: the common interface of
// llama.ts and gpt2.ts, the weight loader that names missing tensors and wrong shapes, and the loss.
import * as tf from '@tensorflow/tfjs-core';
// Method-style ops (x.reshape(...)) need their prototype patches; tfjs-core alone does not install them.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
// Gradients of the built-in ops (training backpropagates through the whole transformer).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import type { HfModelConfig } from '../formats/hfConfig';
import { InteropError } from '../formats/adapters/interopError';
import type { LinearLayer, LoraLookup } from './linear';
import { numel, shapeText, type WeightSource } from './weights';
import { causalLabels, chunkedCrossEntropy } from '../engine/crossEntropy';

export interface CausalLm {
  readonly config: HfModelConfig;
  /** Every linear layer, by PEFT module path, in model order (lm_head last). */
  readonly linears: Map<string, LinearLayer>;
  /** Names of the checkpoint tensors the model used. */
  readonly usedWeights: string[];
  /** Parameters of the base model, counting tied weights once (PEFT's all_params minus LoRA). */
  readonly paramCount: number;
  /** ids: [batch][seq] token ids -> logits [batch, seq, vocab]. */
  forward(ids: tf.Tensor2D, lora?: LoraLookup, opts?: ForwardOptions): tf.Tensor3D;
  /** ids -> what the output layer (linears.get("lm_head")) reads: the final norm's output [batch, seq, hidden]. */
  hidden(ids: tf.Tensor2D, lora?: LoraLookup, opts?: ForwardOptions): tf.Tensor3D;
  dispose(): void;
}

export interface ForwardOptions {
  /** Recompute each transformer block in the backward pass instead of keeping its activations. */
  checkpoint?: boolean;
}

/** Pulls tensors out of a WeightSource, checking each shape against what the config implies. */
export class WeightLoader {
  readonly used: string[] = [];
  readonly tensors: tf.Tensor[] = [];
  private count = 0;
  private readonly seen = new Set<string>();

  constructor(
    readonly weights: WeightSource,
    readonly source: string,
    /** Prefixes to try in front of each name (GPT-2 checkpoints come with or without "transformer."). */
    readonly prefixes: string[] = [''],
  ) {}

  resolve(name: string): string | undefined {
    for (const p of this.prefixes) {
      if (this.weights.get(p + name)) return p + name;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  take(name: string, shape: number[]): { tensor: tf.Tensor; stored: string } {
    const stored = this.resolve(name);
    if (stored === undefined) {
      throw new InteropError(
        'missing-tensor',
        `${this.source}: tensor "${this.prefixes[0] + name}" is missing (expected shape ${shapeText(shape)})`,
        this.source,
      );
    }
    const t = this.weights.get(stored)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new InteropError(
        'shape-mismatch',
        `${this.source}: tensor "${stored}" has shape ${shapeText(t.shape)} but the config implies ${shapeText(shape)}`,
        this.source,
      );
    }
    if (t.data.length !== numel(shape)) {
      throw new InteropError('shape-mismatch', `${this.source}: tensor "${stored}" holds ${t.data.length} values, shape ${shapeText(shape)} needs ${numel(shape)}`, this.source);
    }
    if (!this.seen.has(stored)) {
      this.seen.add(stored);
      this.used.push(stored);
      this.count += numel(shape);
    }
    const tensor = tf.tensor(t.data, shape, 'float32');
    this.tensors.push(tensor);
    return { tensor, stored };
  }

  /** A Linear stored [out, in] (torch) -> LinearLayer with Wᵀ. */
  linear(path: string, inF: number, outF: number, bias: boolean, weightBase = path): LinearLayer {
    const { tensor, stored } = this.take(`${weightBase}.weight`, [outF, inF]);
    const wt = tf.transpose(tensor) as tf.Tensor2D; // [in, out]
    this.tensors.push(wt);
    tensor.dispose();
    const b = bias ? this.take(`${weightBase}.bias`, [outF]) : undefined;
    return { path, weightName: stored, biasName: b?.stored, inFeatures: inF, outFeatures: outF, conv1d: false, wt, bias: b?.tensor as tf.Tensor1D | undefined };
  }

  /** A GPT-2 Conv1D stored [in, out]. */
  conv1d(path: string, inF: number, outF: number, weightBase: string): LinearLayer {
    const { tensor, stored } = this.take(`${weightBase}.weight`, [inF, outF]);
    const b = this.take(`${weightBase}.bias`, [outF]);
    return { path, weightName: stored, biasName: b.stored, inFeatures: inF, outFeatures: outF, conv1d: true, wt: tensor as tf.Tensor2D, bias: b.tensor as tf.Tensor1D };
  }

  get paramCount(): number {
    return this.count;
  }

  dispose(): void {
    for (const t of this.tensors) t.dispose();
  }
}

/** Causal mask added to attention scores: 0 on and below the diagonal, a large negative above. [s, s] */
export function causalMask(s: number): tf.Tensor2D {
  return tf.tidy(() => {
    const row = tf.range(0, s, 1, 'int32').reshape([s, 1]);
    const col = tf.range(0, s, 1, 'int32').reshape([1, s]);
    return tf.where(tf.greater(col, row), tf.fill([s, s], -1e9), tf.zeros([s, s])) as tf.Tensor2D;
  });
}

/**
 * Mean token cross-entropy with labels = inputs shifted by one (transformers' causal-LM loss):
 * position t predicts token t+1. logits [b, s, v], ids [b, s].
 */
export function causalLmLoss(logits: tf.Tensor3D, ids: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [b, s, v] = logits.shape;
    const pred = logits.slice([0, 0, 0], [b, s - 1, v]).reshape([-1, v]); // [b(s-1), v]
    const labels = ids.slice([0, 1], [b, s - 1]).reshape([-1]); // [b(s-1)]
    const logp = tf.logSoftmax(pred);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(labels.toInt(), v)), 1); // [b(s-1)]
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

/**
 * The training loss of causalLmLoss without the [b, s, V] logits: the output layer and the
 * cross-entropy in row chunks (src/engine/crossEntropy.ts). With a LoRA-adapted output layer, the
 * plain form (its gradient must reach the adapter).
 */
export function causalLmTrainLoss(model: CausalLm, ids: tf.Tensor2D, lora?: LoraLookup, opts: ForwardOptions = {}): tf.Scalar {
  const head = model.linears.get('lm_head');
  if (!head || lora?.(head.path)) return causalLmLoss(model.forward(ids, lora, opts), ids);
  const [b, s] = ids.shape;
  const labels = causalLabels(ids.dataSync() as Int32Array, b, s);
  return tf.tidy(() => {
    const h = model.hidden(ids, lora, opts); // [b, s, H]
    return chunkedCrossEntropy(h.reshape([b * s, head.inFeatures]) as tf.Tensor2D, head.wt, head.bias, labels);
  });
}

/** Validate token ids against the vocabulary and turn rows into an int32 tensor. */
export function idsTensor(rows: number[][], vocabSize: number): tf.Tensor2D {
  if (rows.length === 0) throw new InteropError('bad-input', 'input ids: expected at least one row');
  const s = rows[0].length;
  if (s === 0) throw new InteropError('bad-input', 'input ids: rows must not be empty');
  const flat = new Int32Array(rows.length * s);
  rows.forEach((row, i) => {
    if (row.length !== s) throw new InteropError('bad-input', `input ids: row ${i} has ${row.length} tokens, row 0 has ${s}`);
    row.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new InteropError('bad-input', `input ids: row ${i} position ${j} is ${id}, expected an integer in [0, ${vocabSize})`);
      }
      flat[i * s + j] = id;
    });
  });
  return tf.tensor2d(flat, [rows.length, s], 'int32');
}
