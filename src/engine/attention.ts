// Attention with LoRA.
//
// LoRAAttention is the seed article's module, single head:
//   Q = W_Q(query) + s·(query A_Qᵀ) B_Qᵀ,  K = … (key),  V = … (value)      W_Q, W_K, W_V frozen
//   out = W_O( softmax(Q Kᵀ / √E) V )                                       W_O a plain *trainable* Linear
// so its trainable count is the LoRA params plus W_O's weight and bias (1,824 for E = 32, r = 4).
// Query length may differ from key/value length (cross-attention).
//
// MultiHeadLoRAAttention is the usual multi-head block (GPT-2 / Llama style), LoRA on any of q, k, v, o,
// every base weight frozen (PEFT's setting), with an optional causal mask.
import * as tf from '@tensorflow/tfjs-core';
import { scaledMaskedSoftmax } from './kernels/attentionSoftmax';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import type { LoraInit, ScalingMode } from '../formats/experimentTypes';
import { invalidArgument, shapeError } from './errors';
import { FrozenLinear, LoRALinear, type ApplyOptions } from './lora';
import { Rng, hashInts } from './rng';

export interface LoraHyper {
  /** Module path of the block (e.g. "attention"); its projections are named "<name>.q" … in error messages. */
  name?: string;
  r: number;
  alpha?: number;
  scaling?: ScalingMode;
  dropout?: number;
  init?: LoraInit;
}

/** Weights of one projection in PyTorch layout: weight [out, in], bias [out]. */
export interface LinearWeights {
  weight: Float32Array;
  bias?: Float32Array;
}

export interface AttentionWeights {
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  o: LinearWeights;
}

export type Projection = 'q' | 'k' | 'v' | 'o';
export const PROJECTIONS: readonly Projection[] = ['q', 'k', 'v', 'o'];

/** nn.Linear-like random weights: N(0, 1/in) weight, small N(0, 0.02²) bias. */
export function randomAttentionWeights(embedDim: number, rng: Rng, bias = true): AttentionWeights {
  const one = (): LinearWeights => ({
    weight: rng.normalArray(embedDim * embedDim, 1 / Math.sqrt(embedDim)),
    bias: bias ? rng.normalArray(embedDim, 0.02) : undefined,
  });
  return { q: one(), k: one(), v: one(), o: one() };
}

export interface LoRAAttentionOptions extends LoraHyper {
  embedDim: number;
  weights?: AttentionWeights;
  /** Initial LoRA factors per projection (tests). */
  factors?: Partial<Record<'q' | 'k' | 'v', { A?: Float32Array; B?: Float32Array }>>;
  rng?: Rng;
}

/** The seed's single-head LoRAAttention. */
export class LoRAAttention {
  readonly embedDim: number;
  readonly q: LoRALinear;
  readonly k: LoRALinear;
  readonly v: LoRALinear;
  /** W_O stored transposed [in, out] for the plain-matMul path; trainable, as in the seed. */
  readonly WoT: tf.Variable;
  readonly bo: tf.Variable;

  constructor(o: LoRAAttentionOptions) {
    const E = o.embedDim;
    const rng = o.rng ?? new Rng(0);
    const w = o.weights ?? randomAttentionWeights(E, rng);
    const mk = (p: 'q' | 'k' | 'v') =>
      new LoRALinear({
        name: o.name ? `${o.name}.${p}` : p,
        inFeatures: E,
        outFeatures: E,
        r: o.r,
        alpha: o.alpha,
        scaling: o.scaling ?? 'none',
        dropout: o.dropout,
        init: o.init ?? 'gaussian',
        trainBias: false, // the seed freezes W_Q, W_K, W_V including their biases
        weight: w[p].weight,
        bias: w[p].bias ?? new Float32Array(E),
        A: o.factors?.[p]?.A,
        B: o.factors?.[p]?.B,
        rng,
      });
    this.embedDim = E;
    this.q = mk('q');
    this.k = mk('k');
    this.v = mk('v');
    this.WoT = tf.tidy(() => tf.variable(tf.transpose(tf.tensor2d(w.o.weight, [E, E])), true)); // [in, out]
    this.bo = tf.tidy(() => tf.variable(tf.tensor1d(w.o.bias ?? new Float32Array(E)), true)); // [E]
  }

