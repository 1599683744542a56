// Fast paths for the tfjs wasm backend, registered as kernel overrides.
//
// Why: the wasm backend sends a matMul to XNNPACK only when it
// is 2-D (batch 1) and neither operand is transposed; every other case falls to a naive C++ triple
// loop, an order of magnitude slower. Attention (batched Q·Kᵀ, P·V) and every LoRA backward pass (dyᵀ·h,
// dhᵀ·x) hit the slow loop. This override keeps XNNPACK for everything:
//   - a transposed operand is materialised with the backend's Transpose kernel (O(n²) copy) and,
//     when that is cheaper, the product is computed transposed (Cᵀ = op(B)ᵀ·op(A)ᵀ) instead;
//   - a batched product runs as one XNNPACK call per batch entry on zero-copy sub-views: the
//     entries are registered as temporary tensor ids that point inside the operands' wasm memory.
// And tanh, far slower than sigmoid on this backend, is computed as 2·σ(2x) − 1; a transpose of
// the last two axes uses a cache-blocked copy (tfjs's goes element by element on 2-D shapes);
// Identity and same-dtype Cast share the data instead of copying it.
//
// With the native kernels (native/src, loaded by src/runs/nativeLoader.ts where they were built),
// every float32 BatchMatMul and every bias-only _FusedMatMul goes to them instead: one cache-blocked
// AVX-512 / AVX2 / NEON product per call, transposes and batches handled by the packing, on
// the operands in place in the wasm heap (zero-copy), faster than XNNPACK where the CPU has wider
// vectors than wasm's 128 bits.
//
// Use: `registerWasmFastKernels(native?)` once after the wasm backend is initialised (it is a no-op
// on other backends' kernels); it returns a function that restores the original kernels.
import * as tf from '@tensorflow/tfjs-core';
import type { NativeKernels } from './nativeKernels';
import { GELU_TANH, GELU_TANH_GRAD } from './gelu';
import { NORM, NORM_GRAD } from './norm';

/** The parts of tfjs-backend-wasm's BackendWasm that the fast paths use (it exports no types). */
export interface WasmBackendInternals {
  wasm: {
    cwrap(name: string, ret: null | string, args: string[]): (...args: unknown[]) => unknown;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
    HEAPF32: Float32Array;
  };
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number }; has(dataId: object): boolean };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
}

type RawMatMul = (
  aId: number, aShape: Uint8Array, aRank: number,
  bId: number, bShape: Uint8Array, bRank: number,
  transposeA: number, transposeB: number, outId: number,
) => void;

export interface FastKernelStats {
  /** BatchMatMul calls answered by one direct XNNPACK call (2-D, no transpose). */
  direct: number;
  /** Calls that needed a materialised transpose or the Cᵀ form. */
  transposed: number;
  /** Calls split into per-batch XNNPACK calls on sub-views. */
  batched: number;
  /** Transposed copies made of long-lived right operands (see cachedTranspose). */
  cachedTransposes: number;
  /** Products computed by the native kernels (BatchMatMul and _FusedMatMul). */
  native: number;
  /** Exp kernels computed by the native kernels. */
  nativeExp: number;
  /** GELU forward and backward kernels computed by the native kernels. */
  nativeGelu: number;
  /** LayerNorm / RMSNorm forward and backward kernels computed by the native kernels. */
  nativeNorm: number;
}

const stats: FastKernelStats = { direct: 0, transposed: 0, batched: 0, cachedTransposes: 0, native: 0, nativeExp: 0, nativeGelu: 0, nativeNorm: 0 };
/** Right operands smaller than this are transposed on every call (cheap) rather than cached. */
const CACHE_MIN_ELEMENTS = 16384;
let disposeCache: ((be: WasmBackendInternals) => void) | undefined;

/** Counters since the last registration (for tests and the bench: proves the fast path ran). */
export function fastKernelStats(): FastKernelStats {
  return { ...stats };
}

