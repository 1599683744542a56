// Adam's update as ONE kernel per parameter. The textbook form on tfjs ops is ~13 kernels
// per parameter (m, v, bias corrections, sqrt, divide, subtract, plus a scalar upload for each
// constant); with the many small LoRA factors of a small model that is a quarter of all kernels of a
// training step, each paying tfjs's per-kernel overhead. This kernel reads p, m, v, g once and
// writes p', m', v' in one pass over plain arrays (the wasm heap or the cpu backend's arrays),
// rounding every intermediate to float32 as the op-by-op form does:
//   m' = β1·m + (1 − β1)·g
//   v' = β2·v + (1 − β2)·g²
//   p' = decay·p − stepSize · m' / (√v' / √(bc2) + ε)
// (torch.optim.Adam: stepSize = lr / bc1, bc2 = 1 − β2^t; decoupled weight decay: decay = 1 − lr·wd).
//
// Use: `registerFusedAdam()` once (any backend; it registers for cpu, and for wasm where
// wasm/backendInternals.ts knows the installed tfjs-backend-wasm), then
// `fusedAdamStep(p, m, v, g, attrs)` → [p', m', v'] (new tensors; assign them to the variables).
// `fusedAdamAvailable()` says whether the current backend has it (else use the op-by-op form).
import * as tf from '@tensorflow/tfjs-core';
import { wasmInternals, type WasmInternalsOf } from './wasm/backendInternals';
import { kernelsAvailable } from './registry';

export const FUSED_ADAM = 'LoraLabFusedAdam';

export interface FusedAdamAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  /** lr / (1 − β1^t) */
  stepSize: number;
  /** √(1 − β2^t) */
  sqrtBc2: number;
  /** Multiplier on p before the update (1 − lr·wd for decoupled weight decay; 1 for none). */
  decay: number;
}

const f = Math.fround;

/** The update on plain arrays (exported for tests). Outputs may not alias inputs. */
export function adamArrays(
  p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array,
  pOut: Float32Array, mOut: Float32Array, vOut: Float32Array, a: FusedAdamAttrs,
): void {
  const b1 = f(a.beta1);
  const c1 = f(1 - a.beta1);
  const b2 = f(a.beta2);
  const c2 = f(1 - a.beta2);
  const eps = f(a.eps);
  const step = f(a.stepSize);
  const sb2 = f(a.sqrtBc2);
  const decay = f(a.decay);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = f(f(m[i] * b1) + f(gi * c1));
    const vi = f(f(v[i] * b2) + f(f(gi * gi) * c2));
    const base = decay === 1 ? p[i] : f(p[i] * decay);
    mOut[i] = mi;
    vOut[i] = vi;
    pOut[i] = f(base - f(f(mi / f(f(Math.sqrt(vi) / sb2) + eps)) * step));
  }
}

type Inputs = { p: tf.TensorInfo; m: tf.TensorInfo; v: tf.TensorInfo; g: tf.TensorInfo };

function checkInputs(x: Inputs): void {
  for (const [name, t] of Object.entries(x)) {
    if (t.dtype !== 'float32') throw new Error(`fused Adam: ${name} must be float32, got ${t.dtype}`);
    if (tf.util.sizeFromShape(t.shape) !== tf.util.sizeFromShape(x.p.shape)) {
      throw new Error(`fused Adam: ${name} has shape [${t.shape}], expected the parameter's [${x.p.shape}]`);
    }
  }
}

function wasmKernel(internals: WasmInternalsOf): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const x = inputs as unknown as Inputs;
    checkInputs(x);
    const w = internals(backend);
    const n = tf.util.sizeFromShape(x.p.shape);
    const outs = [w.makeOutput(x.p.shape, 'float32'), w.makeOutput(x.p.shape, 'float32'), w.makeOutput(x.p.shape, 'float32')];
    const offs = [x.p, x.m, x.v, x.g, ...outs].map((t) => w.offset(t));
    const heap = w.heap(Math.max(...offs) + n); // after makeOutput: it may grow the memory
    const [p, m, v, g, po, mo, vo] = offs.map((o) => heap.subarray(o, o + n));
    adamArrays(p, m, v, g, po, mo, vo, attrs as unknown as FusedAdamAttrs);
    return outs;
  };
}

interface CpuBackendInternals {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo;
}

const cpuKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs as unknown as Inputs;
  checkInputs(x);
  const be = backend as unknown as CpuBackendInternals;
  const n = tf.util.sizeFromShape(x.p.shape);
  const [p, m, v, g] = [x.p, x.m, x.v, x.g].map((t) => be.data.get(t.dataId).values as Float32Array);
  const [po, mo, vo] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  adamArrays(p, m, v, g, po, mo, vo, attrs as unknown as FusedAdamAttrs);
  return [po, mo, vo].map((a) => be.makeTensorInfo(x.p.shape, 'float32', a));
};

/**
 * Registers the fused Adam kernel for the cpu backend, and for wasm where its internals are known
 * (`wasmVersion`: tfjs-backend-wasm's version as seen here, default the installed one); idempotent.
 */
export function registerFusedAdam(opts: { wasmVersion?: string } = {}): void {
  const internals = wasmInternals(opts.wasmVersion);
  if (internals && !tf.getKernel(FUSED_ADAM, 'wasm')) tf.registerKernel({ kernelName: FUSED_ADAM, backendName: 'wasm', kernelFunc: wasmKernel(internals) });
  if (!tf.getKernel(FUSED_ADAM, 'cpu')) tf.registerKernel({ kernelName: FUSED_ADAM, backendName: 'cpu', kernelFunc: cpuKernel });
}

/** Whether the current backend has the fused kernel. */
export function fusedAdamAvailable(): boolean {
  return kernelsAvailable(FUSED_ADAM);
}

/** One Adam update of one parameter: [p', m', v'] as new tensors (no gradient is recorded). */
export function fusedAdamStep(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, attrs: FusedAdamAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const out = tf.engine().runKernel(FUSED_ADAM, { p, m, v, g }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return [out[0], out[1], out[2]];
}
