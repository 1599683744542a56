// LoRALinear, exactly as the seed defines it (Hu et al. 2021; loralib `layers.Linear`; PEFT `lora.Linear`):
//   y = x Wᵀ + b + s · (x Aᵀ) Bᵀ        W: [k, d] frozen, b: [k], A: [r, d], B: [k, r], B = 0 at init
//   s = α/r ('standard'), α/√r ('rslora'), 1 ('none': the seed's code has no α)
//
// Performance notes (why the code looks the way it does):
// - The LoRA path is computed factored, (x Aᵀ) Bᵀ: O(N·r·(d+k)) instead of materialising B·A (O(k·r·d) plus
//   an extra [N,d]×[d,k] product), the largest single saving of a step (test/bench/README.md).
// - On the wasm backend a matMul takes the XNNPACK fast path only when neither operand is transposed and the
//   product is not batched. So the frozen weight is stored pre-transposed as Wᵀ [d, k], inputs are reshaped
//   to 2-D [N, d], and the backward pass is written by hand (tf.customGrad) so that every large product is
//   a plain 2-D matMul; only small [N, r] / [r, d] / [k, r] operands are transposed explicitly. No gradient
//   is ever computed for W.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone has no gradient kernels registered; the union bundle would do this for us.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import type { LoraInit, ScalingMode } from '../formats/experimentTypes';
import { invalidArgument, shapeError } from './errors';
import { loraScale } from '../shared/loraScale';
import { Rng } from './rng';

// loraScale lives in src/shared (tfjs-free) so the extension host and the webview use the same rule.
export { loraScale };

/** ΔW = s · B · A: [k, r] × [r, d] → [k, d]. For inspection, merging and export; never used in training. */
export function deltaW(A: tf.Tensor2D, B: tf.Tensor2D, s: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.matMul(B, A), s) as tf.Tensor2D); // [k, d]
}

/**
 * Initial A [r, d]: the seed's N(0, 0.02²) ('gaussian', std 0.02), or PEFT's default nn.init.kaiming_uniform_
 * with a = √5, i.e. U(−b, b) with b = gain·√(3/fan_in), gain = √(2/(1+a²)) → b = 1/√d.
 */
export function initA(r: number, d: number, init: LoraInit, rng: Rng): Float32Array {
  switch (init) {
    case 'gaussian':
      return rng.normalArray(r * d, 0.02);
    case 'kaiming-uniform': {
      const bound = Math.sqrt(2 / (1 + 5)) * Math.sqrt(3 / d); // = 1/√d
      return rng.uniformArray(r * d, -bound, bound);
    }
    default: {
      const never: never = init;
      throw invalidArgument(`lora.init: unknown init "${String(never)}"`);
    }
  }
}

export interface LoRALinearOptions {
  /** Module path (e.g. "linear", "attention.q"), named in error messages. */
  name?: string;
  inFeatures: number; // d
  outFeatures: number; // k
  r: number;
  alpha?: number;
  scaling?: ScalingMode;
  /** Dropout probability on the LoRA path's input (PEFT's lora_dropout). */
  dropout?: number;
  init?: LoraInit;
  /** The seed's convention (bias trains) or PEFT's `bias: "none"` (frozen). */
  trainBias?: boolean;
  /** Frozen base weight in PyTorch layout [k, d] (row-major). Random N(0, 1/d) from `rng` when absent. */
  weight?: Float32Array | tf.Tensor2D;
  /** Base bias [k]; zeros when absent. */
  bias?: Float32Array | tf.Tensor1D;
  /** Whether the layer has a bias at all (false for Llama projections). Default true. */
  hasBias?: boolean;
  /**
   * Whether callers need ∂y/∂x (the layer sits after something trainable). Keeps a second frozen copy of W in
   * [k, d] layout so dx = dy·W is a plain product too. Default false (inputs are data).
   */
  inputGrad?: boolean;
  /** Initial A / B values instead of the init rule (tests, resume). */
  A?: Float32Array;
  B?: Float32Array;
  rng?: Rng;
}

export interface ApplyOptions {
  /** Switches dropout on. */
  training?: boolean;
  /** Seed of this call's dropout mask (derive it from the step for determinism). */
  dropoutSeed?: number;
}

/**
 * A frozen nn.Linear (y = x Wᵀ + b), stored as Wᵀ [d, k] for the plain-matMul fast path. With `inputGrad`
 * it also keeps W [k, d] and a hand-written backward, so dx = dy·W is a plain product too (autodiff of
 * x·Wᵀ would ask for dy·(Wᵀ)ᵀ, a transposed operand) and no gradient is computed for W.
 */
