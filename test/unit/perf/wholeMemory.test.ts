// Operands past 2 GiB of the wasm memory: the heap is grown past 2^31 bytes by one untouched block
// (pages never written stay out of the resident set), so every tensor made afterwards lies beyond it,
// and the products, exp, gather and their gradients must give the numbers of a float64 reference on
// the native kernels and on the pure wasm kernels. Element offsets of such operands exceed 2^29 and
// byte offsets 2^31, where a signed shift or a 2^31 argument bound breaks.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { wasmInternals, type WasmInternals } from '../../../src/engine/kernels/wasm/backendInternals';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { values } from './helpers';
import { countingNative } from './kernelSpies';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
const BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && process.arch === 'x64';
const TWO_GIB = 2 ** 31;

/** tfjs-backend-wasm 4.22's BackendWasm, as far as this test reaches into it. */
type Heap = { wasm: { _malloc(n: number): number; _free(p: number): void }; dataIdMap: { get(dataId: object): { memoryOffset: number } } };

/** C = op(A)·op(B) in float64 for row-major A [m, k] (or [k, m] with ta), B [k, n] (or [n, k] with tb). */
function refMatMul(a: Float32Array, b: Float32Array, m: number, n: number, k: number, ta: boolean, tb: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = s;
    }
  }
  return c;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let scale = 1e-6;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let d = 0;
  for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return Number.isNaN(d) ? Infinity : d / scale;
}

