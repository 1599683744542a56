// The wasm fast kernels (src/engine/kernels/wasmFastKernels.ts and wasm/) must give the numbers of
// tfjs's own kernels: every matMul shape/transpose/broadcast case against the cpu backend, tanh against
// Math.tanh, gradients through the override, and no leaked tensors or wasm memory. Which path a
// product took is seen through tfjs's kernel registry (kernelSpies.ts), not through production code.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastKernels, transposeBlocked, wasmFastKernelsActive, wasmNativeKernels } from '../../../src/engine/kernels/wasmFastKernels';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { GELU_TANH, GELU_TANH_GRAD } from '../../../src/engine/kernels/gelu';
import { NORM, NORM_GRAD } from '../../../src/engine/kernels/norm';
import { values } from './helpers';
import { spyOnKernels, type KernelSpy } from './kernelSpies';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** The tfjs kernels the fast kernels replace. */
const OVERRIDDEN = [tf.BatchMatMul, tf._FusedMatMul, tf.Exp, tf.Tanh, tf.Transpose, tf.Identity, tf.Cast, tf.GatherV2, tf.Slice, tf.SplitV, tf.Concat];

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-6;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let d = 0;
  for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d / scale;
}

async function onBackend<T>(name: string, f: () => T): Promise<T> {
  const ok = await tf.setBackend(name);
  assert.ok(ok, `tf.setBackend(${name}) returned false`);
  return f();
}

