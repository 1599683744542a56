// rotate_half as a ±1 matMul (src/engine/kernels/rope.ts) and grouped-query attention without the
// kv repeat (src/models/llama.ts, test/bench/workloads.ts) against the plain formulations they
// replace: split/neg/concat and a tiled repeat_interleave. Values and gradients, within 1e-5 relative.
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { rotateHalfMatMul, rotateHalfMatrix } from '../../../src/engine/kernels/rope';

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rel = 1e-5): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= rel * Math.max(scale, 1e-30), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

const rotateHalfPlain = (x: tf.Tensor4D): tf.Tensor => {
  const d = x.shape[3];
  const [x1, x2] = tf.split(x, [d / 2, d / 2], 3);
  return tf.concat([tf.neg(x2), x1], 3);
};

describe('perf: RoPE rotate_half as a product, GQA without repeat', function () {
  let previous: string;
  before(async function () {
    previous = tf.getBackend();
    assert.ok(await tf.setBackend('cpu'));
  });
  after(async function () {
    if (previous) await tf.setBackend(previous);
  });

  it('rotateHalfMatrix rejects an odd dimension', function () {
    assert.throws(() => rotateHalfMatrix(7), /even/);
  });

  it('rotate_half(x)·w and its gradient equal the split/neg/concat form', function () {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 3, 5, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
      const w = tf.randomNormal([2, 3, 5, 8], 0, 1, 'float32', 2);
      const p = rotateHalfMatrix(8);
      // exact: entries of P are 0 and ±1
      assert.deepEqual(Array.from(rotateHalfMatMul(x, p).dataSync()), Array.from(rotateHalfPlain(x).dataSync()));
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(rotateHalfMatMul(t, p), w)))(x).dataSync();
      const gr = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(rotateHalfPlain(t as tf.Tensor4D), w)))(x).dataSync();
      assertClose(g, gr, 'd rotate_half');
    });
  });

  it('grouped attention equals the tiled repeat_interleave form, values and gradients of q, k, v', function () {
    tf.tidy(() => {
      const [b, nh, nkv, s, hd] = [2, 6, 2, 7, 4];
      const rep = nh / nkv;
      const q = tf.randomNormal([b, nh, s, hd], 0, 1, 'float32', 3) as tf.Tensor4D;
      const k = tf.randomNormal([b, nkv, s, hd], 0, 1, 'float32', 4) as tf.Tensor4D;
      const v = tf.randomNormal([b, nkv, s, hd], 0, 1, 'float32', 5) as tf.Tensor4D;
      const w = tf.randomNormal([b, nh, s, hd], 0, 1, 'float32', 6);
      const m = new Float32Array(s * s);
      for (let i = 0; i < s; i++) for (let j = i + 1; j < s; j++) m[i * s + j] = -1e9;
      const mask = tf.tensor2d(m, [s, s]);
      const maskGrouped = tf.tile(mask, [rep, 1]);
      const plain = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor): tf.Tensor => {
        const repeat = (t: tf.Tensor) => tf.reshape(tf.tile(tf.reshape(t, [b * nkv, 1, s * hd]), [1, rep, 1]), [b, nh, s, hd]);
        const scores = tf.add(tf.div(tf.matMul(qq, repeat(kk), false, true), Math.sqrt(hd)), mask);
        return tf.matMul(tf.softmax(scores), repeat(vv));
      };
      const grouped = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor): tf.Tensor => {
        const scores = tf.add(tf.div(tf.matMul(tf.reshape(qq, [b, nkv, rep * s, hd]), kk, false, true), Math.sqrt(hd)), maskGrouped);
        return tf.reshape(tf.matMul(tf.softmax(scores), vv), [b, nh, s, hd]);
      };
      assertClose(grouped(q, k, v).dataSync(), plain(q, k, v).dataSync(), 'attention');
      const loss = (f: typeof plain) => (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(f(qq, kk, vv), w));
      const g = tf.grads(loss(grouped))([q, k, v]);
      const gr = tf.grads(loss(plain))([q, k, v]);
      ['dq', 'dk', 'dv'].forEach((name, i) => assertClose(g[i].dataSync(), gr[i].dataSync(), name));
    });
  });
});
