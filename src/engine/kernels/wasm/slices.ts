// Kernels that copy blocks of their inputs: Slice, SplitV (tf.split, and Concat's gradient) and Concat
// (tf.concat, and SplitV's gradient). Each output of these is a set of equal runs at a fixed stride in
// the input (the axes inside the sliced, split or concatenated one stay whole), so every run is one
// copyWithin on the heap, a memmove. tfjs-backend-wasm 4.22's Slice instead first copies its whole
// input out of the heap (readSync) and then copies the block through a new subarray per run, and its
// SplitV is one such Slice per piece: for GPT-2's q/k/v split that is the input copied three times
// over. Float32 and int32 only (4-byte elements, copied bit for bit); other dtypes, and parameters
// that reach outside the input, go to tfjs's own kernels.
import * as tf from '@tensorflow/tfjs-core';
import type { WasmInternals } from './backendInternals';
import type { WasmKernelDeps, WasmKernelGroup } from './kernelGroup';

/** Runs shorter than this are copied element by element: one copyWithin call costs more than that. */
const SHORT_RUN = 8;

/**
 * Copies `count` runs of `run` elements inside one heap: the i-th from src + i·srcStride to
 * dst + i·dstStride. The heap is viewed as Int32Array so that the element loop keeps every bit (a
 * float32 read into a JS number may quiet a signalling NaN); copyWithin copies bytes either way.
 */
export function copyRuns(heap: Int32Array, src: number, srcStride: number, dst: number, dstStride: number, run: number, count: number): void {
  if (run === 0 || count === 0) return;
  if (count === 1 || (srcStride === run && dstStride === run)) {
    heap.copyWithin(dst, src, src + run * count); // the runs touch on both sides: one block
    return;
  }
  if (run >= SHORT_RUN) {
    for (let i = 0; i < count; i++) {
      const s = src + i * srcStride;
      heap.copyWithin(dst + i * dstStride, s, s + run);
    }
    return;
  }
  for (let i = 0; i < count; i++) {
    const s = src + i * srcStride;
    const d = dst + i * dstStride;
    for (let j = 0; j < run; j++) heap[d + j] = heap[s + j];
  }
}

/**
 * The block of x [shape] (at src0 in the heap) that starts at `begin` and spans `size`, written densely
 * at dst0. The innermost axes that the block spans whole join the last partial axis in one run; the
 * axis outside that is copyRuns' loop, and any further out are walked as an odometer.
 */
export function sliceRuns(heap: Int32Array, src0: number, shape: number[], begin: number[], size: number[], dst0: number): void {
  const rank = shape.length;
  if (size.some((n) => n === 0)) return;
  let d = rank - 1;
  while (d >= 0 && size[d] === shape[d]) d--;
  if (d < 0) {
    copyRuns(heap, src0, 0, dst0, 0, tf.util.sizeFromShape(shape), 1); // the whole tensor
    return;
  }
  const strides = [...tf.util.computeStrides(shape), 1]; // elements per step of each axis
  const run = size[d] * strides[d];
  let src = src0;
  for (let k = 0; k <= d; k++) src += begin[k] * strides[k];
  if (d === 0) {
    copyRuns(heap, src, 0, dst0, 0, run, 1);
    return;
  }
  const count = size[d - 1];
  const step = strides[d - 1];
  const outer = d - 1; // axes 0 .. d-2, walked below
  const idx = new Array<number>(outer).fill(0);
  let dst = dst0;
  for (;;) {
    copyRuns(heap, src, step, dst, run, run, count);
    dst += run * count;
    let k = outer - 1;
    for (; k >= 0; k--) {
      src += strides[k];
      if (++idx[k] < size[k]) break;
      src -= size[k] * strides[k];
      idx[k] = 0;
    }
    if (k < 0) return;
  }
}

function fourBytes(t: tf.TensorInfo): boolean {
  return t.dtype === 'float32' || t.dtype === 'int32';
}