export class FrozenLinear {
  readonly Wt: tf.Variable; // [d, k]
  private readonly W?: tf.Variable; // [k, d], only with inputGrad
  readonly bias?: tf.Variable; // [k]
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    weight: Float32Array | tf.Tensor2D,
    bias?: Float32Array | tf.Tensor1D,
    inputGrad = false,
  ) {
    this.Wt = tf.tidy(() => tf.variable(tf.transpose(asTensor2d(weight, [outFeatures, inFeatures], 'weight')), false));
    if (inputGrad) this.W = tf.tidy(() => tf.variable(asTensor2d(weight, [outFeatures, inFeatures], 'weight'), false));
    if (bias) this.bias = tf.tidy(() => tf.variable(asTensor1d(bias, outFeatures, 'bias'), false));
  }

  /** [..., d] → [..., k]. */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D; // [N, d]
      const Wt = this.Wt as tf.Tensor2D;
      const W = this.W as tf.Tensor2D | undefined;
      const bias = this.bias;
      let y: tf.Tensor;
      if (W) {
        const f = tf.customGrad((xx: tf.Tensor | tf.GradSaveFunc) => {
          const base = tf.matMul(xx as tf.Tensor2D, Wt); // [N, k]
          return {
            value: bias ? tf.add(base, bias) : base,
            gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, W), // [N, k]×[k, d] → [N, d]
          };
        });
        y = f(x2);
      } else {
        y = tf.matMul(x2, Wt); // [N, k]
        if (bias) y = tf.add(y, bias);
      }
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }

  weight(): tf.Tensor2D {
    return tf.tidy(() => tf.transpose(this.Wt) as tf.Tensor2D);
  }

  dispose(): void {
    this.Wt.dispose();
    this.W?.dispose();
    this.bias?.dispose();
  }
}

export class LoRALinear {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly r: number;
  readonly alpha: number;
  readonly scaling: ScalingMode;
  readonly scale: number;
  readonly dropout: number;
  readonly trainBias: boolean;
  readonly hasBias: boolean;
  readonly inputGrad: boolean;
  /** Frozen Wᵀ [d, k]. */
  readonly Wt: tf.Variable;
  /** Frozen W [k, d], only kept when inputGrad (for dx = dy·W). */
  private readonly W?: tf.Variable;
  /** b [k]: trainable or frozen (see trainBias); absent when hasBias is false. */
  readonly bias?: tf.Variable;
  /** A [r, d], trainable. */
  readonly A: tf.Variable;
  /** B [k, r], trainable, zero at init so the adapted layer starts as the base layer. */
  readonly B: tf.Variable;
  private mergedFlag = false;