describe('perf: operands beyond 2 GiB of the wasm memory', function () {
  this.timeout(120000);
  const nk: NativeKernels | undefined = loadNativeKernels({}).kernels;
  let previous: string;
  let be: Heap;
  let wi: WasmInternals;
  let block = 0;
  const fillers: number[] = [];
  let restore: (() => void) | undefined;

  before(async function () {
    previous = tf.getBackend();
    setWasmPaths(WASM_DIR + '/');
    assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to initialise');
    be = tf.backend() as unknown as Heap;
    wi = wasmInternals()!(be);
    // Untouched: only its header page is written, so the grown memory costs address space, not RSS.
    block = be.wasm._malloc(TWO_GIB + (64 << 20)) >>> 0;
    assert.ok(block !== 0, 'the wasm heap could not grow past 2 GiB');
    // Earlier suites in this process leave free holes below 2 GiB: fill them, so that what is
    // allocated next (every tensor here is larger than the smallest filler) lies past the block.
    for (const size of [16 << 20, 1 << 20, 1 << 16, 1 << 12, 1 << 8]) {
      for (;;) {
        const p = be.wasm._malloc(size) >>> 0;
        if (p > TWO_GIB) {
          be.wasm._free(p);
          break;
        }
        fillers.push(p);
      }
    }
  });
  after(async function () {
    restore?.();
    for (const p of fillers) be.wasm._free(p);
    if (block) be.wasm._free(block);
    if (previous) await tf.setBackend(previous);
  });

  for (const kind of ['native', 'wasm'] as const) {
    it(`${kind} kernels: products, their gradients, exp and gather past 2^31 bytes equal a float64 reference`, function () {
      if (kind === 'native' && !nk) {
        if (BUILT_HERE) assert.fail('native kernels missing: run `npm run build:native`');
        this.skip();
      }
      const counted = kind === 'native' ? countingNative(nk!) : undefined;
      restore = registerWasmFastKernels(counted?.kernels);
      const [m, n, k, batch] = [37, 29, 45, 3];
      const av = values(batch * m * k, 1);
      const bv = values(k * n, 2);
      const biasv = values(n, 3);
      tf.tidy(() => {
        const a = tf.tensor3d(av, [batch, m, k]);
        const b = tf.tensor2d(bv, [k, n]);
        for (const t of [a, b]) assert.ok(be.dataIdMap.get(t.dataId).memoryOffset > TWO_GIB, 'operand not past 2 GiB');
        assert.ok(wi.offset(a) > 2 ** 29, 'element offset not past 2^29');
        // Batched A with one shared B, plain and with a bias (the fused product).
        const c = tf.matMul(a, tf.tile(tf.expandDims(b, 0), [batch, 1, 1]));
        const fused = tf.fused.matMul({ a: tf.reshape(a, [batch * m, k]) as tf.Tensor2D, b, bias: tf.tensor1d(biasv) });
        const ref = new Float64Array(batch * m * n);
        for (let e = 0; e < batch; e++) ref.set(refMatMul(av.subarray(e * m * k, (e + 1) * m * k), bv, m, n, k, false, false), e * m * n);
        assert.ok(maxRelDiff(c.dataSync(), ref) < 1e-5, 'batched product');
        const refBias = ref.map((x, i) => x + biasv[i % n]);
        assert.ok(maxRelDiff(fused.dataSync(), refBias) < 1e-5, 'fused product with bias');
        // Transposed operands: Aᵀ stored [k, m], Bᵀ stored [n, k].
        const at = tf.tensor2d(av.subarray(0, m * k), [k, m]);
        const bt = tf.tensor2d(bv, [n, k]);
        const ct = tf.matMul(at, bt, true, true);
        assert.ok(maxRelDiff(ct.dataSync(), refMatMul(av.subarray(0, m * k), bv, m, n, k, true, true)) < 1e-5, 'transposed product');
        // Gradients: dA = dC·Bᵀ, dB = Aᵀ·dC with dC = 1.
        const a2 = tf.tensor2d(av.subarray(0, m * k), [m, k]);
        const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D)))([a2, b]);
        const ones = new Float32Array(m * n).fill(1);
        assert.ok(maxRelDiff(da.dataSync(), refMatMul(ones, bv, m, k, n, false, true)) < 1e-5, 'dA');
        assert.ok(maxRelDiff(db.dataSync(), refMatMul(av.subarray(0, m * k), ones, k, n, m, true, false)) < 1e-5, 'dB');
        // exp and gather rows (the embedding lookup).
        const x = tf.tensor1d(av.subarray(0, 500));
        const ex = tf.exp(x).dataSync();
        for (let i = 0; i < 500; i++) assert.ok(Math.abs(ex[i] - Math.exp(av[i])) <= 2e-7 * Math.exp(av[i]), `exp[${i}]`);
        const rows = tf.gather(b, tf.tensor1d([44, 0, 7, 44], 'int32')).dataSync();
        for (const [r, src] of [44, 0, 7, 44].entries()) assert.deepEqual(Array.from(rows.subarray(r * n, (r + 1) * n)), Array.from(bv.subarray(src * n, (src + 1) * n)));
      });
      if (counted) assert.ok((counted.calls.gemm ?? 0) > 0, 'the products did not reach the native kernels');
      restore();
      restore = undefined;
    });
  }

  it('native gemm takes element offsets and sizes past 2^29 on the whole heap view', function () {
    if (!nk) {
      if (BUILT_HERE) assert.fail('native kernels missing: run `npm run build:native`');
      this.skip();
    }
    const [m, n, k] = [5, 6, 7];
    const base = block / 4 + TWO_GIB / 4; // floats past 2^31 bytes, inside the untouched block
    const heap = wi.heap(base + 200);
    const av = values(m * k, 4);
    const bv = values(k * n, 5);
    heap.set(av, base);
    heap.set(bv, base + 64);
    nk.gemm(heap, base, heap, base + 64, heap, base + 128, null, 0, 1, m, n, k, 0);
    assert.ok(maxRelDiff(heap.subarray(base + 128, base + 128 + m * n), refMatMul(av, bv, m, n, k, false, false)) < 1e-5);
    assert.throws(() => nk.gemm(heap, heap.length - 10, heap, base, heap, base + 128, null, 0, 1, m, n, k, 0), /a needs 35 floats from offset/);
    assert.throws(() => nk.gemm(heap, 2 ** 32, heap, base, heap, base + 128, null, 0, 1, m, n, k, 0), /aOff must be an integer in \[0, 2\^32\)/);
  });
});
