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
import { frozenGather, frozenMatMul, frozenNative, makeFrozenWeight, type FrozenDtype, type FrozenWeight } from '../engine/kernels/frozenWeights';

const FROZEN_DTYPES = new Set(['F32', 'BF16', 'F16']);

/**
 * An embedding table [vocab, hidden]: in the heap, or outside it as stored. `rows` looks tokens up;
 * `head` is the tied output layer's LinearLayer fields (logits = h·Eᵀ).
 */
export interface Embedding {
  rows(ids: tf.Tensor): tf.Tensor; // [..., hidden]
  /** Eᵀ [hidden, vocab] in the heap, made on first use when the table lives outside the heap. */
  transposed(): tf.Tensor2D;
  frozen?: FrozenWeight;
  stored: string;
}

/** The output layer tied to an embedding: logits = h·Eᵀ, from outside the heap where E lives there. */
export function tiedHead(e: Embedding, hidden: number, vocab: number): LinearLayer {
  const head = { path: 'lm_head', weightName: e.stored, inFeatures: hidden, outFeatures: vocab, conv1d: false, ...(e.frozen ? { frozen: { w: e.frozen, mode: 0 as const } } : {}) } as LinearLayer;
  Object.defineProperty(head, 'wt', { get: e.transposed, enumerable: true });
  return head;
}

/** The embedding `name` [vocab, hidden] through the loader: outside the heap where that path is on. */
export function takeEmbedding(ld: WeightLoader, name: string, vocab: number, hidden: number): Embedding {
  const f = ld.takeFrozen(name, [vocab, hidden]);
  if (f) {
    const w = f.w;
    const transposed = ld.lazyTensor(() => tf.transpose(tf.tensor(ld.weights.get(f.stored)!.data, [vocab, hidden], 'float32')) as tf.Tensor2D);
    return { rows: (ids) => frozenGather(w, ids), transposed, frozen: w, stored: f.stored };
  }
  const { tensor, stored } = ld.take(name, [vocab, hidden]);
  const transposed = ld.lazyTensor(() => tf.transpose(tensor) as tf.Tensor2D);
  return { rows: (ids) => tf.gather(tensor, ids), transposed, stored };
}

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

  /** Frozen linear and embedding weights stay outside the heap, as stored (see frozenWeights.ts). */
  readonly frozenOutsideHeap: boolean;

  constructor(
    readonly weights: WeightSource,
    readonly source: string,
    /** Prefixes to try in front of each name (GPT-2 checkpoints come with or without "transformer."). */
    readonly prefixes: string[] = [''],
    /** Default: wherever the native kernels run the wasm backend and the source keeps the file's bytes. */
    frozenOutsideHeap?: boolean,
  ) {
    this.frozenOutsideHeap = (frozenOutsideHeap ?? true) && frozenNative() !== undefined && typeof weights.stored === 'function';
  }

  /**
   * The weight `name` [rows, cols] as stored, outside the heap, when that path is on and the dtype is
   * one the native products read; undefined otherwise (the caller then takes it into the heap).
   */
  takeFrozen(name: string, shape: [number, number]): { w: FrozenWeight; stored: string } | undefined {
    if (!this.frozenOutsideHeap) return undefined;
    const stored = this.resolve(name);
    const st = stored === undefined ? undefined : this.weights.stored?.(stored);
    if (stored === undefined || !st || !FROZEN_DTYPES.has(st.dtype)) return undefined;
    if (st.shape.length !== 2 || st.shape[0] !== shape[0] || st.shape[1] !== shape[1]) {
      throw new InteropError('shape-mismatch', `${this.source}: tensor "${stored}" has shape ${shapeText(st.shape)} but the config implies ${shapeText(shape)}`, this.source);
    }
    if (!this.seen.has(stored)) {
      this.seen.add(stored);
      this.used.push(stored);
      this.count += numel(shape);
    }
    return { w: makeFrozenWeight(st.bytes, st.dtype as FrozenDtype, shape[0], shape[1]), stored };
  }

  /** A heap tensor made on first read of `get` (a frozen weight's Wᵀ for merge or DoRA), freed with the model. */
  lazyTensor<T extends tf.Tensor>(make: () => T): () => T {
    let t: T | undefined;
    return () => {
      if (!t) {
        t = tf.tidy(make);
        tf.keep(t);
        this.tensors.push(t);
      }
      return t;
    };
  }

  /** The layer with its weight outside the heap; `wt` is made in the heap only if something reads it. */
  private frozenLayer(layer: Omit<LinearLayer, 'wt'>, stored: string, storedShape: number[], transposeForWt: boolean): LinearLayer {
    const wt = this.lazyTensor(() => {
      const t = tf.tensor(this.weights.get(stored)!.data, storedShape, 'float32');
      return (transposeForWt ? tf.transpose(t) : t) as tf.Tensor2D;
    });
    const out = { ...layer } as LinearLayer;
    Object.defineProperty(out, 'wt', { get: wt, enumerable: true });
    return out;
  }

  resolve(name: string): string | undefined {
    for (const p of this.prefixes) {
      // stored() first: get() would widen (and cache) a whole tensor just to say it exists.
      if ((this.weights.stored?.(p + name) ?? this.weights.get(p + name)) !== undefined) return p + name;
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
    const f = this.takeFrozen(`${weightBase}.weight`, [outF, inF]);
    if (f) {
      const b = bias ? this.take(`${weightBase}.bias`, [outF]) : undefined;
      return this.frozenLayer(
        { path, weightName: f.stored, biasName: b?.stored, inFeatures: inF, outFeatures: outF, conv1d: false, bias: b?.tensor as tf.Tensor1D | undefined, frozen: { w: f.w, mode: 0 } },
        f.stored, [outF, inF], true,
      );
    }
    const { tensor, stored } = this.take(`${weightBase}.weight`, [outF, inF]);
    const wt = tf.transpose(tensor) as tf.Tensor2D; // [in, out]
    this.tensors.push(wt);
    tensor.dispose();
    const b = bias ? this.take(`${weightBase}.bias`, [outF]) : undefined;
    return { path, weightName: stored, biasName: b?.stored, inFeatures: inF, outFeatures: outF, conv1d: false, wt, bias: b?.tensor as tf.Tensor1D | undefined };
  }

  /** A GPT-2 Conv1D stored [in, out]. */
  conv1d(path: string, inF: number, outF: number, weightBase: string): LinearLayer {
    const f = this.takeFrozen(`${weightBase}.weight`, [inF, outF]);
    if (f) {
      const b = this.take(`${weightBase}.bias`, [outF]);
      return this.frozenLayer(
        { path, weightName: f.stored, biasName: b.stored, inFeatures: inF, outFeatures: outF, conv1d: true, bias: b.tensor as tf.Tensor1D, frozen: { w: f.w, mode: 1 } },
        f.stored, [inF, outF], false,
      );
    }
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
    const out = head.frozen
      ? { logits: (x: tf.Tensor2D) => frozenMatMul(x, head.frozen!.w, head.frozen!.mode) as tf.Tensor2D, inputGrad: (g: tf.Tensor2D) => frozenMatMul(g, head.frozen!.w, head.frozen!.mode === 0 ? 1 : 0) as tf.Tensor2D, vocab: head.outFeatures }
      : head.wt;
    return chunkedCrossEntropy(h.reshape([b * s, head.inFeatures]) as tf.Tensor2D, out, head.bias, labels);
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