  /** Trainable variables by local name: q.lora_A … v.lora_B, o.weightT (W_Oᵀ), o.bias. */
  trainableVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    for (const p of ['q', 'k', 'v'] as const) for (const [n, v] of Object.entries(this[p].trainableVariables())) out[`${p}.${n}`] = v;
    out['o.weightT'] = this.WoT;
    out['o.bias'] = this.bo;
    return out;
  }

  /** query [B, T, E], key/value [B, S, E] → [B, T, E]. */
  apply(query: tf.Tensor3D, key: tf.Tensor3D, value: tf.Tensor3D, opts: ApplyOptions = {}): tf.Tensor3D {
    const E = this.embedDim;
    checkAttentionInputs('LoRAAttention', E, query, key, value);
    return tf.tidy(() => {
      const seed = opts.dropoutSeed ?? 0;
      const Q = this.q.apply(query, { ...opts, dropoutSeed: hashInts(seed, 1) }) as tf.Tensor3D; // [B, T, E]
      const K = this.k.apply(key, { ...opts, dropoutSeed: hashInts(seed, 2) }) as tf.Tensor3D; // [B, S, E]
      const V = this.v.apply(value, { ...opts, dropoutSeed: hashInts(seed, 3) }) as tf.Tensor3D; // [B, S, E]
      const scores = tf.div(tf.matMul(Q, K, false, true), Math.sqrt(E)); // [B, T, S]
      const attn = tf.softmax(scores, -1); // [B, T, S]
      const ctx = tf.matMul(attn, V); // [B, T, E]
      const [b, t] = ctx.shape;
      const out = tf.add(tf.matMul(tf.reshape(ctx, [b * t, E]) as tf.Tensor2D, this.WoT as tf.Tensor2D), this.bo); // [B·T, E]
      return tf.reshape(out, [b, t, E]) as tf.Tensor3D;
    });
  }

  /** W_O in PyTorch layout [out, in]. */
  outputWeight(): tf.Tensor2D {
    return tf.tidy(() => tf.transpose(this.WoT) as tf.Tensor2D);
  }

  dispose(): void {
    this.q.dispose();
    this.k.dispose();
    this.v.dispose();
    this.WoT.dispose();
    this.bo.dispose();
  }
}

export interface MultiHeadOptions extends LoraHyper {
  embedDim: number;
  numHeads: number;
  /** Projections that carry LoRA. */
  targets: Projection[];
  causal?: boolean;
  weights?: AttentionWeights;
  /** Train the biases of adapted projections (seed convention) or not (PEFT). */
  trainBias?: boolean;
  rng?: Rng;
}

/** Multi-head attention, every base weight frozen, LoRA on any subset of q, k, v, o. */
export class MultiHeadLoRAAttention {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly causal: boolean;
  readonly proj: Record<Projection, LoRALinear | FrozenLinear>;

  constructor(o: MultiHeadOptions) {
    const E = o.embedDim;
    if (!Number.isInteger(o.numHeads) || o.numHeads < 1 || E % o.numHeads !== 0) {
      throw invalidArgument(`numHeads should divide embedDim (${E}), got ${o.numHeads}`);
    }
    for (const t of o.targets) if (!PROJECTIONS.includes(t)) throw invalidArgument(`target module "${t}" is not one of q, k, v, o`);
    const rng = o.rng ?? new Rng(0);
    const w = o.weights ?? randomAttentionWeights(E, rng);
    this.embedDim = E;
    this.numHeads = o.numHeads;
    this.headDim = E / o.numHeads;
    this.causal = o.causal ?? false;
    const mk = (p: Projection): LoRALinear | FrozenLinear =>
      o.targets.includes(p)
        ? new LoRALinear({
            name: o.name ? `${o.name}.${p}` : p,
            inFeatures: E,
            outFeatures: E,
            r: o.r,
            alpha: o.alpha,
            scaling: o.scaling ?? 'standard',
            dropout: o.dropout,
            init: o.init ?? 'kaiming-uniform',
            trainBias: o.trainBias ?? false,
            hasBias: w[p].bias !== undefined,
            weight: w[p].weight,
            bias: w[p].bias,
            // o's input depends on q/k/v, so its LoRA must pass gradients back through.
            inputGrad: p === 'o',
            rng,
          })
        : new FrozenLinear(E, E, w[p].weight, w[p].bias, p === 'o');
    this.proj = { q: mk('q'), k: mk('k'), v: mk('v'), o: mk('o') };
  }