/** dst[b][j][i] = src[b][i][j] on one Float32Array, in 32×32 tiles (both sides stay in cache). */
export function transposeBlocked(heap: Float32Array, src0: number, dst0: number, batch: number, rows: number, cols: number): void {
  const T = 32;
  for (let b = 0; b < batch; b++) {
    const s = src0 + b * rows * cols;
    const d = dst0 + b * rows * cols;
    for (let i0 = 0; i0 < rows; i0 += T) {
      const i1 = Math.min(i0 + T, rows);
      for (let j0 = 0; j0 < cols; j0 += T) {
        const j1 = Math.min(j0 + T, cols);
        for (let i = i0; i < i1; i++) {
          const si = s + i * cols;
          for (let j = j0; j < j1; j++) heap[d + j * rows + i] = heap[si + j];
        }
      }
    }
  }
}

/**
 * The wasm heap as floats, covering at least `end` elements. Emscripten refreshes HEAPF32 when the
 * main thread grows the memory; this re-reads the memory's buffer if the view is stale (the
 * threaded build's shared memory) and fails loudly rather than let typed-array writes past the end
 * be silently dropped.
 */
export function heapF32(be: WasmBackendInternals, end: number): Float32Array {
  let heap = be.wasm.HEAPF32;
  if (heap.length < end) {
    const w = be.wasm as unknown as { wasmMemory?: { buffer: ArrayBufferLike }; asm?: { memory?: { buffer: ArrayBufferLike } } };
    const buf = w.wasmMemory?.buffer ?? w.asm?.memory?.buffer;
    if (buf) heap = new Float32Array(buf);
  }
  if (heap.length < end) throw new Error(`wasm fast kernels: the heap view (${heap.length} floats) does not reach element ${end}`);
  return heap;
}

/** A tensor's place in the wasm heap, in floats (its byte offset / 4). */
export function f32Offset(be: WasmBackendInternals, t: tf.TensorInfo): number {
  // memoryOffset is unsigned (a 4 GiB memory has offsets past 2^31), so no signed shift here.
  return be.dataIdMap.get(t.dataId).memoryOffset / 4;
}

/**
 * The end (in floats) of the last of these tensors in the heap: each one's offset plus its own size,
 * so a small tensor (a norm weight) at the top of the heap is not taken for a large one.
 */
export function heapEnd(be: WasmBackendInternals, ts: tf.TensorInfo[]): number {
  let end = 0;
  for (const t of ts) end = Math.max(end, f32Offset(be, t) + tf.util.sizeFromShape(t.shape));
  return end;
}

let installed: (() => void) | undefined;

/** Whether the overrides are currently registered. */
export function wasmFastKernelsActive(): boolean {
  return installed !== undefined;
}

/** The native kernels the overrides use now (undefined: the pure wasm paths). */
let activeNative: NativeKernels | undefined;
export function wasmNativeKernels(): NativeKernels | undefined {
  return activeNative;
}

/**
 * Registers the wasm fast kernels (BatchMatMul, _FusedMatMul, Exp, Transpose, Tanh, Identity, Cast, GatherV2) in
 * place of tfjs's own; with `native`, matrix products go to the native kernels. Call after
 * `tf.setBackend('wasm')` resolved. Returns a function that restores the originals. A second call
 * with the same native kernels (or none again) returns the same restore function and changes nothing;
 * with different ones it restores the originals and registers anew, so the kernels in use are always
 * the ones last asked for (what the backend report says).
 */
