// Kernels that move or share data without arithmetic: Transpose (of the last two axes), Identity,
// same-dtype Cast and GatherV2 on the first axis. Everything else goes to tfjs's own kernels.
import * as tf from '@tensorflow/tfjs-core';
import type { WasmInternals } from './backendInternals';
import type { WasmKernelDeps, WasmKernelGroup } from './kernelGroup';

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
 * x [batch, rows, cols] → a new [batch, cols, rows]. tfjs's wasm Transpose goes element by element on
 * these shapes; a cache-blocked loop over the heap in JS is an order of magnitude faster.
 */
export function transposeLast2(w: WasmInternals, x: tf.TensorInfo): tf.TensorInfo {
  const [batch, rows, cols] = x.shape;
  const out = w.makeOutput([batch, cols, rows], 'float32');
  const src0 = w.offset(x);
  const dst0 = w.offset(out);
  const heap = w.heap(Math.max(src0, dst0) + batch * rows * cols); // after makeOutput
  transposeBlocked(heap, src0, dst0, batch, rows, cols);
  return out;
}

export function movementKernels({ internals, original }: WasmKernelDeps): WasmKernelGroup {
  const origTranspose = original(tf.Transpose);
  const origIdentity = original(tf.Identity);
  const origCast = original(tf.Cast);
  const origGather = original(tf.GatherV2);

  // tf.transpose of the last two axes (Aᵀ of a LoRA factor, a weight, a gradient): the blocked copy.
  const transpose: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { perm } = args.attrs as unknown as { perm: number[] };
    const r = perm.length;
    const swapsLastTwo = r >= 2 && perm[r - 2] === r - 1 && perm[r - 1] === r - 2 && perm.slice(0, -2).every((p, i) => p === i);
    if (x.dtype !== 'float32' || !swapsLastTwo) return origTranspose.kernelFunc(args);
    const rows = x.shape[r - 2];
    const cols = x.shape[r - 1];
    const batch = tf.util.sizeFromShape(x.shape.slice(0, -2));
    const out = transposeLast2(internals(args.backend), { dataId: x.dataId, dtype: 'float32', shape: [batch, rows, cols] });
    return { dataId: out.dataId, dtype: 'float32', shape: [...x.shape.slice(0, -2), cols, rows] };
  };

  // Identity and same-dtype Cast (tfjs's gradients emit many: Multiply's gradient casts both operands
  // to float32) copy the whole tensor on this backend. Tensor data is immutable in tfjs, so they can
  // share it, as Reshape already does here and as the cpu backend's Identity does.
  const identity: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    return x.dtype === 'string' ? origIdentity.kernelFunc(args) : internals(args.backend).share(x);
  };
  const cast: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
    return dtype === x.dtype && dtype !== 'string' ? internals(args.backend).share(x) : origCast.kernelFunc(args);
  };

  // GatherV2 on the first axis (an embedding lookup): tfjs's goes element by element; whole rows are
  // copied with copyWithin instead. Other cases: tfjs's.
  const gather: tf.KernelFunc = (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    const fourBytes = x.dtype === 'float32' || x.dtype === 'int32';
    if (!fourBytes || indices.dtype !== 'int32' || x.shape.length < 1 || tf.util.parseAxisParam(axis, x.shape)[0] !== 0 || (batchDims ?? 0) !== 0) {
      return origGather.kernelFunc(args);
    }
    const w = internals(args.backend);
    const rows = x.shape[0];
    const row = tf.util.sizeFromShape(x.shape.slice(1));
    const nIdx = tf.util.sizeFromShape(indices.shape);
    const out = w.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const xOff = w.offset(x);
    const iOff = w.offset(indices);
    const oOff = w.offset(out);
    const heap = w.heap(Math.max(xOff + rows * row, iOff + nIdx, oOff + nIdx * row)); // after makeOutput
    const idx = new Int32Array(heap.buffer, heap.byteOffset + iOff * 4, nIdx);
    for (let i = 0; i < nIdx; i++) {
      const r = idx[i];
      if (!(r >= 0 && r < rows)) {
        w.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      }
      heap.copyWithin(oOff + i * row, xOff + r * row, xOff + (r + 1) * row); // byte-exact (int32 too)
    }
    return out;
  };

  return {
    overrides: [
      [tf.Transpose, transpose],
      [tf.Identity, identity],
      [tf.Cast, cast],
      [tf.GatherV2, gather],
    ],
    added: [],
  };
}
