// geluTanh (src/engine/kernels/gelu.ts) against the textbook formula and its autodiff gradient.
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { geluTanh } from '../../../src/engine/kernels/gelu';

describe('perf: fused GELU (tanh approximation)', function () {
  it('equals 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) and its gradient within 1e-6', async function () {
    const previous = tf.getBackend();
    assert.ok(await tf.setBackend('cpu'));
    const xs = Array.from({ length: 401 }, (_, i) => (i - 200) / 25); // [-8, 8]
    tf.tidy(() => {
      const x = tf.tensor1d(xs);
      const ref = (t: tf.Tensor) => tf.mul(tf.mul(t, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(t, tf.mul(0.044715, tf.pow(t, 3)))))));
      const w = tf.tensor1d(xs.map((v) => Math.cos(v))); // a non-uniform upstream gradient
      const y = geluTanh(x).dataSync();
      const yr = ref(x).dataSync();
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(geluTanh(t), w)))(x).dataSync();
      const gr = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(ref(t), w)))(x).dataSync();
      for (let i = 0; i < xs.length; i++) {
        assert.ok(Math.abs(y[i] - yr[i]) < 1e-6, `gelu(${xs[i]}): ${y[i]} vs ${yr[i]}`);
        assert.ok(Math.abs(g[i] - gr[i]) < 1e-6, `gelu'(${xs[i]}): ${g[i]} vs ${gr[i]}`);
      }
    });
    if (previous) await tf.setBackend(previous);
  });
});