  constructor(o: LoRALinearOptions) {
    const name = o.name ?? 'LoRALinear';
    const d = o.inFeatures;
    const k = o.outFeatures;
    const r = o.r;
    if (!Number.isInteger(d) || d < 1) throw invalidArgument(`${name}: inFeatures should be a positive integer, got ${d}`);
    if (!Number.isInteger(k) || k < 1) throw invalidArgument(`${name}: outFeatures should be a positive integer, got ${k}`);
    if (!Number.isInteger(r) || r < 1) throw invalidArgument(`${name}: r should be a positive integer, got ${r}`);
    const dropout = o.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) throw invalidArgument(`${name}: dropout should be in [0, 1), got ${dropout}`);
    this.name = name;
    this.inFeatures = d;
    this.outFeatures = k;
    this.r = r;
    this.alpha = o.alpha ?? r;
    this.scaling = o.scaling ?? 'standard';
    this.scale = loraScale(this.alpha, r, this.scaling);
    this.dropout = dropout;
    this.hasBias = o.hasBias ?? true;
    this.trainBias = this.hasBias && (o.trainBias ?? false);
    this.inputGrad = o.inputGrad ?? false;
    const rng = o.rng ?? new Rng(0);
    const weight = o.weight ?? rng.normalArray(k * d, 1 / Math.sqrt(d));
    try {
      this.Wt = tf.tidy(() => tf.variable(tf.transpose(asTensor2d(weight, [k, d], `${name} weight`)), false));
      if (this.inputGrad) this.W = tf.tidy(() => tf.variable(asTensor2d(weight, [k, d], `${name} weight`), false));
      if (this.hasBias) {
        const b = o.bias ?? new Float32Array(k);
        this.bias = tf.tidy(() => tf.variable(asTensor1d(b, k, `${name} bias`), this.trainBias));
      }
      const a = o.A ?? initA(r, d, o.init ?? 'kaiming-uniform', rng);
      this.A = tf.tidy(() => tf.variable(asTensor2d(a, [r, d], `${name} lora_A`), true));
      this.B = tf.tidy(() => tf.variable(o.B ? asTensor2d(o.B, [k, r], `${name} lora_B`) : tf.zeros([k, r]), true));
    } catch (e) {
      this.dispose(); // a bad shape must not leave the variables made so far behind
      throw e;
    }
  }

  get merged(): boolean {
    return this.mergedFlag;
  }

  /** What trains, by local name: lora_A, lora_B (and bias when it trains). */
  trainableVariables(): Record<string, tf.Variable> {
    const v: Record<string, tf.Variable> = { lora_A: this.A, lora_B: this.B };
    if (this.trainBias && this.bias) v.bias = this.bias;
    return v;
  }

  /** y = x Wᵀ + b + s·(drop(x) Aᵀ) Bᵀ for x [..., d] → [..., k]. Merged: the LoRA path is already in W. */
  apply(x: tf.Tensor, opts: ApplyOptions = {}): tf.Tensor {
    const d = this.inFeatures;
    const k = this.outFeatures;
    if (x.shape[x.shape.length - 1] !== d) throw shapeError(`${this.name}: input's last axis (in_features)`, [d], [x.shape[x.shape.length - 1]]);
    // tidy is safe under a gradient tape: tensors the backward pass needs are kept by the engine.
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, d]) as tf.Tensor2D; // [N, d]
      let y: tf.Tensor2D;
      if (this.mergedFlag) {
        const base = tf.matMul(x2, this.Wt as tf.Tensor2D); // [N, k]
        y = (this.bias ? tf.add(base, this.bias) : base) as tf.Tensor2D;
      } else {
        const mask = opts.training && this.dropout > 0 ? dropoutMask(x2.shape, this.dropout, opts.dropoutSeed ?? 0) : undefined;
        y = this.factored(x2, mask);
      }
      return tf.reshape(y, [...lead, k]);
    });
  }

  /** The forward/backward pair; see the file comment for why it is hand-written. */
  private factored(x: tf.Tensor2D, mask: tf.Tensor2D | undefined): tf.Tensor2D {
    const s = this.scale;
    const Wt = this.Wt as tf.Tensor2D;
    const W = this.W as tf.Tensor2D | undefined;
    const frozenBias = this.bias && !this.trainBias ? this.bias : undefined;
    // Inputs whose gradients we return, in order: A, B, [bias], [x].
    const inputs: tf.Tensor[] = [this.A, this.B];
    const biasIdx = this.trainBias ? inputs.push(this.bias!) - 1 : -1;
    const xIdx = this.inputGrad ? inputs.push(x) - 1 : -1;

    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const A = args[0] as tf.Tensor2D; // [r, d]
      const B = args[1] as tf.Tensor2D; // [k, r]
      const bias = biasIdx >= 0 ? (args[biasIdx] as tf.Tensor1D) : frozenBias;
      const At = tf.transpose(A) as tf.Tensor2D; // [d, r]   small copy
      const Bt = tf.transpose(B) as tf.Tensor2D; // [r, k]   small copy
      const xd = mask ? (tf.mul(x, mask) as tf.Tensor2D) : x; // [N, d]   dropout on the LoRA path only
      const xa = tf.matMul(xd, At); // [N, r]
      const base = tf.matMul(x, Wt); // [N, k]   the big product, plain
      const lora = tf.mul(tf.matMul(xa, Bt), s); // [N, k]
      let value = tf.add(base, lora) as tf.Tensor2D;
      if (bias) value = tf.add(value, bias);
      // Save only tensors that already existed (x, mask, A, B): xd and xa are recomputed in the backward pass
      // (an O(N·d·r) product, small next to O(N·d·k)), which keeps memory flat and tfjs's leak checks happy.
      save(mask ? [x, A, B, mask] : [x, A, B]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sA, sB, sMask] = saved as tf.Tensor2D[];
          const sxd = sMask ? (tf.mul(sx, sMask) as tf.Tensor2D) : sx; // [N, d]
          const sxa = tf.matMul(sxd, tf.transpose(sA) as tf.Tensor2D); // [N, r]
          const dy2 = dy as tf.Tensor2D; // [N, k]
          const dBt = tf.matMul(tf.transpose(sxa) as tf.Tensor2D, dy2); // [r, N]×[N, k] → [r, k]
          const dB = tf.mul(tf.transpose(dBt), s); // [k, r]
          const g = tf.matMul(dy2, sB); // [N, k]×[k, r] → [N, r]
          const dA = tf.mul(tf.matMul(tf.transpose(g) as tf.Tensor2D, sxd), s); // [r, N]×[N, d] → [r, d]
          const grads: tf.Tensor[] = [dA, dB];
          if (biasIdx >= 0) grads.push(tf.sum(dy2, 0)); // [k]
          if (xIdx >= 0) {
            let dxLora = tf.mul(tf.matMul(g, sA), s); // [N, r]×[r, d] → [N, d]
            if (sMask) dxLora = tf.mul(dxLora, sMask);
            const dxBase = W ? tf.matMul(dy2, W) : tf.matMul(dy2, Wt, false, true); // [N, k]×[k, d] → [N, d]
            grads.push(tf.add(dxBase, dxLora));
          }
          return grads;
        },
      };
    });
    return f(...inputs) as tf.Tensor2D;
  }

  /** ΔW = s·B·A [k, d]. */
  deltaW(): tf.Tensor2D {
    return deltaW(this.A as tf.Tensor2D, this.B as tf.Tensor2D, this.scale);
  }

  /** The current frozen weight W [k, d] (includes ΔW while merged). */
  weight(): tf.Tensor2D {
    return tf.tidy(() => tf.transpose(this.Wt) as tf.Tensor2D);
  }

  /**
   * W ← W + s·B·A (PEFT merge); afterwards apply() skips the LoRA path. Like PEFT's safe_merge, a result with
   * NaN or Inf is refused and W is left unchanged.
   */
  merge(): void {
    if (this.mergedFlag) return;
    this.addToWeight(1);
    this.mergedFlag = true;
  }

  /** W ← W − s·B·A: restores the base weight (within float32 rounding, ~1e-7 relative). */
  unmerge(): void {
    if (!this.mergedFlag) return;
    this.addToWeight(-1);
    this.mergedFlag = false;
  }

  private addToWeight(sign: 1 | -1): void {
    tf.tidy(() => {
      // (s·B·A)ᵀ = s·Aᵀ·Bᵀ [d, k], added to the stored Wᵀ directly.
      const dWt = tf.mul(tf.matMul(this.A, this.B, true, true), sign * this.scale); // [d, k]
      const next = tf.add(this.Wt, dWt);
      const finite = tf.all(tf.isFinite(next)).dataSync()[0];
      if (!finite) throw invalidArgument(`${this.name}: NaNs or Infs detected while ${sign > 0 ? 'merging the adapter into' : 'unmerging the adapter from'} W (W left unchanged; the adapter seems to be broken)`);
      this.Wt.assign(next);
      if (this.W) this.W.assign(tf.transpose(next));
    });
  }

  dispose(): void {
    for (const v of [this.Wt, this.W, this.bias, this.A, this.B]) v?.dispose();
  }
}

