// Optimizers written on tfjs ops (not tf.train.*) so that their state (moments, step count) can be exported
// and restored as named Float32Arrays: a resumed run then continues exactly the same loss curve.
// Update rules follow PyTorch's `torch.optim.SGD`, `Adam` and `AdamW` (documented defaults), so numbers
// can be checked by hand or against PyTorch.
import * as tf from '@tensorflow/tfjs-core';
import { fusedAdamAvailable, fusedAdamStep, registerFusedAdam } from './kernels/fusedAdam';
import type { OptimizerSettings } from '../formats/experimentTypes';
import { invalidArgument } from './errors';
import { assignPlain, checkPlain, toPlain, type NamedTensors } from './namedTensors';

export type ParamMap = Record<string, tf.Variable>;
export type GradMap = Record<string, tf.Tensor>;

export interface OptimizerState {
  /** Number of updates applied so far (Adam's t). */
  step: number;
  /** Slot tensors, named `<slot>/<param>` (e.g. `m/linear.lora_A`). */
  tensors: NamedTensors;
}

export interface Optimizer {
  readonly name: 'sgd' | 'adam' | 'adamw';
  readonly step: number;
  /** Applies one update with learning rate `lr`; grads are NOT disposed (the caller owns them). */
  apply(params: ParamMap, grads: GradMap, lr: number): void;
  getState(): OptimizerState;
  /** Restores moments and step; `params` gives the shapes of slots that must exist. */
  setState(state: OptimizerState, params: ParamMap): void;
  dispose(): void;
}

abstract class SlotOptimizer implements Optimizer {
  abstract readonly name: 'sgd' | 'adam' | 'adamw';
  protected t = 0;
  protected readonly slots = new Map<string, tf.Variable>();
  protected abstract readonly slotNames: readonly string[];

  get step(): number {
    return this.t;
  }

  protected slot(slot: string, param: string, like: tf.Tensor): tf.Variable {
    const key = `${slot}/${param}`;
    let v = this.slots.get(key);
    if (!v) {
      v = tf.tidy(() => tf.variable(tf.zerosLike(like), false));
      this.slots.set(key, v);
    }
    return v;
  }

  abstract apply(params: ParamMap, grads: GradMap, lr: number): void;

  getState(): OptimizerState {
    const tensors: NamedTensors = {};
    for (const [k, v] of [...this.slots.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) tensors[k] = toPlain(v);
    return { step: this.t, tensors };
  }

  setState(state: OptimizerState, params: ParamMap): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw invalidArgument(`optimizer state: step should be a non-negative integer, got ${state.step}`);
    // Everything is checked before anything changes: a bad state leaves the optimizer as it was.
    const present: [string, string, tf.Variable][] = [];
    for (const [name, p] of Object.entries(params)) {
      for (const s of this.slotNames) {
        const key = `${s}/${name}`;
        if (state.tensors[key]) {
          checkPlain(p.shape, state.tensors, key);
          present.push([s, name, p]);
        } else if (state.step > 0) throw invalidArgument(`optimizer state at step ${state.step} has no slot "${key}"`);
      }
    }
    for (const [s, name, p] of present) assignPlain(this.slot(s, name, p), state.tensors, `${s}/${name}`);
    this.t = state.step;
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
  }
}

/** SGD with optional momentum and (coupled, L2) weight decay, as torch.optim.SGD (dampening 0, no Nesterov). */
export class Sgd extends SlotOptimizer {
  readonly name = 'sgd' as const;
  protected readonly slotNames: readonly string[];
  constructor(
    readonly momentum = 0,
    readonly weightDecay = 0,
  ) {
    super();
    this.slotNames = momentum > 0 ? ['momentum'] : [];
  }