describe('perf: wasm fast kernels', function () {
  let restore: (() => void) | undefined;
  let previous: string;
  let hadKernels = false;
  let hadNative: NativeKernels | undefined;
  /** tfjs's own BatchMatMul, counted: what the override falls back to. */
  let tfjsMatMul: KernelSpy;
  /** The kernel functions registered before the overrides (tfjs's; BatchMatMul's counted). */
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
    tfjsMatMul = spyOnKernels([tf.BatchMatMul]);
    for (const name of OVERRIDDEN) plain.set(name, tf.getKernel(name, 'wasm')!.kernelFunc);
  });
  after(async function () {
    restore?.();
    tfjsMatMul?.undo();
    if (hadKernels) registerWasmFastKernels(hadNative);
    if (previous) await tf.setBackend(previous);
  });

  it('transposeBlocked transposes every batch entry, including ragged tiles', function () {
    const rows = 37;
    const cols = 70;
    const src = values(2 * rows * cols, 3);
    const heap = new Float32Array(5 + 4 * rows * cols);
    heap.set(src, 5);
    transposeBlocked(heap, 5, 5 + 2 * rows * cols, 2, rows, cols);
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          assert.equal(heap[5 + 2 * rows * cols + b * rows * cols + j * rows + i], src[b * rows * cols + i * cols + j]);
        }
      }
    }
  });

  const cases: { a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [
    { a: [5, 7], b: [7, 3], ta: false, tb: false },
    { a: [5, 7], b: [3, 7], ta: false, tb: true },
    { a: [7, 5], b: [7, 3], ta: true, tb: false },
    { a: [7, 5], b: [3, 7], ta: true, tb: true },
    { a: [4, 5, 7], b: [4, 7, 3], ta: false, tb: false },
    { a: [4, 5, 7], b: [4, 3, 7], ta: false, tb: true },
    { a: [2, 3, 7, 5], b: [2, 3, 7, 3], ta: true, tb: false },
    { a: [4, 7, 5], b: [3, 7], ta: true, tb: true }, // B broadcast over the batch
    { a: [1, 5, 7], b: [4, 7, 3], ta: false, tb: false }, // A broadcast
    { a: [300, 40], b: [300, 8], ta: true, tb: false }, // LoRA dBᵀ-like: thin result, long k
    { a: [8, 300], b: [40, 300], ta: false, tb: true },
    { a: [64, 33], b: [64, 65], ta: true, tb: false }, // tiles not multiples of 32
  ];

  for (const c of cases) {
    it(`matMul ${JSON.stringify(c.a)}${c.ta ? 'ᵀ' : ''} · ${JSON.stringify(c.b)}${c.tb ? 'ᵀ' : ''} equals the cpu backend`, async function () {
      const av = values(c.a.reduce((x, y) => x * y), 1);
      const bv = values(c.b.reduce((x, y) => x * y), 2);
      const ref = await onBackend('cpu', () => {
        const r = tf.matMul(tf.tensor(av, c.a), tf.tensor(bv, c.b), c.ta, c.tb);
        return { shape: r.shape, data: r.dataSync() };
      });
      const got = await onBackend('wasm', () => {
        restore ??= registerWasmFastKernels();
        const ours = spyOnKernels([tf.BatchMatMul]);
        const tfjs0 = tfjsMatMul.calls[tf.BatchMatMul];
        try {
          const numTensors = tf.memory().numTensors;
          const be = tf.backend() as unknown as { numDataIds(): number };
          const ids = be.numDataIds();
          const a = tf.tensor(av, c.a);
          const b = tf.tensor(bv, c.b);
          const r = tf.matMul(a, b, c.ta, c.tb);
          const out = { shape: r.shape, data: r.dataSync(), ours: ours.calls[tf.BatchMatMul], tfjs: tfjsMatMul.calls[tf.BatchMatMul] - tfjs0 };
          tf.dispose([a, b, r]);
          assert.equal(tf.memory().numTensors, numTensors, 'tensors leaked');
          assert.equal(be.numDataIds(), ids, 'wasm buffers leaked');
          return out;
        } finally {
          ours.undo();
        }
      });
      assert.deepEqual(got.shape, ref.shape);
      assert.ok(maxRelDiff(got.data, ref.data) < 1e-5, `max relative difference ${maxRelDiff(got.data, ref.data)}`);
      assert.equal(got.ours, 1, 'the fast kernel did not run');
      // tfjs's own kernel is XNNPACK only for a 2-D untransposed product; every other case must stay off it.
      const direct = !c.ta && !c.tb && c.a.length === 2 && c.b.length === 2;
      assert.equal(got.tfjs, direct ? 1 : 0, direct ? 'a 2-D untransposed product goes to tfjs\'s own kernel (XNNPACK)' : 'fell back to tfjs\'s own kernel');
    });
  }

  it('gradients through the override equal the cpu backend (batched, transposed)', async function () {
    const av = values(2 * 6 * 5, 4);
    const bv = values(2 * 4 * 5, 5);
    const run = () => {
      const a = tf.tensor(av, [2, 6, 5]);
      const b = tf.tensor(bv, [2, 4, 5]);
      const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, false, true))))([a, b]);
      const out = g.map((t) => t.dataSync());
      tf.dispose([a, b, ...g]);
      return out;
    };
    const ref = await onBackend('cpu', run);
    const got = await onBackend('wasm', () => {
      restore ??= registerWasmFastKernels();
      return run();
    });
    for (let i = 0; i < 2; i++) assert.ok(maxRelDiff(got[i], ref[i]) < 1e-5);
  });

  // tfjs-backend-wasm 4.22's _FusedMatMul adds bias[n-1] to every row after the first when transposeB
  // is set; the override transposes B first. Without native kernels (this suite's registration).
  for (const activation of ['linear', 'relu'] as const) {
    it(`fused.matMul with transposeB and a bias (${activation}) equals the cpu backend`, async function () {
      const av = values(6 * 5, 7);
      const bv = values(2 * 4 * 5, 8);
      const biasv = values(4, 9);
      const run = (): Float32Array[] => {
        const a = tf.tensor(av, [6, 5]);
        const b = tf.tensor(bv.subarray(0, 20), [4, 5]);
        const b3 = tf.tensor(bv, [2, 4, 5]);
        const a3 = tf.tensor(values(2 * 6 * 5, 10), [2, 6, 5]);
        const bias = tf.tensor1d(biasv);
        const r1 = tf.fused.matMul({ a, b, transposeB: true, bias, activation });
        const r2 = tf.fused.matMul({ a: a3, b: b3, transposeB: true, bias, activation });
        const out = [r1.dataSync() as Float32Array, r2.dataSync() as Float32Array];
        tf.dispose([a, b, b3, a3, bias, r1, r2]);
        return out;
      };
      const ref = await onBackend('cpu', run);
      const got = await onBackend('wasm', () => {
        restore ??= registerWasmFastKernels();
        const numTensors = tf.memory().numTensors;
        const be = tf.backend() as unknown as { numDataIds(): number };
        const ids = be.numDataIds();
        const out = run();
        assert.equal(tf.memory().numTensors, numTensors, 'tensors leaked');
        assert.equal(be.numDataIds(), ids, 'wasm buffers leaked');
        return out;
      });
      for (let i = 0; i < 2; i++) assert.ok(maxRelDiff(got[i], ref[i]) < 1e-5, `output ${i}: ${maxRelDiff(got[i], ref[i])}`);
    });
  }

  it('caches the transpose of a long-lived right operand and frees it with the operand', async function () {
    await tf.setBackend('wasm');
    restore ??= registerWasmFastKernels();
    const be = tf.backend() as unknown as { numDataIds(): number };
    const wv = values(160 * 128, 7); // 20480 elements: above the cache threshold
    const xv = values(6 * 128, 8);
    const ref = await onBackend('cpu', () => tf.tidy(() => tf.matMul(tf.tensor2d(xv, [6, 128]), tf.tensor2d(wv, [160, 128]), false, true).dataSync()));
    await tf.setBackend('wasm');
    const ids0 = be.numDataIds();
    const w = tf.tensor2d(wv, [160, 128]);
    const x = tf.tensor2d(xv, [6, 128]);
    const held: number[] = [];
    for (let i = 0; i < 3; i++) {
      const y = tf.matMul(x, w, false, true);
      assert.ok(maxRelDiff(y.dataSync(), ref) < 1e-5, `call ${i}`);
      y.dispose();
      held.push(be.numDataIds() - ids0);
    }
    // x and w; then the cached Wᵀ made on the second use; then the same copy reused.
    assert.deepEqual(held, [2, 3, 3], 'one cached copy for three calls, made on the second');
    w.dispose();
    tf.tidy(() => tf.matMul(x, tf.ones([4, 128]), false, true).dataSync()); // any later call sweeps
    assert.equal(be.numDataIds(), ids0 + 1, 'the cached copy is freed once W is disposed');
    x.dispose();
  });

  for (const [shape, perm] of [[[37, 70], [1, 0]], [[3, 33, 65], [0, 2, 1]], [[2, 3, 5, 7], [0, 1, 3, 2]], [[2, 3, 5, 7], [0, 2, 1, 3]], [[4, 6], [0, 1]]] as [number[], number[]][]) {
    it(`transpose ${JSON.stringify(shape)} by ${JSON.stringify(perm)} equals the cpu backend`, async function () {
      const xv = values(shape.reduce((a, b) => a * b), 12);
      const ref = await onBackend('cpu', () => tf.tidy(() => {
        const y = tf.transpose(tf.tensor(xv, shape), perm);
        return { shape: y.shape, data: y.dataSync() };
      }));
      await tf.setBackend('wasm');
      restore ??= registerWasmFastKernels();
      const n = tf.memory().numTensors;
      const got = tf.tidy(() => {
        const y = tf.transpose(tf.tensor(xv, shape), perm);
        return { shape: y.shape, data: y.dataSync() };
      });
      assert.equal(tf.memory().numTensors, n);
      assert.deepEqual(got.shape, ref.shape);
      assert.deepEqual(Array.from(got.data), Array.from(ref.data));
    });
  }

  it('clone and same-dtype cast share data safely (values, lifetimes, no leaks)', async function () {
    await tf.setBackend('wasm');
    restore ??= registerWasmFastKernels();
    const be = tf.backend() as unknown as { numDataIds(): number };
    const ids = be.numDataIds();
    const x = tf.tensor1d([1.5, -2, 3]);
    const c = tf.clone(x);
    const k = tf.cast(x, 'float32');
    const i = tf.cast(x, 'int32');
    x.dispose();
    assert.deepEqual(Array.from(c.dataSync()), [1.5, -2, 3]);
    assert.deepEqual(Array.from(k.dataSync()), [1.5, -2, 3]);
    assert.deepEqual(Array.from(i.dataSync()), [1, -2, 3]);
    assert.equal(i.dtype, 'int32');
    c.dispose();
    assert.deepEqual(Array.from(k.dataSync()), [1.5, -2, 3]);
    tf.dispose([k, i]);
    assert.equal(be.numDataIds(), ids);
  });

  it('a right operand reused under another shape (a reshape shares its buffer) is not served stale packed weights', async function () {
    const bv = values(12 * 8, 13);
    const a1 = values(5 * 12, 14);
    const a2 = values(5 * 8, 15);
    const ref = await onBackend('cpu', () => tf.tidy(() => {
      const b = tf.tensor2d(bv, [12, 8]);
      return [tf.matMul(tf.tensor2d(a1, [5, 12]), b).dataSync(), tf.matMul(tf.tensor2d(a2, [5, 8]), tf.reshape(b, [8, 12])).dataSync()];
    }));
    await tf.setBackend('wasm');
    restore ??= registerWasmFastKernels();
    const got = tf.tidy(() => {
      const b = tf.tensor2d(bv, [12, 8]);
      return [tf.matMul(tf.tensor2d(a1, [5, 12]), b).dataSync(), tf.matMul(tf.tensor2d(a2, [5, 8]), tf.reshape(b, [8, 12])).dataSync()];
    });
    assert.ok(maxRelDiff(got[0], ref[0]) < 1e-5, 'as [12, 8]');
    assert.ok(maxRelDiff(got[1], ref[1]) < 1e-5, 'as [8, 12]');
  });

  it('tanh equals Math.tanh within 2e-7 and keeps its gradient', async function () {
    await tf.setBackend('wasm');
    restore ??= registerWasmFastKernels();
    const xv = values(4096, 9).map((v) => v * 12); // [-12, 12): saturation included
    const x = tf.tensor1d(xv);
    const y = tf.tanh(x).dataSync();
    for (let i = 0; i < xv.length; i++) assert.ok(Math.abs(y[i] - Math.tanh(xv[i])) < 2e-7, `tanh(${xv[i]})`);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.tanh(t)))(x).dataSync();
    for (let i = 0; i < xv.length; i++) assert.ok(Math.abs(g[i] - (1 - Math.tanh(xv[i]) ** 2)) < 1e-6);
    x.dispose();
  });

  it('gather on the first axis (embedding lookup) equals the cpu backend, float32 and int32, and rejects a bad index', async function () {
    const xv = values(9 * 2 * 3, 21);
    const iv = [4, 0, 8, 4, 2, 7];
    const run = () => tf.tidy(() => {
      const x = tf.tensor3d(xv, [9, 2, 3]);
      const xi = tf.tensor2d(Array.from(xv.slice(0, 18), (v) => Math.round(v * 100)), [9, 2], 'int32');
      const idx = tf.tensor2d(iv, [2, 3], 'int32');
      const g = tf.gather(x, idx);
      const gi = tf.gather(xi, idx);
      const ax1 = tf.gather(x, tf.tensor1d([1, 0], 'int32'), 1); // not the first axis: tfjs's own kernel
      return { g: g.dataSync(), gs: g.shape, gi: gi.dataSync(), gis: gi.shape, dt: gi.dtype, ax1: ax1.dataSync() };
    });
    const ref = await onBackend('cpu', run);
    await tf.setBackend('wasm');
    restore ??= registerWasmFastKernels();
    const got = run();
    assert.deepEqual(got.gs, [2, 3, 2, 3]);
    assert.deepEqual(Array.from(got.g), Array.from(ref.g));
    assert.deepEqual(got.gis, ref.gis);
    assert.equal(got.dt, 'int32');
    assert.deepEqual(Array.from(got.gi), Array.from(ref.gi));
    assert.deepEqual(Array.from(got.ax1), Array.from(ref.ax1));
    const be = tf.backend() as unknown as { numDataIds(): number };
    const ids = be.numDataIds();
    assert.throws(() => tf.tidy(() => tf.gather(tf.tensor2d(xv.slice(0, 6), [3, 2]), tf.tensor1d([1, 3], 'int32'))), /index value 3 is not in \[0, 2\]/);
    assert.equal(be.numDataIds(), ids, 'no tensor leaked by the failed gather');
  });

  it('restores the original kernels', async function () {
    await tf.setBackend('wasm');
    restore ??= registerWasmFastKernels();
    assert.ok(wasmFastKernelsActive());
    for (const name of OVERRIDDEN) assert.notEqual(tf.getKernel(name, 'wasm')!.kernelFunc, plain.get(name), `${name} is not overridden`);
    restore();
    restore = undefined;
    assert.ok(!wasmFastKernelsActive());
    for (const name of OVERRIDDEN) assert.equal(tf.getKernel(name, 'wasm')!.kernelFunc, plain.get(name), `${name} is not tfjs's again`);
    for (const name of [GELU_TANH, GELU_TANH_GRAD, NORM, NORM_GRAD]) assert.equal(tf.getKernel(name, 'wasm'), undefined, `${name} is still registered`);
    const tfjs0 = tfjsMatMul.calls[tf.BatchMatMul];
    tf.tidy(() => tf.matMul(tf.ones([3, 4]), tf.ones([5, 4]), false, true).dataSync());
    assert.equal(tfjsMatMul.calls[tf.BatchMatMul] - tfjs0, 1, 'a transposed product runs on tfjs\'s own kernel again');
  });
});
