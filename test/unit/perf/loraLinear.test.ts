// The fast LoRA linear (src/engine/kernels/loraLinear.ts) must compute the numbers of the plain
// formula y = x Wᵀ + b + s·(x Aᵀ) Bᵀ under tf.grads: output, dA, dB and dx, on the cpu backend and
// on wasm with the fast kernels registered.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loraLinear, packFrozenLinear } from '../../../src/engine/kernels/loraLinear';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');

function values(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

function assertClose(got: Float32Array, want: Float32Array, what: string, tol = 1e-5): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 1e-6;
  let diff = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
  }
  assert.ok(diff / scale < tol, `${what}: max relative difference ${diff / scale}`);
}

const N = 12;
const IN = 20;
const OUT = 16;
const R = 4;
const S = 8 / R;
const data = {
  x: values(N * IN, 1),
  w: values(OUT * IN, 2, 0.3),
  b: values(OUT, 3),
  A: values(R * IN, 4, 0.5),
  B: values(OUT * R, 5, 0.5), // non-zero, so every gradient path is exercised
  t: values(N * OUT, 6),
};

type Grads = { y: Float32Array; dx: Float32Array; dA: Float32Array; dB: Float32Array };

/** Reference: autograd of the textbook formula. */
function plain(bias: boolean): Grads {
  return tf.tidy(() => {
    const x = tf.tensor2d(data.x, [N, IN]);
    const w = tf.tensor2d(data.w, [OUT, IN]);
    const b = tf.tensor1d(data.b);
    const A = tf.tensor2d(data.A, [R, IN]);
    const B = tf.tensor2d(data.B, [OUT, R]);
    const t = tf.tensor2d(data.t, [N, OUT]);
    const f = (xx: tf.Tensor, AA: tf.Tensor, BB: tf.Tensor) => {
      let y = tf.matMul(xx, w, false, true);
      if (bias) y = tf.add(y, b);
      return tf.add(y, tf.mul(tf.matMul(tf.matMul(xx, AA, false, true), BB, false, true), S));
    };
    const loss = (xx: tf.Tensor, AA: tf.Tensor, BB: tf.Tensor) => tf.sum(tf.mul(f(xx, AA, BB), t)) as tf.Scalar;
    const [dx, dA, dB] = tf.grads(loss)([x, A, B]);
    return { y: f(x, A, B).dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dA: dA.dataSync() as Float32Array, dB: dB.dataSync() as Float32Array };
  });
}

function fast(bias: boolean, inputGrad: boolean): Grads & { leaked: number } {
  const packed = packFrozenLinear(tf.tensor2d(data.w, [OUT, IN]), bias ? tf.tensor1d(data.b) : undefined);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const x = tf.tensor2d(data.x, [N, IN]);
    const A = tf.tensor2d(data.A, [R, IN]);
    const B = tf.tensor2d(data.B, [OUT, R]);
    const t = tf.tensor2d(data.t, [N, OUT]);
    const y = loraLinear(x, packed, { A, B, scaling: S }, { inputGrad }).dataSync() as Float32Array;
    if (inputGrad) {
      const [dx, dA, dB] = tf.grads((xx: tf.Tensor, AA: tf.Tensor, BB: tf.Tensor) =>
        tf.sum(tf.mul(loraLinear(xx as tf.Tensor2D, packed, { A: AA as tf.Tensor2D, B: BB as tf.Tensor2D, scaling: S }), t)) as tf.Scalar,
      )([x, A, B]);
      return { y, dx: dx.dataSync() as Float32Array, dA: dA.dataSync() as Float32Array, dB: dB.dataSync() as Float32Array };
    }
    const [dA, dB] = tf.grads((AA: tf.Tensor, BB: tf.Tensor) =>
      tf.sum(tf.mul(loraLinear(x, packed, { A: AA as tf.Tensor2D, B: BB as tf.Tensor2D, scaling: S }, { inputGrad: false }), t)) as tf.Scalar,
    )([A, B]);
    return { y, dx: new Float32Array(0), dA: dA.dataSync() as Float32Array, dB: dB.dataSync() as Float32Array };
  });
  const leaked = tf.memory().numTensors - before;
  packed.dispose();
  return { ...out, leaked };
}

describe('perf: fast LoRA linear (customGrad, packed frozen weights)', function () {
  let previous: string;
  let restore: (() => void) | undefined;
  before(async function () {
    previous = tf.getBackend();
    setWasmPaths(WASM_DIR + '/');
  });
  after(async function () {
    restore?.();
    if (previous) await tf.setBackend(previous);
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    for (const bias of [true, false]) {
      it(`${backend}, bias ${bias}: output, dx, dA, dB equal autograd of the plain formula`, async function () {
        assert.ok(await tf.setBackend('cpu'));
        const ref = plain(bias);
        assert.ok(await tf.setBackend(backend));
        if (backend === 'wasm') restore ??= registerWasmFastKernels();
        const got = fast(bias, true);
        assertClose(got.y, ref.y, 'y');
        assertClose(got.dx, ref.dx, 'dx');
        assertClose(got.dA, ref.dA, 'dA');
        assertClose(got.dB, ref.dB, 'dB');
        assert.equal(got.leaked, 0, 'tensors leaked');
        const noDx = fast(bias, false);
        assertClose(noDx.y, ref.y, 'y (inputGrad false)');
        assertClose(noDx.dA, ref.dA, 'dA (inputGrad false)');
        assertClose(noDx.dB, ref.dB, 'dB (inputGrad false)');
      });
    }
  }

  it('without LoRA factors: the frozen layer and its input gradient', async function () {
    assert.ok(await tf.setBackend('cpu'));
    const packed = packFrozenLinear(tf.tensor2d(data.w, [OUT, IN]), tf.tensor1d(data.b));
    tf.tidy(() => {
      const x = tf.tensor2d(data.x, [N, IN]);
      const w = tf.tensor2d(data.w, [OUT, IN]);
      const t = tf.tensor2d(data.t, [N, OUT]);
      const want = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.matMul(xx, w, false, true), tf.tensor1d(data.b)), t)))(x);
      const got = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(loraLinear(xx as tf.Tensor2D, packed, null), t)))(x);
      assertClose(got.dataSync() as Float32Array, want.dataSync() as Float32Array, 'dx');
    });
    packed.dispose();
  });

  it('names the expected shape when the input does not fit', async function () {
    assert.ok(await tf.setBackend('cpu'));
    const packed = packFrozenLinear(tf.zeros([OUT, IN]) as tf.Tensor2D);
    assert.throws(() => loraLinear(tf.zeros([N, IN + 1]) as tf.Tensor2D, packed, null), /\[N, 20\], got \[12, 21\]/);
    assert.throws(() => packFrozenLinear(tf.zeros([OUT, IN]) as tf.Tensor2D, tf.zeros([OUT + 1]) as tf.Tensor1D), /bias should have shape \[16\]/);
    packed.dispose();
  });
});
