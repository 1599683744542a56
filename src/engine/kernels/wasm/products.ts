// Matrix products: BatchMatMul and _FusedMatMul.
//
// Why: the wasm backend sends a matMul to XNNPACK only when it is 2-D (batch 1) and neither operand
// is transposed; every other case falls to a naive C++ triple loop, an order of magnitude slower.
// Attention (batched Q·Kᵀ, P·V) and every LoRA backward pass (dyᵀ·h, dhᵀ·x) hit the slow loop. These
// kernels keep XNNPACK for everything:
//   - a transposed operand is materialised with a blocked copy (movement.ts) and, when that is
//     cheaper, the product is computed transposed (Cᵀ = op(B)ᵀ·op(A)ᵀ) instead;
//   - a batched product runs as one XNNPACK call per batch entry on zero-copy sub-views: the
//     entries are registered as temporary tensor ids that point inside the operands' wasm memory.
//
// With the native kernels (native/src), every float32 BatchMatMul and every bias-only
// _FusedMatMul goes to them instead: one cache-blocked AVX-512 / AVX2 product per call, transposes
// and batches handled by the packing, on the operands in place in the wasm heap (zero-copy), faster
// than XNNPACK where the CPU has wider vectors than wasm's 128 bits.
import * as tf from '@tensorflow/tfjs-core';
import type { NativeKernels } from '../nativeKernels';
import type { WasmInternals } from './backendInternals';
import type { WasmKernelDeps, WasmKernelGroup } from './kernelGroup';
import { transposeLast2 } from './movement';

/** Right operands smaller than this are transposed on every call (cheap) rather than cached. */
const CACHE_MIN_ELEMENTS = 16384;