  apply(params: ParamMap, grads: GradMap, lr: number): void {
    const first = this.t === 0;
    this.t++;
    for (const [name, p] of Object.entries(params)) {
      const g0 = grads[name];
      if (!g0) continue;
      tf.tidy(() => {
        let g = this.weightDecay > 0 ? tf.add(g0, tf.mul(p, this.weightDecay)) : g0;
        if (this.momentum > 0) {
          const buf = this.slot('momentum', name, p);
          // torch: the buffer starts as the first gradient, then buf = μ·buf + g.
          buf.assign(first ? g : tf.add(tf.mul(buf, this.momentum), g));
          g = buf;
        }
        p.assign(tf.sub(p, tf.mul(g, lr)));
      });
    }
  }
}

/**
 * Adam (torch.optim.Adam: weight decay is L2 added to the gradient) or AdamW (decoupled: p ← p·(1 − lr·λ)
 * before the Adam step). Bias-corrected moments; eps added to √v̂.
 */
export class Adam extends SlotOptimizer {
  protected readonly slotNames = ['m', 'v'] as const;
  constructor(
    readonly name: 'adam' | 'adamw',
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
    readonly weightDecay = 0,
  ) {
    super();
    registerFusedAdam();
  }

  apply(params: ParamMap, grads: GradMap, lr: number): void {
    this.t++;
    const bc1 = 1 - Math.pow(this.beta1, this.t);
    const bc2 = 1 - Math.pow(this.beta2, this.t);
    const stepSize = lr / bc1;
    for (const [name, p] of Object.entries(params)) {
      const g0 = grads[name];
      if (!g0) continue;
      tf.tidy(() => {
        const decoupled = this.name === 'adamw';
        const g = !decoupled && this.weightDecay > 0 ? tf.add(g0, tf.mul(p, this.weightDecay)) : g0;
        const m = this.slot('m', name, p);
        const v = this.slot('v', name, p);
        if (fusedAdamAvailable()) {
          // One kernel instead of ~13 per parameter (kernels/fusedAdam.ts; the same float32 roundings).
          const decay = decoupled && this.weightDecay > 0 ? 1 - lr * this.weightDecay : 1;
          const attrs = { beta1: this.beta1, beta2: this.beta2, eps: this.eps, stepSize, sqrtBc2: Math.sqrt(bc2), decay };
          const [p1, m1, v1] = fusedAdamStep(p, m, v, g, attrs);
          m.assign(m1);
          v.assign(v1);
          p.assign(p1);
          return;
        }
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const base = decoupled && this.weightDecay > 0 ? tf.mul(p, 1 - lr * this.weightDecay) : p;
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.eps); // √v̂ + ε, as torch
        p.assign(tf.sub(base, tf.mul(tf.div(m, denom), stepSize)));
      });
    }
  }
}

export function createOptimizer(s: OptimizerSettings): Optimizer {
  switch (s.name) {
    case 'sgd':
      return new Sgd(s.momentum, s.weightDecay);
    case 'adam':
    case 'adamw':
      return new Adam(s.name, s.beta1, s.beta2, s.eps, s.weightDecay);
    default: {
      const never: never = s.name;
      throw invalidArgument(`optimizer.name: unknown optimizer "${String(never)}"`);
    }
  }
}

/** √(Σ‖g‖²) over all gradients, as a scalar tensor (not read back, so it costs no sync). */
export function globalNorm(grads: GradMap): tf.Scalar {
  return tf.tidy(() => {
    const parts = Object.values(grads).map((g) => tf.sum(tf.square(g)));
    return (parts.length === 0 ? tf.scalar(0) : tf.sqrt(tf.addN(parts))) as tf.Scalar;
  });
}

/**
 * torch.nn.utils.clip_grad_norm_: scale every gradient by min(1, maxNorm / (‖g‖ + 1e-6)). Like torch, a norm
 * within 1e-6 below maxNorm is still scaled (slightly). maxNorm ≤ 0 disables clipping.
 * Returns new tensors (the inputs are left to the caller to dispose). `norm` is the pre-clip norm.
 */
export function clipByGlobalNorm(grads: GradMap, norm: number, maxNorm: number): GradMap {
  const out: GradMap = {};
  const coef = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  for (const [k, g] of Object.entries(grads)) out[k] = coef === 1 ? tf.clone(g) : tf.mul(g, coef);
  return out;
}
