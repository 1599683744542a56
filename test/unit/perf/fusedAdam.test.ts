// The fused Adam kernel (src/engine/kernels/fusedAdam.ts) against Adam written op by op on tfjs
// (as test/bench/workloads.ts and torch.optim.Adam), on the cpu and wasm backends: five steps with
// changing gradients, p, m and v within 1e-5 relative; shape errors name the tensor.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { fusedAdamAvailable, fusedAdamStep, registerFusedAdam } from '../../../src/engine/kernels/fusedAdam';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  let scale = 1e-30;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * scale, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

async function compareOn(backend: string): Promise<void> {
  assert.ok(await tf.setBackend(backend), `setBackend(${backend})`);
  registerFusedAdam();
  assert.ok(fusedAdamAvailable());
  const lr = 1e-2;
  const shape = [7, 5];
  const p0 = tf.randomNormal(shape, 0, 1, 'float32', 11);
  let [pf, mf, vf] = [tf.clone(p0), tf.zeros(shape), tf.zeros(shape)];
  let [pr, mr, vr] = [tf.clone(p0), tf.zeros(shape), tf.zeros(shape)];
  for (let t = 1; t <= 5; t++) {
    const g = tf.randomNormal(shape, 0, t, 'float32', 20 + t);
    const c1 = 1 - Math.pow(0.9, t);
    const c2 = 1 - Math.pow(0.999, t);
    const next = fusedAdamStep(pf, mf, vf, g, { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: lr / c1, sqrtBc2: Math.sqrt(c2), decay: 1 });
    const ref = tf.tidy(() => {
      const m = tf.add(tf.mul(mr, 0.9), tf.mul(g, 0.1));
      const v = tf.add(tf.mul(vr, 0.999), tf.mul(tf.square(g), 0.001));
      const p = tf.sub(pr, tf.div(tf.mul(m, lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), 1e-8)));
      return [p, m, v];
    });
    tf.dispose([pf, mf, vf, pr, mr, vr, g]);
    [pf, mf, vf] = next;
    [pr, mr, vr] = ref;
  }
  assertClose(mf.dataSync(), mr.dataSync(), `${backend} m`);
  assertClose(vf.dataSync(), vr.dataSync(), `${backend} v`);
  assertClose(pf.dataSync(), pr.dataSync(), `${backend} p`);
  const bad = tf.zeros([3]);
  assert.throws(() => fusedAdamStep(pf, mf, vf, bad, { beta1: 0.9, beta2: 0.999, eps: 1e-8, stepSize: 1, sqrtBc2: 1, decay: 1 }), /g has shape \[3\]/);
  tf.dispose([p0, pf, mf, vf, pr, mr, vr, bad]);
}

describe('perf: fused Adam kernel', function () {
  this.timeout(20000);
  let previous: string;
  before(function () {
    previous = tf.getBackend();
  });
  after(async function () {
    if (previous) await tf.setBackend(previous);
  });

  it('equals the op-by-op Adam on the cpu backend', async function () {
    await compareOn('cpu');
  });

  it('equals the op-by-op Adam on the wasm backend', async function () {
    setWasmPaths(WASM_DIR + '/');
    await compareOn('wasm');
  });
});