export function productKernels({ internals, original, native }: WasmKernelDeps): WasmKernelGroup {
  const origMatMul = original(tf.BatchMatMul);
  const origFused = original(tf._FusedMatMul);

  // [k, n] under which each right operand's buffer was first handed to XNNPACK by its own id.
  const bShapes = new WeakMap<object, string>();
  /** Whether B may go to XNNPACK under its own id as [k, n] (records the first use). */
  const ownIdOk = (b: tf.TensorInfo, k: number, n: number): boolean => {
    const key = `${k},${n}`;
    const known = bShapes.get(b.dataId);
    if (known === undefined) bShapes.set(b.dataId, key);
    return known === undefined || known === key;
  };

  /**
   * C[i] = A[i]·B[i] for row-major a3 [ba, m, k], b3 [bb, k, n] (ba, bb ∈ {1, batch}), one XNNPACK
   * call per entry on sub-views, written into a new [batch, m, n] output.
   */
  const plainBatched = (w: WasmInternals, a3: tf.TensorInfo, b3: tf.TensorInfo): tf.TensorInfo => {
    const [ba, m, k] = a3.shape;
    const [bb, , n] = b3.shape;
    const batch = Math.max(ba, bb);
    const product = w.matMul(m, k, n);
    const out = w.makeOutput([batch, m, n], 'float32');
    const aOff = w.byteOffset(a3);
    const bOff = w.byteOffset(b3);
    const oOff = w.byteOffset(out);
    if (batch === 1) {
      // One product: pass the tensors' own ids, so XNNPACK's packed-weights cache (keyed by B's
      // id alone) is hit on every call with a long-lived B (frozen weights, cached transposes).
      // The cached operator keeps B's first [k, n]: a buffer seen before as another shape (a
      // reshape shares the id) gets a fresh id instead, so it is packed anew.
      if (ownIdOk(b3, k, n)) {
        product(w.tensorId(a3), w.tensorId(b3), w.tensorId(out));
        return out;
      }
    }
    // One shared B (e.g. a weight broadcast over the batch) keeps one id, so XNNPACK packs it once.
    const sharedB = bb === 1 ? w.view(bOff, k * n) : 0;
    try {
      for (let i = 0; i < batch; i++) {
        const ia = w.view(aOff + (ba === 1 ? 0 : i * m * k * 4), m * k);
        const ib = sharedB || w.view(bOff + i * k * n * 4, k * n);
        const io = w.view(oOff + i * m * n * 4, m * n);
        try {
          product(ia, ib, io);
        } finally {
          w.dropView(ia);
          if (!sharedB) w.dropView(ib);
          w.dropView(io);
        }
      }
    } finally {
      if (sharedB) w.dropView(sharedB);
    }
    return out;
  };

  // Transposed copies of long-lived right operands (a frozen Wᵀ used as W in dx = dy·W): made on
  // the second use of the same tensor, kept while it lives, freed on the first call after it is
  // disposed. Tensor data never changes in place in tfjs (Variable.assign swaps the data id), so a
  // copy keyed by data id is never stale.
  const seen = new WeakSet<object>();
  const tcache = new Map<object, tf.TensorInfo>();
  const cachedTranspose = (w: WasmInternals, b3: tf.TensorInfo): tf.TensorInfo | undefined => {
    for (const [src, info] of tcache) {
      if (!w.holds(src)) {
        w.disposeData(info.dataId);
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
    const t = transposeLast2(w, b3);
    tcache.set(b3.dataId, t);
    return t;
  };

  /**
   * op(A)·op(B) (+ bias of n) by the native kernels, on the operands where they lie in the wasm heap.
   * a and b as stored: [batchA, ·, ·], [batchB, ·, ·] with batchA, batchB ∈ {1, batch}.
   */
  const nativeProduct = (
    nk: NativeKernels, w: WasmInternals, a: tf.TensorInfo, b: tf.TensorInfo, bias: tf.TensorInfo | undefined,
    batchA: number, batchB: number, m: number, n: number, k: number, transposeA: boolean, transposeB: boolean,
    outShape: number[],
  ): tf.TensorInfo => {
    const batch = Math.max(batchA, batchB);
    const out = w.makeOutput(outShape, 'float32');
    const aOff = w.offset(a);
    const bOff = w.offset(b);
    const oOff = w.offset(out);
    const biasOff = bias ? w.offset(bias) : 0;
    // After makeOutput: it may have grown (and so replaced) the heap.
    const heap = w.heap(Math.max(aOff + batchA * m * k, bOff + batchB * k * n, oOff + batch * m * n, biasOff + (bias ? n : 0)));
    const flags = (transposeA ? 1 : 0) | (transposeB ? 2 : 0) | (batchA > 1 ? 4 : 0) | (batchB > 1 ? 8 : 0);
    try {
      nk.gemm(heap, aOff, heap, bOff, heap, oOff, bias ? heap : null, biasOff, batch, m, n, k, flags);
    } catch (e) {
      w.disposeData(out.dataId);
      throw e;
    }
    return out;
  };

  const batchMatMul: tf.KernelFunc = (args) => {
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
    const w = internals(args.backend);
    if (native) {
      const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)).concat([m, n]);
      return nativeProduct(native, w, a, b, undefined, batchA, batchB, m, n, k, transposeA, transposeB, outShape);
    }
    if (!transposeA && !transposeB && batchA === 1 && batchB === 1 && ownIdOk(b, k, n)) {
      return origMatMul.kernelFunc(args);
    }
    const outShape = tf.broadcast_util
      .assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2))
      .concat([m, n]);
    // The operands as stored, viewed 3-D (a reshape on this backend shares memory).
    const a3: tf.TensorInfo = { dataId: a.dataId, dtype: 'float32', shape: transposeA ? [batchA, k, m] : [batchA, m, k] };
    const b3: tf.TensorInfo = { dataId: b.dataId, dtype: 'float32', shape: transposeB ? [batchB, n, k] : [batchB, k, n] };

    // Elements copied by each plan: C = op(A)·op(B) directly, or Cᵀ = op(B)ᵀ·op(A)ᵀ then transpose C.
    const sizeA = batchA * m * k;
    const sizeB = batchB * k * n;
    const sizeC = Math.max(batchA, batchB) * m * n;
    const cachedBt = transposeB && batchB === 1 ? cachedTranspose(w, b3) : undefined;
    const direct = (transposeA ? sizeA : 0) + (transposeB && !cachedBt ? sizeB : 0);
    const viaCt = (transposeA ? 0 : sizeA) + (transposeB ? 0 : sizeB) + sizeC;
    const temps: tf.TensorInfo[] = [];
    try {
      let result: tf.TensorInfo;
      if (direct <= viaCt) {
        const aa = transposeA ? transposeLast2(w, a3) : a3;
        if (transposeA) temps.push(aa);
        const bb = cachedBt ?? (transposeB ? transposeLast2(w, b3) : b3);
        if (transposeB && !cachedBt) temps.push(bb);
        result = plainBatched(w, aa, bb);
      } else {
        // Cᵀ = op(B)ᵀ · op(A)ᵀ: B's stored layout is already op(B)ᵀ when transposeB, etc.
        const bt = transposeB ? b3 : transposeLast2(w, b3); // [bb, n, k]
        if (!transposeB) temps.push(bt);
        const at = transposeA ? a3 : transposeLast2(w, a3); // [ba, k, m]
        if (!transposeA) temps.push(at);
        const ct = plainBatched(w, bt, at); // [batch, n, m]
        temps.push(ct);
        result = transposeLast2(w, ct);
      }
      return { dataId: result.dataId, dtype: 'float32', shape: outShape };
    } finally {
      for (const t of temps) w.disposeData(t.dataId);
    }
  };

  // tf.fused.matMul with a bias of n and no activation (the frozen linear layer's x·Wᵀ + b): the
  // native product adds the bias in its last pass. Anything else: tfjs's own kernel, except that
  // tfjs-backend-wasm 4.22's adds bias[n-1] to every row after the first whenever a bias meets a
  // transposed or batched operand (its non-XNNPACK loop): there the product (batchMatMul above), the
  // bias (Add) and the activation are computed as separate kernels.
  const ACTIVATIONS: Record<string, string> = { relu: tf.Relu, relu6: tf.Relu6, elu: tf.Elu, sigmoid: tf.Sigmoid, leakyrelu: tf.LeakyRelu, prelu: tf.Prelu };
  const viaOriginalFused = (args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as {
      transposeA: boolean; transposeB: boolean; activation?: string; leakyreluAlpha?: number;
    };
    const batched = a && b && (a.shape.length > 2 || b.shape.length > 2) && tf.util.sizeFromShape([...a.shape.slice(0, -2), ...b.shape.slice(0, -2)]) > 1;
    if (!a || !b || !bias || !(transposeA || transposeB || batched)) return origFused.kernelFunc(args) as tf.TensorInfo;
    const w = internals(args.backend);
    const call = (kernel: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo => {
      const kc = tf.getKernel(kernel, 'wasm');
      if (!kc) throw new Error(`fused matMul: the wasm backend has no ${kernel} kernel (activation "${activation}")`);
      return kc.kernelFunc({ inputs, backend: args.backend, attrs }) as tf.TensorInfo;
    };
    const product = batchMatMul({ inputs: { a, b }, backend: args.backend, attrs: { transposeA, transposeB } }) as tf.TensorInfo;
    let biased: tf.TensorInfo;
    try {
      biased = call(tf.Add, { a: product, b: bias });
    } finally {
      w.disposeData(product.dataId);
    }
    if (activation === undefined || activation === 'linear') return biased;
    const kernel = ACTIVATIONS[activation];
    try {
      if (!kernel) throw new Error(`fused matMul: unknown activation "${activation}"`);
      if (kernel === tf.Prelu) return call(kernel, { x: biased, alpha: preluActivationWeights! });
      return call(kernel, { x: biased }, kernel === tf.LeakyRelu ? { alpha: leakyreluAlpha ?? 0.2 } : {});
    } finally {
      w.disposeData(biased.dataId);
    }
  };
  const fusedMatMul: tf.KernelFunc = (args) => {
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
    return nativeProduct(native, internals(args.backend), a, b, bias, batchA, batchB, m, n, k, transposeA, transposeB, outShape);
  };

  return {
    overrides: [
      [tf.BatchMatMul, batchMatMul],
      [tf._FusedMatMul, fusedMatMul],
    ],
    added: [],
    dispose: () => {
      const be = tf.findBackend('wasm');
      if (be) for (const info of tcache.values()) internals(be).disposeData(info.dataId);
      tcache.clear();
    },
  };
}
