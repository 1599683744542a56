// Frozen weights outside the wasm heap (src/engine/kernels/frozenWeights.ts over the native
// frozenMatMul / frozenGather): for F32, BF16 and F16 weights, both product forms (x·Wᵀ and x·W),
// batched inputs and their gradients must equal, bit for bit, the in-heap products of the same weight widened to
// float32, and the embedding gather must equal tf.gather; bad input is refused, naming it.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { frozenGather, frozenMatMul, frozenNative, makeFrozenWeight, type FrozenDtype } from '../../../src/engine/kernels/frozenWeights';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../../../src/formats/dtype';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { chunkedCrossEntropy, plainCrossEntropy } from '../../../src/engine/crossEntropy';
import { nativeCopy, values } from './helpers';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
const BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && process.arch === 'x64';

/** W as stored in a file of `dtype`, and the float32 values it stands for. */
function stored(w: Float32Array, dtype: FrozenDtype): { bytes: Uint8Array; widened: Float32Array } {
  if (dtype === 'F32') return { bytes: new Uint8Array(w.slice().buffer), widened: w };
  const bits = dtype === 'BF16' ? encodeBf16(w) : encodeF16(w);
  return { bytes: new Uint8Array(bits.buffer), widened: dtype === 'BF16' ? decodeBf16(bits) : decodeF16(bits) };
}

/** a equals b: exactly by default (the products sum in the in-heap product's order), else within `tol` relative. */
function assertSame(a: tf.Tensor, b: tf.Tensor, what: string, tol = 0): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = a.dataSync();
  const y = b.dataSync();
  let scale = 1e-30;
  let d = 0;
  for (let i = 0; i < y.length; i++) {
    scale = Math.max(scale, Math.abs(y[i]));
    d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  assert.ok(d / scale <= tol, `${what}: differs by ${d / scale} (relative)`);
}