/** The heap as int32 words, covering every one of `ts`. Call it after the last makeOutput (it may grow the memory). */
function heapWords(w: WasmInternals, ts: tf.TensorInfo[]): Int32Array {
  const f = w.heap(w.heapEnd(ts));
  return new Int32Array(f.buffer, f.byteOffset, f.length);
}

/** Whether begin/size name a block inside `shape`: what the ops check, and the kernels rely on. */
function inside(shape: number[], begin: number[], size: number[]): boolean {
  if (begin.length !== shape.length || size.length !== shape.length) return false;
  return shape.every((n, i) => Number.isInteger(begin[i]) && Number.isInteger(size[i]) && begin[i] >= 0 && size[i] >= 0 && begin[i] + size[i] <= n);
}

/** New tensors of these shapes; if one cannot be made, those made before it are freed. */
function makeOutputs(w: WasmInternals, shapes: number[][], dtype: tf.DataType): tf.TensorInfo[] {
  const outs: tf.TensorInfo[] = [];
  try {
    for (const s of shapes) outs.push(w.makeOutput(s, dtype));
  } catch (e) {
    for (const o of outs) w.disposeData(o.dataId);
    throw e;
  }
  return outs;
}

export function sliceKernels({ internals, original }: WasmKernelDeps): WasmKernelGroup {
  const origSlice = original(tf.Slice);
  const origSplitV = original(tf.SplitV);
  const origConcat = original(tf.Concat);

  const slice: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
    if (!fourBytes(x)) return origSlice.kernelFunc(args);
    const [b, s] = tf.slice_util.parseSliceParams(x, begin, size);
    if (!inside(x.shape, b, s)) return origSlice.kernelFunc(args);
    const w = internals(args.backend);
    const out = w.makeOutput(s, x.dtype);
    sliceRuns(heapWords(w, [x, out]), w.offset(x), x.shape, b, s, w.offset(out));
    return out;
  };

  const splitV: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
    if (!fourBytes(x) || x.shape.length === 0) return origSplitV.kernelFunc(args);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    // As tfjs's: a number splits evenly, a -1 among the sizes takes the rest; both are checked.
    const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, ax);
    if (!sizes.every((n) => Number.isInteger(n) && n >= 0)) return origSplitV.kernelFunc(args);
    const w = internals(args.backend);
    const outs = makeOutputs(w, sizes.map((n) => x.shape.map((d, i) => (i === ax ? n : d))), x.dtype);
    const heap = heapWords(w, [x, ...outs]);
    const xOff = w.offset(x);
    const begin = x.shape.map(() => 0);
    for (const out of outs) {
      sliceRuns(heap, xOff, x.shape, begin, out.shape, w.offset(out));
      begin[ax] += out.shape[ax];
    }
    return outs;
  };

  const concat: tf.KernelFunc = (args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const { axis } = args.attrs as unknown as tf.ConcatAttrs;
    const dtype = inputs[0].dtype;
    if (!fourBytes(inputs[0]) || inputs.some((t) => t.dtype !== dtype)) return origConcat.kernelFunc(args);
    const shapes = inputs.map((t) => t.shape);
    const ax = tf.util.parseAxisParam(axis, shapes[0])[0];
    tf.backend_util.assertParamsConsistent(shapes, ax);
    const outShape = tf.backend_util.computeOutShape(shapes, ax);
    const w = internals(args.backend);
    const out = w.makeOutput(outShape, dtype);
    const parts = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
    if (parts.length === 0) return out;
    const heap = heapWords(w, [out, ...parts]);
    // Every input is `outer` runs of its own inner size; the output interleaves them.
    const outer = tf.util.sizeFromShape(outShape.slice(0, ax));
    const outRow = tf.util.sizeFromShape(outShape.slice(ax));
    let dst = w.offset(out);
    for (const t of parts) {
      const run = tf.util.sizeFromShape(t.shape.slice(ax));
      copyRuns(heap, w.offset(t), run, dst, outRow, run, outer);
      dst += run;
    }
    return out;
  };

  return {
    overrides: [
      [tf.Slice, slice],
      [tf.SplitV, splitV],
      [tf.Concat, concat],
    ],
    added: [],
  };
}
