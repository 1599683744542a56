// The Slice, SplitV and Concat overrides (src/engine/kernels/wasm/slices.ts) copy runs of their inputs,
// so their outputs must be bit for bit those of tfjs's own wasm kernels and of the cpu backend: every
// case below is compared as int32 words (NaN payloads, -0 and int32 patterns that are NaNs as floats
// included), on ranks 1 to 6, negative axes, -1 sizes, empty pieces and zero-sized inputs, forward and
// through gradients. Which kernel ran is seen through tfjs's registry (kernelSpies.ts).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { copyRuns, sliceRuns } from '../../../src/engine/kernels/wasm/slices';
import { registerWasmFastKernels, wasmFastKernelsActive, wasmNativeKernels } from '../../../src/engine/kernels/wasmFastKernels';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { values } from './helpers';
import { spyOnKernels, type KernelSpy } from './kernelSpies';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
const NAMES = [tf.Slice, tf.SplitV, tf.Concat];

/** Bit patterns kept exactly by every backend's copies: -0, ±Inf, NaN with a payload, a denormal. */
const SPECIAL_F32 = new Int32Array([0x80000000 | 0, 0x7f800000, 0xff800000 | 0, 0x7fc01234, 0x00000005]);
/** int32 values whose bits are NaNs (one signalling) and the extremes. */
const SPECIAL_I32 = [0x7f800001, 0x7fc00000, -1, 0x7fffffff, -0x80000000];

/** Deterministic contents of one tensor: mostly ordinary values, the special patterns sprinkled in. */
function contents(shape: number[], dtype: 'float32' | 'int32', seed: number): Float32Array | Int32Array {
  const n = tf.util.sizeFromShape(shape);
  const v = values(n, seed);
  if (dtype === 'int32') {
    const out = Int32Array.from(v, (x) => Math.round(x * 1e6));
    for (let i = 0; i < n; i += 7) out[i] = SPECIAL_I32[(i / 7) % SPECIAL_I32.length];
    return out;
  }
  const bits = new Int32Array(v.buffer);
  for (let i = 3; i < n; i += 11) bits[i] = SPECIAL_F32[((i - 3) / 11) % SPECIAL_F32.length];
  return v;
}

/** A tensor's contents as int32 words (its bits) where it has 4-byte elements; bools as they are. */
function words(t: tf.Tensor): number[] {
  const d = t.dataSync() as Float32Array | Int32Array | Uint8Array;
  return d.BYTES_PER_ELEMENT === 4 ? Array.from(new Int32Array(d.buffer, d.byteOffset, d.length)) : Array.from(d);
}

// A type, not an interface: tf.tidy returns it, and only a type has the implicit index signature.
type Result = {
  shapes: number[][];
  dtypes: string[];
  bits: number[][];
};

function collect(ts: tf.Tensor[]): Result {
  return { shapes: ts.map((t) => t.shape), dtypes: ts.map((t) => t.dtype), bits: ts.map(words) };
}

interface Case {
  name: string;
  /** The input shapes and the op on them (returns its outputs). */
  inputs: number[][];
  op(xs: tf.Tensor[]): tf.Tensor[];
}