  /** Adapted projections only. */
  loraModules(): [Projection, LoRALinear][] {
    return PROJECTIONS.flatMap((p) => (this.proj[p] instanceof LoRALinear ? [[p, this.proj[p] as LoRALinear] as [Projection, LoRALinear]] : []));
  }

  trainableVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    for (const [p, m] of this.loraModules()) for (const [n, v] of Object.entries(m.trainableVariables())) out[`${p}.${n}`] = v;
    return out;
  }

  /** query [B, T, E], key/value [B, S, E] → [B, T, E]. Causal: query i sees keys j ≤ i + (S − T). */
  apply(query: tf.Tensor3D, key: tf.Tensor3D, value: tf.Tensor3D, opts: ApplyOptions = {}): tf.Tensor3D {
    const E = this.embedDim;
    const H = this.numHeads;
    const Dh = this.headDim;
    checkAttentionInputs('MultiHeadLoRAAttention', E, query, key, value);
    return tf.tidy(() => {
      const seed = opts.dropoutSeed ?? 0;
      const run = (p: Projection, x: tf.Tensor, i: number) => {
        const m = this.proj[p];
        return m instanceof LoRALinear ? m.apply(x, { ...opts, dropoutSeed: hashInts(seed, i) }) : m.apply(x);
      };
      const [b, t] = query.shape;
      const s = key.shape[1];
      const heads = (x: tf.Tensor, len: number) => tf.reshape(tf.transpose(tf.reshape(x, [b, len, H, Dh]), [0, 2, 1, 3]), [b * H, len, Dh]);
      const Q = heads(run('q', query, 1), t) as tf.Tensor3D; // [B·H, T, Dh]
      const K = heads(run('k', key, 2), s) as tf.Tensor3D; // [B·H, S, Dh]
      const V = heads(run('v', value, 3), s) as tf.Tensor3D; // [B·H, S, Dh]
      const scores = tf.matMul(Q, K, false, true); // [B·H, T, S]
      const attn = scaledMaskedSoftmax(scores, Math.sqrt(Dh), this.causal ? causalBias(t, s) : undefined); // the mask broadcast over B·H
      const ctx = tf.matMul(attn, V); // [B·H, T, Dh]
      const merged = tf.reshape(tf.transpose(tf.reshape(ctx, [b, H, t, Dh]), [0, 2, 1, 3]), [b, t, E]); // [B, T, E]
      return run('o', merged, 4) as tf.Tensor3D;
    });
  }

  dispose(): void {
    for (const p of PROJECTIONS) this.proj[p].dispose();
  }
}

/** query [B, T, E], key and value [B, S, E], with the same B: anything else is a shape error naming the input. */
function checkAttentionInputs(what: string, E: number, query: tf.Tensor3D, key: tf.Tensor3D, value: tf.Tensor3D): void {
  for (const [n, t] of [['query', query], ['key', key], ['value', value]] as const) {
    if (t.rank !== 3 || t.shape[2] !== E) throw shapeError(`${what} ${n} [batch, length, embedDim]`, [-1, -1, E], t.shape);
  }
  if (key.shape[0] !== query.shape[0] || value.shape[0] !== query.shape[0] || key.shape[1] !== value.shape[1]) {
    throw shapeError(`${what} key/value (batch of the query, key and value of one length)`, [query.shape[0], key.shape[1], E], value.shape);
  }
}

/** Additive mask [T, S]: 0 where key j is visible from query i (j ≤ i + S − T), −1e9 elsewhere. */
export function causalBias(t: number, s: number): tf.Tensor2D {
  const data = new Float32Array(t * s);
  for (let i = 0; i < t; i++) for (let j = 0; j < s; j++) if (j > i + (s - t)) data[i * s + j] = -1e9;
  return tf.tensor2d(data, [t, s]);
}