export function registerWasmFastKernels(native?: NativeKernels): () => void {
  if (installed) {
    if (native === activeNative) return installed;
    installed();
  }
  activeNative = native;
  const origMatMul = tf.getKernel(tf.BatchMatMul, 'wasm');
  const origFused = tf.getKernel(tf._FusedMatMul, 'wasm');
  const origExp = tf.getKernel(tf.Exp, 'wasm');
  const origTanh = tf.getKernel(tf.Tanh, 'wasm');
  const origTranspose = tf.getKernel(tf.Transpose, 'wasm');
  const origIdentity = tf.getKernel(tf.Identity, 'wasm');
  const origCast = tf.getKernel(tf.Cast, 'wasm');
  const origGather = tf.getKernel(tf.GatherV2, 'wasm');
  const sigmoidK = tf.getKernel(tf.Sigmoid, 'wasm');
  const multiplyK = tf.getKernel(tf.Multiply, 'wasm');
  const addK = tf.getKernel(tf.Add, 'wasm');
  if (!origMatMul || !origFused || !origExp || !origTanh || !origTranspose || !origIdentity || !origCast || !origGather || !sigmoidK || !multiplyK || !addK) {
    throw new Error('registerWasmFastKernels: the wasm backend kernels are not registered (import @tensorflow/tfjs-backend-wasm first)');
  }
  // The C entry point, bound to one wasm module: re-bound when the backend is replaced (e.g. by the
  // threaded build of src/engine/wasmThreads.ts after these kernels were registered).
  let raw: RawMatMul | undefined;
  let rawModule: object | undefined;
  stats.direct = stats.transposed = stats.batched = stats.cachedTransposes = stats.native = stats.nativeExp = stats.nativeGelu = stats.nativeNorm = 0;

  // tfjs's wasm Transpose runs at ~20 ns per element on these shapes; a cache-blocked loop over
  // the heap in JS does ~1 ns. x is [batch, rows, cols] → [batch, cols, rows].
  const transposeLast2 = (be: WasmBackendInternals, x: tf.TensorInfo): tf.TensorInfo => {
    const [batch, rows, cols] = x.shape;
    const out = be.makeOutput([batch, cols, rows], 'float32');
    const src0 = f32Offset(be, x);
    const dst0 = f32Offset(be, out);
    const heap = heapF32(be, Math.max(src0, dst0) + batch * rows * cols); // after makeOutput: it may grow the memory
    transposeBlocked(heap, src0, dst0, batch, rows, cols);
    return out;
  };

  /**
   * C[i] = A[i]·B[i] for row-major a3 [ba, m, k], b3 [bb, k, n] (ba, bb ∈ {1, batch}), one XNNPACK
   * call per entry on sub-views, written into a new [batch, m, n] output.
   */
  // [k, n] under which each right operand's buffer was first handed to XNNPACK by its own id.
  const bShapes = new WeakMap<object, string>();
  /** Whether B may go to XNNPACK under its own id as [k, n] (records the first use). */
  const ownIdOk = (b: tf.TensorInfo, k: number, n: number): boolean => {
    const key = `${k},${n}`;
    const known = bShapes.get(b.dataId);
    if (known === undefined) bShapes.set(b.dataId, key);
    return known === undefined || known === key;
  };

  const plainBatched = (be: WasmBackendInternals, a3: tf.TensorInfo, b3: tf.TensorInfo): tf.TensorInfo => {
    if (rawModule !== be.wasm) raw = undefined;
    rawModule = be.wasm;
    raw ??= be.wasm.cwrap(tf.BatchMatMul, null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
    ]) as RawMatMul;
    const [ba, m, k] = a3.shape;
    const [bb, , n] = b3.shape;
    const batch = Math.max(ba, bb);
    const out = be.makeOutput([batch, m, n], 'float32');
    const aOff = be.dataIdMap.get(a3.dataId).memoryOffset;
    const bOff = be.dataIdMap.get(b3.dataId).memoryOffset;
    const oOff = be.dataIdMap.get(out.dataId).memoryOffset;
    const aShape = new Uint8Array(new Int32Array([1, m, k]).buffer);
    const bShape = new Uint8Array(new Int32Array([1, k, n]).buffer);
    const view = (offset: number, size: number): number => {
      const id = be.dataIdNextNumber++;
      be.wasm.tfjs.registerTensor(id, size, offset);
      return id;
    };
    // One shared B (e.g. a weight broadcast over the batch) keeps one id, so XNNPACK packs it once.
    if (batch === 1) {
      // One product: pass the tensors' own ids, so XNNPACK's packed-weights cache (keyed by B's
      // id alone) is hit on every call with a long-lived B (frozen weights, cached transposes).
      // The cached operator keeps B's first [k, n]: a buffer seen before as another shape (a
      // reshape shares the id) gets a fresh id instead, so it is packed anew.
      if (ownIdOk(b3, k, n)) {
        raw(be.dataIdMap.get(a3.dataId).id, aShape, 3, be.dataIdMap.get(b3.dataId).id, bShape, 3, 0, 0, be.dataIdMap.get(out.dataId).id);
        return out;
      }
    }
    const sharedB = bb === 1 ? view(bOff, k * n) : 0;
    try {
      for (let i = 0; i < batch; i++) {
        const ia = view(aOff + (ba === 1 ? 0 : i * m * k * 4), m * k);
        const ib = sharedB || view(bOff + i * k * n * 4, k * n);
        const io = view(oOff + i * m * n * 4, m * n);
        try {
          raw(ia, aShape, 3, ib, bShape, 3, 0, 0, io);
        } finally {
          be.wasm.tfjs.disposeData(ia);
          if (!sharedB) be.wasm.tfjs.disposeData(ib);
          be.wasm.tfjs.disposeData(io);
        }
      }
    } finally {
      if (sharedB) be.wasm.tfjs.disposeData(sharedB);
    }
    return out;
  };

  // Transposed copies of long-lived right operands (a frozen Wᵀ used as W in dx = dy·W): made on
  // the second use of the same tensor, kept while it lives, freed on the first call after it is
  // disposed. Tensor data never changes in place in tfjs (Variable.assign swaps the data id), so a
  // copy keyed by data id is never stale.
  const seen = new WeakSet<object>();
  const tcache = new Map<object, tf.TensorInfo>();
  const cachedTranspose = (be: WasmBackendInternals, b3: tf.TensorInfo): tf.TensorInfo | undefined => {
    for (const [src, info] of tcache) {
      if (!be.dataIdMap.has(src)) {
        be.disposeData(info.dataId);
        tcache.delete(src);
      }
    }
    if (b3.shape[1] * b3.shape[2] < CACHE_MIN_ELEMENTS) return undefined;
    const hit = tcache.get(b3.dataId);
    if (hit) return hit;
    if (!seen.has(b3.dataId)) {
      seen.add(b3.dataId);
      return undefined;
    }
    const t = transposeLast2(be, b3);
    tcache.set(b3.dataId, t);
    stats.cachedTransposes++;
    return t;
  };
  disposeCache = (be) => {
    for (const info of tcache.values()) be.disposeData(info.dataId);
    tcache.clear();
  };

  /**
   * op(A)·op(B) (+ bias of n) by the native kernels, on the operands where they lie in the wasm heap.
   * a and b as stored: [batchA, ·, ·], [batchB, ·, ·] with batchA, batchB ∈ {1, batch}.
   */
  const nativeProduct = (
    nk: NativeKernels, be: WasmBackendInternals, a: tf.TensorInfo, b: tf.TensorInfo, bias: tf.TensorInfo | undefined,
    batchA: number, batchB: number, m: number, n: number, k: number, transposeA: boolean, transposeB: boolean,
    outShape: number[],
  ): tf.TensorInfo => {
    const batch = Math.max(batchA, batchB);
    const out = be.makeOutput(outShape, 'float32');
    const aOff = f32Offset(be, a);
    const bOff = f32Offset(be, b);
    const oOff = f32Offset(be, out);
    const biasOff = bias ? f32Offset(be, bias) : 0;
    // After makeOutput: it may have grown (and so replaced) the heap.
    const heap = heapF32(be, Math.max(aOff + batchA * m * k, bOff + batchB * k * n, oOff + batch * m * n, biasOff + (bias ? n : 0)));
    const flags = (transposeA ? 1 : 0) | (transposeB ? 2 : 0) | (batchA > 1 ? 4 : 0) | (batchB > 1 ? 8 : 0);
    try {
      nk.gemm(heap, aOff, heap, bOff, heap, oOff, bias ? heap : null, biasOff, batch, m, n, k, flags);
    } catch (e) {
      be.disposeData(out.dataId);
      throw e;
    }
    stats.native++;
    return out;
  };

  const batchMatMul: tf.KernelFunc = (args) => {
    const be = args.backend as unknown as WasmBackendInternals;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const ra = a.shape.length;
    const rb = b.shape.length;
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || (batchA !== batchB && batchA !== 1 && batchB !== 1)) {
      return origMatMul.kernelFunc(args);
    }
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if (k !== kb) {
      return origMatMul.kernelFunc(args); // let tfjs raise its own shape error
    }
    if (native) {
      const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)).concat([m, n]);
      return nativeProduct(native, be, a, b, undefined, batchA, batchB, m, n, k, transposeA, transposeB, outShape);
    }
    if (!transposeA && !transposeB && batchA === 1 && batchB === 1 && ownIdOk(b, k, n)) {
      stats.direct++;
      return origMatMul.kernelFunc(args);
    }
    const outShape = tf.broadcast_util
      .assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2))
      .concat([m, n]);
    // The operands as stored, viewed 3-D (a reshape on this backend shares memory).
    const a3: tf.TensorInfo = { dataId: a.dataId, dtype: 'float32', shape: transposeA ? [batchA, k, m] : [batchA, m, k] };
    const b3: tf.TensorInfo = { dataId: b.dataId, dtype: 'float32', shape: transposeB ? [batchB, n, k] : [batchB, k, n] };
    if (transposeA || transposeB) stats.transposed++;
    if (Math.max(batchA, batchB) > 1) stats.batched++;

    // Elements copied by each plan: C = op(A)·op(B) directly, or Cᵀ = op(B)ᵀ·op(A)ᵀ then transpose C.
    const sizeA = batchA * m * k;
    const sizeB = batchB * k * n;
    const sizeC = Math.max(batchA, batchB) * m * n;
    const cachedBt = transposeB && batchB === 1 ? cachedTranspose(be, b3) : undefined;
    const direct = (transposeA ? sizeA : 0) + (transposeB && !cachedBt ? sizeB : 0);
    const viaCt = (transposeA ? 0 : sizeA) + (transposeB ? 0 : sizeB) + sizeC;
    const temps: tf.TensorInfo[] = [];
    try {
      let result: tf.TensorInfo;
      if (direct <= viaCt) {
        const aa = transposeA ? transposeLast2(be, a3) : a3;
        if (transposeA) temps.push(aa);
        const bb = cachedBt ?? (transposeB ? transposeLast2(be, b3) : b3);
        if (transposeB && !cachedBt) temps.push(bb);
        result = plainBatched(be, aa, bb);
      } else {
        // Cᵀ = op(B)ᵀ · op(A)ᵀ: B's stored layout is already op(B)ᵀ when transposeB, etc.
        const bt = transposeB ? b3 : transposeLast2(be, b3); // [bb, n, k]
        if (!transposeB) temps.push(bt);
        const at = transposeA ? a3 : transposeLast2(be, a3); // [ba, k, m]
        if (!transposeA) temps.push(at);
        const ct = plainBatched(be, bt, at); // [batch, n, m]
        temps.push(ct);
        result = transposeLast2(be, ct);
      }
      return { dataId: result.dataId, dtype: 'float32', shape: outShape };
    } finally {
      for (const t of temps) be.disposeData(t.dataId);
    }
  };

  // tf.fused.matMul with a bias of n and no activation (the frozen linear layer's x·Wᵀ + b): the
  // native product adds the bias in its last pass. Anything else: tfjs's own kernel, except that
  // tfjs-backend-wasm 4.22's adds bias[n-1] to every row after the first whenever a bias meets a
  // transposed or batched operand (its non-XNNPACK loop): there the product (this file's
  // BatchMatMul), the bias (Add) and the activation are computed as separate kernels.
  const ACTIVATIONS: Record<string, string> = { relu: tf.Relu, relu6: tf.Relu6, elu: tf.Elu, sigmoid: tf.Sigmoid, leakyrelu: tf.LeakyRelu, prelu: tf.Prelu };
  const viaOriginalFused = (args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as {
      transposeA: boolean; transposeB: boolean; activation?: string; leakyreluAlpha?: number;
    };
    const batched = a && b && (a.shape.length > 2 || b.shape.length > 2) && tf.util.sizeFromShape([...a.shape.slice(0, -2), ...b.shape.slice(0, -2)]) > 1;
    if (!a || !b || !bias || !(transposeA || transposeB || batched)) return origFused.kernelFunc(args) as tf.TensorInfo;
    const be = args.backend as unknown as WasmBackendInternals;
    const call = (kernel: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo => {
      const kc = tf.getKernel(kernel, 'wasm');
      if (!kc) throw new Error(`fused matMul: the wasm backend has no ${kernel} kernel (activation "${activation}")`);
      return kc.kernelFunc({ inputs, backend: be as never, attrs }) as tf.TensorInfo;
    };
    const product = batchMatMul({ inputs: { a, b }, backend: args.backend, attrs: { transposeA, transposeB } }) as tf.TensorInfo;
    let biased: tf.TensorInfo;
    try {
      biased = call(tf.Add, { a: product, b: bias });
    } finally {
      be.disposeData(product.dataId);
    }
    if (activation === undefined || activation === 'linear') return biased;
    const kernel = ACTIVATIONS[activation];
    try {
      if (!kernel) throw new Error(`fused matMul: unknown activation "${activation}"`);
      if (kernel === tf.Prelu) return call(kernel, { x: biased, alpha: preluActivationWeights! });
      return call(kernel, { x: biased }, kernel === tf.LeakyRelu ? { alpha: leakyreluAlpha ?? 0.2 } : {});
    } finally {
      be.disposeData(biased.dataId);
    }
  };
  const fusedMatMul: tf.KernelFunc = (args) => {
    const be = args.backend as unknown as WasmBackendInternals;
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { transposeA, transposeB, activation } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean; activation?: string };
    if (!native || !a || !b || preluActivationWeights || (activation !== undefined && activation !== 'linear')) {
      return viaOriginalFused(args);
    }
    const ra = a.shape.length;
    const rb = b.shape.length;
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    const biasIsRow = !bias || (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === n && bias.shape.slice(0, -1).every((d) => d === 1));
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || k !== kb || !biasIsRow || (batchA !== batchB && batchA !== 1 && batchB !== 1)) {
      return viaOriginalFused(args);
    }
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)).concat([m, n]);
    return nativeProduct(native, be, a, b, bias, batchA, batchB, m, n, k, transposeA, transposeB, outShape);
  };

  // Exp (softmax, cross-entropy, SiLU's sigmoid is separate): tfjs's wasm kernel calls libm per
  // element (~6.5 ns); the native loop is vectorised (~0.4-1.8 ns). Float32 only.
  const exp: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!native || x.dtype !== 'float32') return origExp.kernelFunc(args);
    const be = args.backend as unknown as WasmBackendInternals;
    const size = tf.util.sizeFromShape(x.shape);
    const out = be.makeOutput(x.shape, 'float32');
    if (size === 0) return out;
    const xOff = f32Offset(be, x);
    const oOff = f32Offset(be, out);
    const heap = heapF32(be, Math.max(xOff, oOff) + size); // after makeOutput
    native.exp(heap, xOff, heap, oOff, size);
    stats.nativeExp++;
    return out;
  };

  const tanh: tf.KernelFunc = (args) => {
    const be = args.backend as unknown as WasmBackendInternals;
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return origTanh.kernelFunc(args);
    // tanh(x) = 2·σ(2x) − 1: four fast elementwise passes instead of one slow libm tanh.
    const two = be.makeOutput([], 'float32', undefined, new Float32Array([2]));
    const minusOne = be.makeOutput([], 'float32', undefined, new Float32Array([-1]));
    const call = (kc: tf.KernelConfig, inputs: tf.NamedTensorInfoMap): tf.TensorInfo =>
      kc.kernelFunc({ inputs, backend: be as never, attrs: {} }) as tf.TensorInfo;
    const x2 = call(multiplyK, { a: x, b: two });
    const s = call(sigmoidK, { x: x2 });
    const s2 = call(multiplyK, { a: s, b: two });
    const out = call(addK, { a: s2, b: minusOne });
    for (const t of [two, minusOne, x2, s, s2]) be.disposeData(t.dataId);
    return out;
  };

  // tf.transpose of the last two axes (Aᵀ of a LoRA factor, a weight, a gradient): the blocked copy.
  const transpose: tf.KernelFunc = (args) => {
    const be = args.backend as unknown as WasmBackendInternals;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { perm } = args.attrs as unknown as { perm: number[] };
    const r = perm.length;
    const swapsLastTwo = r >= 2 && perm[r - 2] === r - 1 && perm[r - 1] === r - 2 && perm.slice(0, -2).every((p, i) => p === i);
    if (x.dtype !== 'float32' || !swapsLastTwo) return origTranspose.kernelFunc(args);
    const rows = x.shape[r - 2];
    const cols = x.shape[r - 1];
    const batch = tf.util.sizeFromShape(x.shape.slice(0, -2));
    const out = transposeLast2(be, { dataId: x.dataId, dtype: 'float32', shape: [batch, rows, cols] });
    return { dataId: out.dataId, dtype: 'float32', shape: [...x.shape.slice(0, -2), cols, rows] };
  };

  // Identity and same-dtype Cast (tfjs's gradients emit many: Multiply's gradient casts both operands
  // to float32) copy the whole tensor on this backend. Tensor data is immutable in tfjs, so they can
  // share it, as Reshape already does here and as the cpu backend's Identity does.
  const share = (be: WasmBackendInternals, x: tf.TensorInfo): tf.TensorInfo => {
    be.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  const identity: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    return x.dtype === 'string' ? origIdentity.kernelFunc(args) : share(args.backend as unknown as WasmBackendInternals, x);
  };
  const cast: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
    return dtype === x.dtype && dtype !== 'string' ? share(args.backend as unknown as WasmBackendInternals, x) : origCast.kernelFunc(args);
  };

  // GatherV2 on the first axis (an embedding lookup): tfjs's takes ~25 ns per element (824 µs for
  // 512 rows of 64); whole rows are copied with copyWithin instead (~5 µs). Other cases: tfjs's.
  const gather: tf.KernelFunc = (args) => {
    const be = args.backend as unknown as WasmBackendInternals;
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    const fourBytes = x.dtype === 'float32' || x.dtype === 'int32';
    if (!fourBytes || indices.dtype !== 'int32' || x.shape.length < 1 || tf.util.parseAxisParam(axis, x.shape)[0] !== 0 || (batchDims ?? 0) !== 0) {
      return origGather.kernelFunc(args);
    }
    const rows = x.shape[0];
    const row = tf.util.sizeFromShape(x.shape.slice(1));
    const nIdx = tf.util.sizeFromShape(indices.shape);
    const out = be.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const xOff = f32Offset(be, x);
    const iOff = f32Offset(be, indices);
    const oOff = f32Offset(be, out);
    const heap = heapF32(be, Math.max(xOff + rows * row, iOff + nIdx, oOff + nIdx * row)); // after makeOutput
    const idx = new Int32Array(heap.buffer, heap.byteOffset + iOff * 4, nIdx);
    for (let i = 0; i < nIdx; i++) {
      const r = idx[i];
      if (!(r >= 0 && r < rows)) {
        be.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      }
      heap.copyWithin(oOff + i * row, xOff + r * row, xOff + (r + 1) * row); // byte-exact (int32 too)
    }
    return out;
  };

  // The fused GELU of kernels/gelu.ts (kernels of our own, not overrides), with the native kernels.
  const elementwise = (be: WasmBackendInternals, ins: tf.TensorInfo[], outs: number): { heap: Float32Array; offs: number[]; out: tf.TensorInfo[]; n: number } => {
    for (const t of ins) {
      if (t.dtype !== 'float32') throw new Error(`fused GELU: inputs must be float32, got ${t.dtype}`);
      if (!tf.util.arraysEqual(t.shape, ins[0].shape)) throw new Error(`fused GELU: shapes differ: [${t.shape}] vs [${ins[0].shape}]`);
    }
    const n = tf.util.sizeFromShape(ins[0].shape);
    const out = Array.from({ length: outs }, () => be.makeOutput(ins[0].shape, 'float32'));
    const offs = [...ins, ...out].map((t) => f32Offset(be, t));
    return { heap: heapF32(be, Math.max(...offs) + n), offs, out, n }; // heap after makeOutput
  };
  const geluKernel: tf.KernelFunc = ({ inputs, backend }) => {
    const { heap, offs, out, n } = elementwise(backend as unknown as WasmBackendInternals, [inputs.x as tf.TensorInfo], 2);
    if (n > 0) native!.geluTanh(heap, offs[0], heap, offs[1], heap, offs[2], n);
    stats.nativeGelu++;
    return out;
  };
  const geluGradKernel: tf.KernelFunc = ({ inputs, backend }) => {
    const { dy, x, s: sv } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; s: tf.TensorInfo };
    const { heap, offs, out, n } = elementwise(backend as unknown as WasmBackendInternals, [dy, x, sv], 1);
    if (n > 0) native!.geluTanhGrad(heap, offs[0], heap, offs[1], heap, offs[2], heap, offs[3], n);
    stats.nativeGelu++;
    return out[0];
  };
  // The fused LayerNorm / RMSNorm of kernels/norm.ts: x [..., dim], w and b [dim], stats [rows, 2].
  const normShapes = (x: tf.TensorInfo, w: tf.TensorInfo, b?: tf.TensorInfo): { rows: number; dim: number } => {
    const dim = x.shape[x.shape.length - 1];
    for (const t of [x, w, ...(b ? [b] : [])]) if (t.dtype !== 'float32') throw new Error(`fused norm: inputs must be float32, got ${t.dtype}`);
    if (w.shape.length !== 1 || w.shape[0] !== dim || (b && (b.shape.length !== 1 || b.shape[0] !== dim))) {
      throw new Error(`fused norm: weight [${w.shape}]${b ? ` and bias [${b.shape}]` : ''} should be [${dim}] for x [${x.shape}]`);
    }
    return { rows: dim ? tf.util.sizeFromShape(x.shape) / dim : 0, dim };
  };
  const normKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
    const be = backend as unknown as WasmBackendInternals;
    const { x, w, b } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; b?: tf.TensorInfo };
    const { eps, center } = attrs as unknown as { eps: number; center: boolean };
    const { rows, dim } = normShapes(x, w, b);
    const y = be.makeOutput(x.shape, 'float32');
    const st = be.makeOutput([rows, 2], 'float32');
    const heap = heapF32(be, heapEnd(be, [x, w, ...(b ? [b] : []), y, st])); // after makeOutput
    if (rows > 0) native!.norm(heap, f32Offset(be, x), heap, f32Offset(be, w), b ? heap : null, b ? f32Offset(be, b) : 0, heap, f32Offset(be, y), heap, f32Offset(be, st), rows, dim, eps, center ? 1 : 0);
    stats.nativeNorm++;
    return [y, st];
  };
  const normGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
    const be = backend as unknown as WasmBackendInternals;
    const { dy, x, w, s: st } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; w: tf.TensorInfo; s: tf.TensorInfo };
    const { center, hasBias } = attrs as unknown as { center: boolean; hasBias: boolean };
    const { rows, dim } = normShapes(x, w);
    if (!tf.util.arraysEqual(dy.shape, x.shape)) throw new Error(`fused norm: dy [${dy.shape}] should be x's shape [${x.shape}]`);
    const dx = be.makeOutput(x.shape, 'float32');
    const dw = be.makeOutput([dim], 'float32');
    const db = hasBias ? be.makeOutput([dim], 'float32') : undefined;
    const outs = [dx, dw, ...(db ? [db] : [])];
    const heap = heapF32(be, heapEnd(be, [dy, x, w, st, ...outs])); // after makeOutput
    native!.normGrad(
      heap, f32Offset(be, dy), heap, f32Offset(be, x), heap, f32Offset(be, w), heap, f32Offset(be, st), heap, f32Offset(be, dx),
      heap, f32Offset(be, dw), db ? heap : null, db ? f32Offset(be, db) : 0, rows, dim, center ? 1 : 0,
    );
    stats.nativeNorm++;
    return outs;
  };

  const added: tf.KernelConfig[] = native
    ? [
        { kernelName: GELU_TANH, backendName: 'wasm', kernelFunc: geluKernel },
        { kernelName: GELU_TANH_GRAD, backendName: 'wasm', kernelFunc: geluGradKernel },
        { kernelName: NORM, backendName: 'wasm', kernelFunc: normKernel },
        { kernelName: NORM_GRAD, backendName: 'wasm', kernelFunc: normGradKernel },
      ]
    : [];
  for (const k of added) {
    if (tf.getKernel(k.kernelName, 'wasm')) tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel(k);
  }

  // One table for installing and restoring, so the two lists cannot drift apart.
  const overrides: [original: tf.KernelConfig, replacement: tf.KernelFunc][] = [
    [origMatMul, batchMatMul],
    [origFused, fusedMatMul],
    [origExp, exp],
    [origGather, gather],
    [origIdentity, identity],
    [origCast, cast],
    [origTranspose, transpose],
    [origTanh, tanh],
  ];
  for (const [orig, kernelFunc] of overrides) {
    tf.unregisterKernel(orig.kernelName, 'wasm');
    tf.registerKernel({ kernelName: orig.kernelName, backendName: 'wasm', kernelFunc });
  }

  installed = () => {
    const be = tf.findBackend('wasm') as unknown as WasmBackendInternals | null;
    if (be) disposeCache?.(be);
    disposeCache = undefined;
    for (const [orig] of overrides) {
      tf.unregisterKernel(orig.kernelName, 'wasm');
      tf.registerKernel(orig);
    }
    for (const k of added) tf.unregisterKernel(k.kernelName, 'wasm');
    installed = undefined;
    activeNative = undefined;
  };
  return installed;
}