const cases: Case[] = [
  // tf.split(c_attn(x), 3, 2) of GPT-2, scaled down; then its variants.
  { name: 'split [4,16,96] in 3 on axis 2', inputs: [[4, 16, 96]], op: ([x]) => tf.split(x, 3, 2) },
  { name: 'split [4,16,96] in 3 on axis -1', inputs: [[4, 16, 96]], op: ([x]) => tf.split(x, 3, -1) },
  { name: 'split [2,3,10] by [2,-1,3] on axis 2 (short runs)', inputs: [[2, 3, 10]], op: ([x]) => tf.split(x, [2, -1, 3], 2) },
  { name: 'split [3,40] by [17,23] on axis 1', inputs: [[3, 40]], op: ([x]) => tf.split(x, [17, 23], 1) },
  { name: 'split [6,5] by [0,2,4] on axis 0 (an empty piece)', inputs: [[6, 5]], op: ([x]) => tf.split(x, [0, 2, 4], 0) },
  { name: 'split [4,6,5,3] in 2 on axis 1', inputs: [[4, 6, 5, 3]], op: ([x]) => tf.split(x, 2, 1) },
  { name: 'split [4,6,5,3] by [1,-1] on axis -2', inputs: [[4, 6, 5, 3]], op: ([x]) => tf.split(x, [1, -1], -2) },
  { name: 'split rank 5 [2,3,4,2,3] in 2 on axis 3', inputs: [[2, 3, 4, 2, 3]], op: ([x]) => tf.split(x, 2, 3) },
  { name: 'split rank 6 [2,2,3,2,2,20] by [1,19] on axis 5', inputs: [[2, 2, 3, 2, 2, 20]], op: ([x]) => tf.split(x, [1, 19], 5) },
  { name: 'split rank 6 [2,3,2,2,2,3] in 3 on axis 1', inputs: [[2, 3, 2, 2, 2, 3]], op: ([x]) => tf.split(x, 3, 1) },
  { name: 'split rank 1 [12] in 4', inputs: [[12]], op: ([x]) => tf.split(x, 4) },
  { name: 'split [5,4] in 1 on axis 1 (the whole tensor)', inputs: [[5, 4]], op: ([x]) => tf.split(x, 1, 1) },
  { name: 'split [1,1,40] in 2 on axis 2', inputs: [[1, 1, 40]], op: ([x]) => tf.split(x, 2, 2) },
  { name: 'unstack-like split [3,1,4] on axis 0', inputs: [[3, 1, 4]], op: ([x]) => tf.split(x, 3, 0) },
  // Concat: the gradient of the split above, and the edge cases.
  { name: 'concat 3 × [4,16,32] on axis 2', inputs: [[4, 16, 32], [4, 16, 32], [4, 16, 32]], op: (xs) => [tf.concat(xs, 2)] },
  { name: 'concat 3 × [4,16,32] on axis -1', inputs: [[4, 16, 32], [4, 16, 32], [4, 16, 32]], op: (xs) => [tf.concat(xs, -1)] },
  { name: 'concat [2,3,4] + [2,5,4] on axis 1', inputs: [[2, 3, 4], [2, 5, 4]], op: (xs) => [tf.concat(xs, 1)] },
  { name: 'concat [4,20] + [4,30] + [4,1] on axis 1', inputs: [[4, 20], [4, 30], [4, 1]], op: (xs) => [tf.concat(xs, 1)] },
  { name: 'concat [3,4] + [0,4] + [2,4] on axis 0 (a zero-sized input)', inputs: [[3, 4], [0, 4], [2, 4]], op: (xs) => [tf.concat(xs, 0)] },
  { name: 'concat [2,0] + [2,3] on axis 1 (one non-empty input)', inputs: [[2, 0], [2, 3]], op: (xs) => [tf.concat(xs, 1)] },
  { name: 'concat [0,3] + [0,3] on axis 0 (all empty)', inputs: [[0, 3], [0, 3]], op: (xs) => [tf.concat(xs, 0)] },
  { name: 'concat rank 1 [3] + [5]', inputs: [[3], [5]], op: (xs) => [tf.concat(xs)] },
  { name: 'concat rank 5 [2,1,3,2,2] + [2,2,3,2,2] on axis 1', inputs: [[2, 1, 3, 2, 2], [2, 2, 3, 2, 2]], op: (xs) => [tf.concat(xs, 1)] },
  { name: 'concat rank 6 on axis 3', inputs: [[2, 2, 1, 2, 3, 2], [2, 2, 1, 1, 3, 2], [2, 2, 1, 3, 3, 2]], op: (xs) => [tf.concat(xs, 3)] },
  { name: 'concat rank 6 on axis 0', inputs: [[1, 2, 1, 2, 3, 2], [2, 2, 1, 2, 3, 2]], op: (xs) => [tf.concat(xs, 0)] },
  // Slice: contiguous blocks, strided blocks, every rank.
  { name: 'slice rows of [40,24] (contiguous)', inputs: [[40, 24]], op: ([x]) => [tf.slice(x, [5, 0], [10, -1])] },
  { name: 'slice [6,24] at [1,4] size [3,16]', inputs: [[6, 24]], op: ([x]) => [tf.slice(x, [1, 4], [3, 16])] },
  { name: 'slice [3,4,5] at [1,1,2] size [2,-1,3] (short runs)', inputs: [[3, 4, 5]], op: ([x]) => [tf.slice(x, [1, 1, 2], [2, -1, 3])] },
  { name: 'slice [2,3,4,20] at [0,1,0,3] size [2,2,4,17]', inputs: [[2, 3, 4, 20]], op: ([x]) => [tf.slice(x, [0, 1, 0, 3], [2, 2, 4, 17])] },
  { name: 'slice [2,3,4,20] at [1,1,1,0] size [1,2,2,-1]', inputs: [[2, 3, 4, 20]], op: ([x]) => [tf.slice(x, [1, 1, 1, 0], [1, 2, 2, -1])] },
  { name: 'slice rank 5 [3,2,4,3,5] at [1,0,1,1,2] size [2,2,2,2,3]', inputs: [[3, 2, 4, 3, 5]], op: ([x]) => [tf.slice(x, [1, 0, 1, 1, 2], [2, 2, 2, 2, 3])] },
  { name: 'slice rank 6 [2,3,2,3,2,18] at [0,1,1,0,1,1] size [2,2,1,3,1,16]', inputs: [[2, 3, 2, 3, 2, 18]], op: ([x]) => [tf.slice(x, [0, 1, 1, 0, 1, 1], [2, 2, 1, 3, 1, 16])] },
  { name: 'slice rank 1 [10] at 3 size 4', inputs: [[10]], op: ([x]) => [tf.slice(x, 3, 4)] },
  { name: 'slice [7,5,6] at 2 size 3 (numbers: the first axis)', inputs: [[7, 5, 6]], op: ([x]) => [tf.slice(x, 2, 3)] },
  { name: 'slice [4,5] size [0,5] (empty)', inputs: [[4, 5]], op: ([x]) => [tf.slice(x, [1, 0], [0, 5])] },
  { name: 'slice [4,5] whole', inputs: [[4, 5]], op: ([x]) => [tf.slice(x, [0, 0], [-1, -1])] },
];

