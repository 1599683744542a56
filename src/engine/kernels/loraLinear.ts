// The LoRA linear layer written for XNNPACK: y = x Wᵀ + b + s·(x Aᵀ) Bᵀ.
//
// Why a custom gradient: autodiff of the textbook form asks the wasm backend for x·Wᵀ and dyᵀ·x,
// products it can only do in its slow loop, and never needs most of what it would compute. Here:
//   - the frozen W is packed once as Wᵀ [in, out] (forward) and kept as W [out, in] (for dx), so
//     both big products are plain A·B with a long-lived right operand, which XNNPACK packs once;
//   - the backward pass computes only dA, dB (and dx when the input needs a gradient), never dW;
//   - the rank-r products are ordered so any transpose is of a thin [N, r] or [r, k] matrix.
// The numbers are the same as tf.grads of the plain formula (test/unit/perf/loraLinear.test.ts).
import * as tf from '@tensorflow/tfjs-core';

/** A frozen linear layer packed for the fast path. Owns its tensors: call `dispose()`. */
export interface PackedFrozenLinear {
  /** Wᵀ [in, out], the forward operand. */
  readonly wT: tf.Tensor2D;
  /** W [out, in], the operand of dx = dy·W. */
  readonly w: tf.Tensor2D;
  /** Frozen bias [out], if any. */
  readonly b?: tf.Tensor1D;
  readonly inFeatures: number;
  readonly outFeatures: number;
  dispose(): void;
}

/** Packs a frozen weight W [out, in] (PyTorch/PEFT layout) and bias once, before training. */
export function packFrozenLinear(w: tf.Tensor2D, b?: tf.Tensor1D): PackedFrozenLinear {
  const [outFeatures, inFeatures] = w.shape;
  if (b && (b.rank !== 1 || b.shape[0] !== outFeatures)) {
    throw new Error(`packFrozenLinear: bias should have shape [${outFeatures}], got [${b.shape.join(', ')}]`);
  }
  const wT = tf.keep(tf.transpose(w)) as tf.Tensor2D; // [in, out]
  const wc = tf.keep(tf.clone(w)); // [out, in]
  const bc = b ? tf.keep(tf.clone(b)) : undefined;
  return {
    wT, w: wc, b: bc, inFeatures, outFeatures,
    dispose() {
      wT.dispose();
      wc.dispose();
      bc?.dispose();
    },
  };
}

/** The trainable LoRA factors of one layer, PEFT layout. */
export interface LoraFactors {
  /** A [r, in] */
  A: tf.Tensor2D;
  /** B [out, r] */
  B: tf.Tensor2D;
  /** α/r, α/√r (rsLoRA) or 1. */
  scaling: number;
}

export interface LoraLinearOptions {
  /**
   * Whether x needs a gradient (false for the first layer fed with data: skips dx = dy·W, the
   * largest product of the backward pass). Default true.
   */
  inputGrad?: boolean;
}

/**
 * y = x Wᵀ + b + s·(x Aᵀ) Bᵀ for x [N, in] → [N, out], with gradients for A, B (and x).
 * `lora` null gives the frozen layer alone (gradient for x only).
 */
export function loraLinear(
  x: tf.Tensor2D,
  frozen: PackedFrozenLinear,
  lora: LoraFactors | null,
  opts: LoraLinearOptions = {},
): tf.Tensor2D {
  if (x.rank !== 2 || x.shape[1] !== frozen.inFeatures) {
    throw new Error(`loraLinear: input should have shape [N, ${frozen.inFeatures}], got [${x.shape.join(', ')}]`);
  }
  const inputGrad = opts.inputGrad ?? true;
  const base = (xx: tf.Tensor2D): tf.Tensor2D =>
    (frozen.b ? tf.fused.matMul({ a: xx, b: frozen.wT, bias: frozen.b }) : tf.matMul(xx, frozen.wT)) as tf.Tensor2D; // [N, out]

  if (!lora) {
    if (!inputGrad) return base(x);
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: base(args[0] as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor2D) => [tf.matMul(dy, frozen.w)], // [N, in]
    }));
    return f(x) as tf.Tensor2D;
  }

  const { A, B, scaling: s } = lora;
  const forward = (xx: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const h = tf.matMul(xx, A, false, true); // [N, r]
    const y = tf.add(base(xx), tf.matMul(tf.mul(h, s), B, false, true)) as tf.Tensor2D; // [N, out]
    save([xx, h]);
    return y;
  };
  const backward = (dy: tf.Tensor2D, xx: tf.Tensor2D, h: tf.Tensor2D) => {
    const dB = tf.mul(tf.matMul(dy, h, true, false), s) as tf.Tensor2D; // [out, r] = s·dyᵀh
    const dh = tf.mul(tf.matMul(dy, B), s) as tf.Tensor2D; // [N, r] = s·dy·B
    const dA = tf.matMul(dh, xx, true, false); // [r, in] = dhᵀx
    return { dA, dB, dh };
  };

  if (inputGrad) {
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xx, , , save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
      return {
        value: forward(xx, save),
        gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
          const [xs, h] = saved as tf.Tensor2D[];
          const { dA, dB, dh } = backward(dy, xs, h);
          const dx = tf.add(tf.matMul(dy, frozen.w), tf.matMul(dh, A)); // [N, in]
          return [dx, dA, dB];
        },
      };
    });
    return f(x, A, B) as tf.Tensor2D;
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [, , save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    return {
      value: forward(x, save),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xs, h] = saved as tf.Tensor2D[];
        const { dA, dB } = backward(dy, xs, h);
        return [dA, dB];
      },
    };
  });
  return f(A, B) as tf.Tensor2D;
}
