// Attention's softmax as one op (src/engine/kernels/attentionSoftmax.ts over the native softmaxRows /
// softmaxRowsGrad): softmax(scores / divisor + mask) and its gradient must equal the tfjs ops it
// replaces (divide, add the mask, softmax) on the cpu backend — values ≤ 1e-6, gradients ≤ 1e-5
// relative to the largest — for GPT-2's [b, heads, T, T] with a causal mask, Llama's grouped-query
// [b, kv, nRep·T, T] with the mask stacked nRep times, no mask, and one row; the same bits at any thread
// count; bad arguments refused by name.
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { scaledMaskedSoftmax } from '../../../src/engine/kernels/attentionSoftmax';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { nativeCopy, useWasmWithNative, values } from './helpers';

function causal(rows: number, cols: number, repeat = 1): Float32Array {
  const m = new Float32Array(repeat * rows * cols);
  for (let k = 0; k < repeat; k++) for (let i = 0; i < rows; i++) for (let j = i + 1; j < cols; j++) m[(k * rows + i) * cols + j] = -1e9;
  return m;
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let scale = 1e-30;
  let d = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    d = Math.max(d, Math.abs(a[i] - b[i]));
  }
  return d / scale;
}

describe('perf: attention softmax as one native op', function () {
  const { nk } = useWasmWithNative(['softmaxRows', 'softmaxRowsGrad']);

  const cases: { name: string; shape: number[]; divisor: number; mask?: [number, number, number] }[] = [
    { name: 'GPT-2 [2, 3, 37, 37], causal', shape: [2, 3, 37, 37], divisor: 8, mask: [37, 37, 1] },
    { name: 'Llama GQA [2, 2, 2·29, 29], causal stacked twice', shape: [2, 2, 58, 29], divisor: Math.sqrt(64), mask: [29, 29, 2] },
    { name: 'no mask [4, 17, 1030]', shape: [4, 17, 1030], divisor: 1 },
    { name: 'one row [1, 5]', shape: [1, 5], divisor: 3, mask: [1, 5, 1] },
  ];
  for (const c of cases) {
    it(`${c.name}: values and gradient equal divide + mask + softmax on cpu; the same bits at 1 and 3 threads`, async function () {
      const n = c.shape.reduce((a, b) => a * b, 1);
      const xs = Float32Array.from(values(n, 3), (v) => 6 * v);
      const ws = values(n, 4); // a non-uniform upstream gradient
      const maskData = c.mask ? causal(c.mask[0], c.mask[1], c.mask[2]) : undefined;
      const maskShape: [number, number] | undefined = c.mask ? [c.mask[0] * c.mask[2], c.mask[1]] : undefined;
      const run = (fn: (x: tf.Tensor, m?: tf.Tensor2D) => tf.Tensor): Float32Array[] =>
        tf.tidy(() => {
          const x = tf.tensor(xs, c.shape);
          const w = tf.tensor(ws, c.shape);
          const m = maskData ? tf.tensor2d(maskData, maskShape!) : undefined;
          const y = fn(x, m);
          const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(fn(t, m), w)))(x);
          return [y.dataSync() as Float32Array, g.dataSync() as Float32Array];
        });
      const threaded = nk();
      const t0 = threaded.threads();
      const counted = nativeCopy(threaded, 'softmaxRows');
      registerWasmFastKernels(counted.kernels);
      let one: Float32Array[];
      let three: Float32Array[];
      try {
        threaded.setThreads(1);
        one = run((x, m) => scaledMaskedSoftmax(x, c.divisor, m));
        threaded.setThreads(3);
        three = run((x, m) => scaledMaskedSoftmax(x, c.divisor, m));
      } finally {
        threaded.setThreads(t0);
        registerWasmFastKernels(threaded);
      }
      assert.ok(counted.calls() >= 2, `the native softmax ran ${counted.calls()} times`);
      one.forEach((a, i) => assert.ok(a.every((v, j) => Object.is(v, three[i][j])), `${i ? 'gradient' : 'value'}: 1 and 3 threads differ`));
      await tf.setBackend('cpu');
      let ref: Float32Array[];
      try {
        ref = run((x, m) => tf.softmax(m ? tf.add(tf.div(x, c.divisor), m) : tf.div(x, c.divisor)));
      } finally {
        await tf.setBackend('wasm');
      }
      assert.ok(maxRel(one[0], ref[0]) <= 1e-6, `values differ by ${maxRel(one[0], ref[0])}`);
      assert.ok(maxRel(one[1], ref[1]) <= 1e-5, `gradients differ by ${maxRel(one[1], ref[1])}`);
    });
  }

  it('refuses bad arguments, naming them', function () {
    const s = new Float32Array(12);
    const k = nk() as Required<NativeKernels>;
    assert.throws(() => k.softmaxRows(s, 0, null, 0, 0, new Float32Array(12), 0, 3, 4, 0), /softmaxRows: divisor must be a positive finite number/);
    assert.throws(() => k.softmaxRows(s, 0, new Float32Array(8), 0, 2, new Float32Array(12), 0, 3, 4, 1), /maskRows must divide rows/);
    assert.throws(() => k.softmaxRows(s, 0, null, 0, 0, new Float32Array(11), 0, 3, 4, 1), /p needs 12 floats/);
    assert.throws(() => k.softmaxRows(s, 0, null, 0, 0, s, 0, 3, 4, 1), /an output overlaps another array/);
    assert.throws(() => k.softmaxRowsGrad(s, 0, new Float32Array(12), 0, new Float32Array(12), 1, 3, 4, 1), /ds needs 12 floats from offset 1/);
  });
});