describe('perf: wasm Slice, SplitV and Concat as run copies', function () {
  let previous: string;
  let hadKernels = false;
  let hadNative: NativeKernels | undefined;
  /** tfjs's own kernels, counted: what the overrides fall back to. */
  let tfjs: KernelSpy;
  const plain = new Map<string, tf.KernelFunc>();

  before(async function () {
    previous = tf.getBackend();
    setWasmPaths(WASM_DIR + '/');
    assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to initialise');
    // An earlier file may have left the overrides installed: take them down, so that tfjs's own
    // kernels are what gets spied on, and put them back after.
    hadKernels = wasmFastKernelsActive();
    hadNative = wasmNativeKernels();
    if (hadKernels) registerWasmFastKernels(hadNative)();
    tfjs = spyOnKernels(NAMES);
    for (const name of NAMES) plain.set(name, tf.getKernel(name, 'wasm')!.kernelFunc);
  });
  after(async function () {
    tfjs?.undo();
    if (hadKernels) registerWasmFastKernels(hadNative);
    if (previous) await tf.setBackend(previous);
  });

  /** f on the wasm backend with the overrides up; their calls, and tfjs's kernels' calls, counted. */
  async function withOverrides<T>(f: () => T): Promise<{ out: T; ours: Record<string, number>; fallback: Record<string, number> }> {
    await tf.setBackend('wasm');
    const restore = registerWasmFastKernels();
    const ours = spyOnKernels(NAMES);
    const before = { ...tfjs.calls };
    try {
      const be = tf.backend() as unknown as { numDataIds(): number };
      const ids = be.numDataIds();
      const n = tf.memory().numTensors;
      const out = f();
      assert.equal(tf.memory().numTensors, n, 'tensors leaked');
      assert.equal(be.numDataIds(), ids, 'wasm buffers leaked');
      const fallback = Object.fromEntries(NAMES.map((k) => [k, tfjs.calls[k] - before[k]]));
      return { out, ours: { ...ours.calls }, fallback };
    } finally {
      ours.undo();
      restore();
    }
  }

  async function on<T>(backend: string, f: () => T): Promise<T> {
    assert.ok(await tf.setBackend(backend));
    return f();
  }

  it('copyRuns and sliceRuns give what an element-by-element copy gives, and keep every bit', function () {
    const shape = [3, 4, 2, 5, 19];
    const n = tf.util.sizeFromShape(shape);
    const strides = [...tf.util.computeStrides(shape), 1];
    const heap = new Int32Array(7 + 2 * n);
    for (let i = 0; i < n; i++) heap[7 + i] = i % 3 === 0 ? 0x7f800001 : (i * 2654435761) | 0; // a signalling-NaN pattern
    const blocks: [number[], number[]][] = [
      [[1, 1, 0, 2, 3], [2, 3, 2, 3, 16]], // runs of 16: copyWithin, odometer over three axes
      [[0, 2, 1, 0, 0], [3, 2, 1, 5, 19]], // the two inner axes whole: one run of 95 per row
      [[2, 0, 0, 1, 4], [1, 4, 2, 4, 5]], // short runs: the element loop
      [[0, 0, 0, 0, 0], shape], // the whole tensor
      [[1, 0, 0, 0, 0], [1, 4, 2, 5, 19]], // one contiguous block
    ];
    for (const [begin, size] of blocks) {
      const dst = 7 + n;
      heap.fill(0, dst);
      sliceRuns(heap, 7, shape, begin, size, dst);
      let o = dst;
      const at = size.map(() => 0);
      for (let k = 0; k < tf.util.sizeFromShape(size); k++) {
        let src = 7;
        for (let a = 0; a < shape.length; a++) src += (begin[a] + at[a]) * strides[a];
        assert.equal(heap[o++], heap[src], `block ${JSON.stringify([begin, size])} element ${k}`);
        for (let a = shape.length - 1; a >= 0 && ++at[a] === size[a]; a--) at[a] = 0;
      }
    }
    // Strided on both sides, as Concat uses it: short runs (the loop) and long ones (copyWithin).
    for (const run of [3, 20]) {
      const h = Int32Array.from({ length: 400 }, (_, i) => i);
      copyRuns(h, 1, run + 2, 200, run + 5, run, 4);
      const want = Array.from({ length: 400 }, (_, i) => i);
      for (let r = 0; r < 4; r++) for (let j = 0; j < run; j++) want[200 + r * (run + 5) + j] = 1 + r * (run + 2) + j;
      assert.deepEqual(Array.from(h), want, `runs of ${run}`);
    }
  });

  for (const c of cases) {
    for (const dtype of ['float32', 'int32'] as const) {
      it(`${c.name}, ${dtype}: bit for bit tfjs's wasm kernels and the cpu backend`, async function () {
        const data = c.inputs.map((s, i) => contents(s, dtype, 31 + i));
        const run = () => tf.tidy(() => collect(c.op(c.inputs.map((s, i) => tf.tensor(data[i], s, dtype)))));
        const cpu = await on('cpu', run);
        const tfjsCalls = { ...tfjs.calls };
        const wasm = await on('wasm', run);
        assert.ok(NAMES.some((k) => tfjs.calls[k] > tfjsCalls[k]), 'the plain run went through tfjs\'s kernels');
        const got = await withOverrides(run);
        assert.deepEqual(got.out, wasm, 'differs from tfjs\'s wasm kernels');
        assert.deepEqual(got.out, cpu, 'differs from the cpu backend');
        const ran = NAMES.reduce((s, k) => s + got.ours[k], 0);
        assert.ok(ran >= 1, 'no override ran');
        assert.deepEqual(got.fallback, Object.fromEntries(NAMES.map((k) => [k, 0])), 'fell back to tfjs\'s kernels');
      });
    }
  }

  it('gradients through split, concat and slice equal the cpu backend bit for bit', async function () {
    const xv = values(4 * 6 * 30, 41);
    const yv = values(4 * 6 * 12, 42);
    const wv = [values(4 * 6 * 9, 43), values(4 * 6 * 18, 44), values(4 * 6 * 15, 45), values(4 * 3 * 42, 46)];
    const run = () => tf.tidy(() => {
      const x = tf.tensor3d(xv, [4, 6, 30]);
      const y = tf.tensor3d(yv, [4, 6, 12]);
      const w = [tf.tensor3d(wv[0], [4, 6, 9]), tf.tensor3d(wv[1], [4, 6, 18]), tf.tensor3d(wv[2], [4, 6, 15]), tf.tensor3d(wv[3], [4, 3, 42])];
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => {
        const xy = tf.concat([a, b], -1); // [4, 6, 42]
        const [p, q, r] = tf.split(xy, [9, 18, -1], 2);
        const s = tf.slice(xy, [0, 2, 0], [-1, 3, -1]); // [4, 3, 42]
        return tf.addN([tf.sum(tf.mul(p, w[0])), tf.sum(tf.mul(q, w[1])), tf.sum(tf.mul(r, w[2])), tf.sum(tf.mul(s, w[3]))]);
      })([x, y]);
      return collect(g);
    });
    const cpu = await on('cpu', run);
    const wasm = await on('wasm', run);
    const got = await withOverrides(run);
    assert.deepEqual(got.out, cpu);
    assert.deepEqual(got.out, wasm);
    assert.ok(got.ours[tf.SplitV] >= 1 && got.ours[tf.Concat] >= 1 && got.ours[tf.Slice] >= 1, JSON.stringify(got.ours));
  });

  it('defers bool tensors and mixed dtypes to tfjs\'s kernels', async function () {
    const run = () => tf.tidy(() => {
      const b = tf.tensor2d([true, false, true, true, false, false], [2, 3], 'bool');
      const mixed = tf.concat([tf.tensor1d([1.5, 2]), tf.tensor1d([3], 'int32')]);
      return [...collect([...tf.split(b, [1, 2], 1), tf.concat([b, b], 0), tf.slice(b, [0, 1], [2, 2])]).bits, Array.from(mixed.dataSync())];
    });
    const wasm = await on('wasm', run);
    const got = await withOverrides(run);
    assert.deepEqual(got.out, wasm);
    assert.deepEqual(got.fallback, { [tf.Slice]: 1, [tf.SplitV]: 1, [tf.Concat]: 2 }, 'every call went on to tfjs\'s kernel');
  });

  it('are taken down by the restore function', async function () {
    await tf.setBackend('wasm');
    const restore = registerWasmFastKernels();
    for (const name of NAMES) assert.notEqual(tf.getKernel(name, 'wasm')!.kernelFunc, plain.get(name), `${name} is not overridden`);
    restore();
    for (const name of NAMES) assert.equal(tf.getKernel(name, 'wasm')!.kernelFunc, plain.get(name), `${name} is not tfjs's again`);
    const before = { ...tfjs.calls };
    tf.tidy(() => tf.split(tf.ones([2, 6]), 2, 1).map((t) => t.dataSync()));
    assert.equal(tfjs.calls[tf.SplitV] - before[tf.SplitV], 1, 'a split runs on tfjs\'s own kernel again');
  });
});