/** Inverted-dropout mask [N, d]: 0 with probability p, else 1/(1−p). Seeded, so identical across backends. */
export function dropoutMask(shape: [number, number], p: number, seed: number): tf.Tensor2D {
  return tf.tidy(() => {
    const u = tf.randomUniform(shape, 0, 1, 'float32', seed);
    return tf.div(tf.cast(tf.greaterEqual(u, p), 'float32'), 1 - p) as tf.Tensor2D;
  });
}

function asTensor2d(v: Float32Array | tf.Tensor2D, shape: [number, number], what: string): tf.Tensor2D {
  if (v instanceof Float32Array) {
    if (v.length !== shape[0] * shape[1]) throw shapeError(what, shape, [v.length]);
    return tf.tensor2d(v, shape);
  }
  if (v.shape[0] !== shape[0] || v.shape[1] !== shape[1]) throw shapeError(what, shape, v.shape);
  return tf.clone(v);
}

function asTensor1d(v: Float32Array | tf.Tensor1D, n: number, what: string): tf.Tensor1D {
  if (v instanceof Float32Array) {
    if (v.length !== n) throw shapeError(what, [n], [v.length]);
    return tf.tensor1d(v);
  }
  if (v.shape[0] !== n) throw shapeError(what, [n], v.shape);
  return tf.clone(v);
}