describe('perf: frozen weights outside the wasm heap', function () {
  const nk = loadNativeKernels({}).kernels;
  let previous: string;
  let restore: (() => void) | undefined;

  before(async function () {
    if (!nk?.frozenWeight) {
      if (BUILT_HERE) assert.fail('native kernels missing or stale: run `npm run build:native`');
      this.skip();
    }
    previous = tf.getBackend();
    setWasmPaths(WASM_DIR + '/');
    assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to initialise');
    restore = registerWasmFastKernels(nk);
    assert.ok(frozenNative(), 'frozen products not available on wasm + native');
  });
  after(async function () {
    restore?.();
    if (previous) await tf.setBackend(previous);
  });

  // 300 rows: more than one widened block for BF16/F16 (1 << 20 floats / 4099 inputs = 255 rows).
  for (const [rows, cols] of [[37, 53], [300, 4099]] as const) {
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      it(`${dtype} W [${rows}, ${cols}]: x·Wᵀ and x·W (batched), their gradients and the row gather equal the in-heap results`, function () {
        const { bytes, widened } = stored(values(rows * cols, 5), dtype);
        const w = makeFrozenWeight(bytes, dtype, rows, cols);
        tf.tidy(() => {
          const W = tf.tensor2d(widened, [rows, cols]); // in the heap: the reference
          const x0 = tf.tensor3d(values(2 * 7 * cols, 6), [2, 7, cols]); // batched [2, 7, cols]
          const x1 = tf.tensor3d(values(2 * 7 * rows, 7), [2, 7, rows]);
          const inHeap0 = (x: tf.Tensor) => tf.reshape(tf.matMul(tf.reshape(x, [-1, cols]) as tf.Tensor2D, W, false, true), [2, 7, rows]);
          const inHeap1 = (x: tf.Tensor) => tf.reshape(tf.matMul(tf.reshape(x, [-1, rows]) as tf.Tensor2D, W), [2, 7, cols]);
          assertSame(frozenMatMul(x0, w, 0), inHeap0(x0), 'x·Wᵀ');
          assertSame(frozenMatMul(x1, w, 1), inHeap1(x1), 'x·W');
          // Gradients through a loss that weights each output differently.
          const r0 = tf.tensor3d(values(2 * 7 * rows, 8), [2, 7, rows]);
          const r1 = tf.tensor3d(values(2 * 7 * cols, 9), [2, 7, cols]);
          const g = (f: (x: tf.Tensor) => tf.Tensor, r: tf.Tensor, x: tf.Tensor) => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(f(xi), r)))(x);
          assertSame(g((x) => frozenMatMul(x, w, 0), r0, x0), g(inHeap0, r0, x0), 'd(x·Wᵀ)/dx');
          assertSame(g((x) => frozenMatMul(x, w, 1), r1, x1), g(inHeap1, r1, x1), 'd(x·W)/dx');
          const ids = tf.tensor2d([[3, 0, rows - 1], [rows - 1, 3, 1]], [2, 3], 'int32');
          const got = frozenGather(w, ids);
          assert.deepEqual(got.shape, [2, 3, cols]);
          assert.deepEqual(Array.from(got.dataSync()), Array.from(tf.gather(W, ids).dataSync()), 'gather is exact');
        });
      });
    }
  }

  it('gives the same bits at any thread count (each element summed in one order)', function () {
    const threaded = nk as unknown as { threads(): number; setThreads(n: number): unknown };
    const before = threaded.threads();
    const { bytes } = stored(values(300 * 4099, 5), 'BF16');
    const w = makeFrozenWeight(bytes, 'BF16', 300, 4099);
    try {
      const run = (n: number): Float32Array[] => {
        threaded.setThreads(n);
        return tf.tidy(() => [frozenMatMul(tf.tensor2d(values(64 * 4099, 6), [64, 4099]), w, 0), frozenMatMul(tf.tensor2d(values(64 * 300, 7), [64, 300]), w, 1)].map((t) => t.dataSync() as Float32Array));
      };
      const one = run(1);
      const three = run(3);
      one.forEach((a, i) => assert.ok(a.every((x, j) => Object.is(x, three[i][j])), `mode ${i}: 1 and 3 threads differ`));
    } finally {
      threaded.setThreads(before);
    }
  });

  for (const fused of [true, false]) {
    it(`the chunked cross-entropy over a frozen BF16 head (${fused ? 'the native softmax cross-entropy' : 'tfjs ops, the label update in place in the heap'}) equals the plain form`, function () {
      const [vocab, hidden, n] = [301, 24, 37];
      const { bytes, widened } = stored(values(vocab * hidden, 8), 'BF16');
      const w = makeFrozenWeight(bytes, 'BF16', vocab, hidden); // a tied head stored [V, H]
      const labels = Int32Array.from({ length: n }, (_, i) => (i % 6 === 5 ? -100 : (i * 13) % vocab));
      // The same kernels with softmaxXent counted, or left out: then the loss runs as tfjs ops.
      const counted = nativeCopy(nk!, 'softmaxXent', !fused);
      registerWasmFastKernels(counted.kernels);
      try {
        tf.tidy(() => {
          const h = tf.tensor2d(values(n * hidden, 9), [n, hidden]);
          const W = tf.tensor2d(widened, [vocab, hidden]);
          const plain = tf.valueAndGrad((x: tf.Tensor) => plainCrossEntropy(tf.matMul(x as tf.Tensor2D, W, false, true), labels))(h);
          const head = { logits: (x: tf.Tensor2D) => frozenMatMul(x, w, 0) as tf.Tensor2D, inputGrad: (g: tf.Tensor2D) => frozenMatMul(g, w, 1) as tf.Tensor2D, vocab };
          for (const rows of [5, 16, n]) {
            const chunked = tf.valueAndGrad((x: tf.Tensor) => chunkedCrossEntropy(x as tf.Tensor2D, head, undefined, labels, rows))(h);
            assertSame(chunked.value, plain.value, `loss, chunks of ${rows}`, 1e-6);
            assertSame(chunked.grad, plain.grad, `dL/dh, chunks of ${rows}`, 1e-6);
            const g = chunked.grad.arraySync() as number[][];
            labels.forEach((l, i) => l < 0 && assert.ok(g[i].every((x) => x === 0), `row ${i} is ignored but has a gradient`));
          }
          // without a gradient being recorded the loss is the same and nothing else is made
          const before = tf.memory().numTensors;
          const loss = chunkedCrossEntropy(h, head, undefined, labels, 5);
          assertSame(loss, plain.value, 'loss without a gradient', 1e-6);
          assert.equal(tf.memory().numTensors, before + 1);
        });
        if (fused) assert.ok(counted.calls() >= 7, `the native softmax cross-entropy ran ${counted.calls()} times`);
      } finally {
        registerWasmFastKernels(nk);
      }
    });
  }

  it('refuses bad input, naming it: byte length, dtype, input width, row index', function () {
    const { bytes } = stored(values(6, 1), 'BF16');
    assert.throws(() => makeFrozenWeight(bytes, 'BF16', 2, 4), /\[2, 4\] BF16 needs 16 bytes but has 12/);
    assert.throws(() => makeFrozenWeight(bytes, 'F8' as FrozenDtype, 2, 3), /dtype must be "F32", "BF16" or "F16", got "F8"/);
    const w = makeFrozenWeight(bytes, 'BF16', 2, 3);
    tf.tidy(() => {
      assert.throws(() => frozenMatMul(tf.zeros([4, 2]), w, 0), /x is \[4,2\] but W \[2, 3\]ᵀ needs 3 inputs/);
      assert.throws(() => frozenGather(w, tf.tensor1d([0, 2], 'int32')), /idx\[1\] = 2 is outside \[0, 2\)/);
    });
  });
});
