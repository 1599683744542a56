// Frozen weights outside the tensor heap: the frozen linear and embedding weights of a loaded model
// stay in the bytes they were read into (their stored dtype: F32, BF16 or F16), held by the native
// kernels, and the products that use them read them there (native/src/frozen.c, frozenMatMul
// and frozenGather). The 4 GiB wasm heap then holds activations, LoRA parameters and optimizer state
// only. Without the native kernels (or on another backend) this path is unavailable and the weights
// go into the heap as float32 tensors as before, which bounds the model to what fits there.
import * as tf from '@tensorflow/tfjs-core';
import type { NativeKernels } from './nativeKernels';
import type { WasmInternals } from './wasm/backendInternals';
import { nativeOnWasm } from './wasmFastKernels';

export type FrozenDtype = 'F32' | 'BF16' | 'F16';

/** A frozen weight W [rows, cols] as stored (a torch Linear's [out, in], an embedding's [vocab, hidden]). */
export interface FrozenWeight {
  readonly handle: object;
  readonly rows: number;
  readonly cols: number;
  readonly dtype: FrozenDtype;
  /** Bytes held outside the heap (the stored tensor). */
  readonly bytes: number;
}

type FrozenNative = Required<Pick<NativeKernels, 'frozenWeight' | 'frozenMatMul' | 'frozenGather'>>;

/** The native kernels with frozen-weight products and the wasm backend's internals, when it runs on them. */
function frozenOnWasm(): { nk: FrozenNative; be: WasmInternals } | undefined {
  return nativeOnWasm('frozenWeight', 'frozenMatMul', 'frozenGather');
}

/** The native kernels with frozen-weight products, when the wasm backend runs on them. */
export function frozenNative(): FrozenNative | undefined {
  return frozenOnWasm()?.nk;
}

/** Hands `bytes` (W [rows, cols] in `dtype`) to the native kernels; throws when they are not in use. */
export function makeFrozenWeight(bytes: Uint8Array, dtype: FrozenDtype, rows: number, cols: number): FrozenWeight {
  const nk = frozenNative();
  if (!nk) throw new Error('frozen weights outside the heap need the native kernels on the wasm backend');
  return { handle: nk.frozenWeight(bytes, dtype, rows, cols), rows, cols, dtype, bytes: bytes.length };
}

function rawProduct({ nk, be: wi }: { nk: FrozenNative; be: WasmInternals }, x: tf.Tensor, w: FrozenWeight, mode: 0 | 1): tf.Tensor2D {
  const k = mode === 0 ? w.cols : w.rows;
  const outs = mode === 0 ? w.rows : w.cols;
  if (x.shape[x.shape.length - 1] !== k) throw new RangeError(`frozenMatMul: x is [${x.shape}] but W [${w.rows}, ${w.cols}]${mode === 0 ? 'ᵀ' : ''} needs ${k} inputs`);
  if (x.dtype !== 'float32') throw new TypeError(`frozenMatMul: x must be float32, got ${x.dtype}`);
  const n = x.size / k;
  const out = wi.makeOutput([n, outs], 'float32');
  const xOff = wi.offset(x);
  const yOff = wi.offset(out);
  const heap = wi.heap(Math.max(xOff + n * k, yOff + n * outs)); // after makeOutput: it may grow the heap
  try {
    nk.frozenMatMul(w.handle, heap, xOff, heap, yOff, n, mode);
  } catch (e) {
    wi.disposeData(out.dataId);
    throw e;
  }
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor2D;
}

/**
 * x [..., k] times the frozen W: mode 0 x·Wᵀ (k = cols; a Linear stored [out, in], a tied output
 * layer), mode 1 x·W (k = rows; a GPT-2 Conv1D stored [in, out]). The gradient reaches x only.
 */
export function frozenMatMul(x: tf.Tensor, w: FrozenWeight, mode: 0 | 1): tf.Tensor {
  const native = frozenOnWasm();
  if (!native) throw new Error('frozenMatMul: the native kernels are not in use on the wasm backend');
  const lead = x.shape.slice(0, -1);
  const outs = mode === 0 ? w.rows : w.cols;
  const op = tf.customGrad((xi: tf.Tensor | tf.GradSaveFunc) => ({
    value: rawProduct(native, xi as tf.Tensor, w, mode),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [rawProduct(native, dy as tf.Tensor, w, mode === 0 ? 1 : 0)],
  }));
  return tf.reshape(op(tf.reshape(x, [-1, x.shape[x.shape.length - 1]])), [...lead, outs]);
}

/** Rows ids of the frozen W as float32: [...ids.shape, cols] (an embedding lookup; no gradient). */
export function frozenGather(w: FrozenWeight, ids: tf.Tensor): tf.Tensor {
  const native = frozenOnWasm();
  if (!native) throw new Error('frozenGather: the native kernels are not in use on the wasm backend');
  if (ids.dtype !== 'int32') throw new TypeError(`frozenGather: ids must be int32, got ${ids.dtype}`);
  const { nk, be: wi } = native;
  const count = ids.size;
  const out = wi.makeOutput([count, w.cols], 'float32');
  const iOff = wi.offset(ids);
  const oOff = wi.offset(out);
  const heap = wi.heap(Math.max(iOff + count, oOff + count * w.cols));
  try {
    nk.frozenGather(w.handle, new Int32Array(heap.buffer, heap.byteOffset + iOff * 4, count), 0, count, heap, oOff);
  } catch (e) {
    wi.disposeData(out.dataId);
    throw e;
  }
  return tf.reshape(tf.engine().makeTensorFromTensorInfo(out), [...ids.shape, w.cols]);
}
