import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Adam, Sgd, clipByGlobalNorm, createOptimizer, globalNorm, type Optimizer } from '../../../src/engine/optim';
import { useCpu } from './helpers';
import { FUSED_ADAM, fusedAdamAvailable, registerFusedAdam } from '../../../src/engine/kernels/fusedAdam';

/** Applies the optimizer to a single scalar parameter p with the given gradient sequence; returns p after each step. */
function run(opt: Optimizer, p0: number, gs: number[], lr: number): number[] {
  const p = tf.variable(tf.tensor1d([p0]));
  const out: number[] = [];
  for (const g of gs) {
    const gt = tf.tensor1d([g]);
    opt.apply({ p }, { p: gt }, lr);
    gt.dispose();
    out.push(p.dataSync()[0]);
  }
  p.dispose();
  opt.dispose();
  return out;
}

/** Hand-written scalar Adam/AdamW in float64, straight from the PyTorch docs. */
function refAdam(p: number, gs: number[], lr: number, b1: number, b2: number, eps: number, wd: number, decoupled: boolean): number[] {
  let m = 0;
  let v = 0;
  const out: number[] = [];
  gs.forEach((g0, i) => {
    const t = i + 1;
    let g = g0;
    if (decoupled) p *= 1 - lr * wd;
    else g += wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const mh = m / (1 - b1 ** t);
    const vh = v / (1 - b2 ** t);
    p -= (lr * mh) / (Math.sqrt(vh) + eps);
    out.push(p);
  });
  return out;
}

const near = (a: number[], b: number[], tol = 1e-6) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `step ${i + 1}: ${x} vs ${b[i]}`));

describe('engine/optim', () => {
  before(useCpu);

  it('SGD: plain, momentum (torch: buffer starts at g), L2 weight decay', () => {
    near(run(new Sgd(), 1, [2, 2], 0.1), [0.8, 0.6]);
    near(run(new Sgd(0.9), 1, [2, 2], 0.1), [0.8, 0.42]); // buf 2, then 0.9·2 + 2 = 3.8
    near(run(new Sgd(0, 0.5), 1, [2], 0.1), [0.75]); // g = 2 + 0.5·1
  });

  it('Adam: first step moves by lr·sign(g); later steps match the hand-written reference', () => {
    const ours = run(new Adam('adam'), 1, [2, -1, 0.5, 3], 0.1);
    near([ours[0]], [0.9]);
    near(ours, refAdam(1, [2, -1, 0.5, 3], 0.1, 0.9, 0.999, 1e-8, 0, false));
  });

  it('Adam with L2 weight decay vs AdamW decoupled decay', () => {
    near(run(new Adam('adam', 0.9, 0.99, 1e-6, 0.1), 2, [1, 1, -2], 0.05), refAdam(2, [1, 1, -2], 0.05, 0.9, 0.99, 1e-6, 0.1, false));
    near(run(new Adam('adamw', 0.9, 0.99, 1e-6, 0.1), 2, [1, 1, -2], 0.05), refAdam(2, [1, 1, -2], 0.05, 0.9, 0.99, 1e-6, 0.1, true));
    assert.notDeepEqual(run(new Adam('adam', 0.9, 0.99, 1e-6, 0.1), 2, [1], 0.05), run(new Adam('adamw', 0.9, 0.99, 1e-6, 0.1), 2, [1], 0.05));
  });

  it('the op-by-op Adam/AdamW (backends without the fused kernel, e.g. tfjs-node) matches the reference and the fused kernel', () => {
    const gs = [2, -1, 0.5, 3, -0.25];
    const make = () => [new Adam('adam', 0.9, 0.99, 1e-6, 0.1), new Adam('adamw', 0.9, 0.99, 1e-6, 0.1)];
    const fusedRuns = make().map((o) => run(o, 2, gs, 0.05));
    const opts = make(); // constructing registers the fused kernel: take it away afterwards
    tf.unregisterKernel(FUSED_ADAM, 'cpu');
    try {
      assert.equal(fusedAdamAvailable(), false);
      const plain = opts.map((o) => run(o, 2, gs, 0.05));
      near(plain[0], refAdam(2, gs, 0.05, 0.9, 0.99, 1e-6, 0.1, false));
      near(plain[1], refAdam(2, gs, 0.05, 0.9, 0.99, 1e-6, 0.1, true));
      near(plain[0], fusedRuns[0], 1e-7);
      near(plain[1], fusedRuns[1], 1e-7);
    } finally {
      registerFusedAdam();
    }
    assert.equal(fusedAdamAvailable(), true);
  });

  it('state export/restore continues identically', () => {
    const settings = { name: 'adamw' as const, lr: 0.1, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 };
    const a = createOptimizer(settings);
    const p = tf.variable(tf.tensor2d([1, 2, 3, 4], [2, 2]));
    const g = tf.tensor2d([0.5, -1, 2, 0.1], [2, 2]);
    a.apply({ w: p }, { w: g }, 0.1);
    a.apply({ w: p }, { w: g }, 0.1);
    const state = a.getState();
    assert.equal(state.step, 2);
    assert.deepEqual(Object.keys(state.tensors), ['m/w', 'v/w']);
    const pCopy = tf.variable(p.clone());
    const b = createOptimizer(settings);
    b.setState(state, { w: pCopy });
    a.apply({ w: p }, { w: g }, 0.05);
    b.apply({ w: pCopy }, { w: g }, 0.05);
    assert.deepEqual(Array.from(pCopy.dataSync()), Array.from(p.dataSync()));
    assert.throws(() => b.setState({ step: 3, tensors: {} }, { w: pCopy }), /optimizer state at step 3 has no slot "m\/w"/);
    tf.dispose([p, pCopy, g]);
    a.dispose();
    b.dispose();
  });

  it('global-norm clipping (torch clip_grad_norm_) and the reported norm', () => {
    const grads = { a: tf.tensor1d([3]), b: tf.tensor1d([0, 4]) };
    const n = globalNorm(grads);
    assert.equal(n.dataSync()[0], 5);
    const clipped = clipByGlobalNorm(grads, 5, 1);
    const coef = 1 / (5 + 1e-6);
    near(Array.from(clipped.a.dataSync()), [3 * coef]);
    near(Array.from(clipped.b.dataSync()), [0, 4 * coef]);
    const untouched = clipByGlobalNorm(grads, 5, 10);
    assert.deepEqual(Array.from(untouched.b.dataSync()), [0, 4]);
    // torch clamps maxNorm/(‖g‖ + 1e-6) to 1 and always multiplies: at ‖g‖ = maxNorm the gradient still shrinks.
    const atLimit = clipByGlobalNorm(grads, 5, 5);
    assert.deepEqual(Array.from(atLimit.a.dataSync()), [Math.fround(3 * Math.fround(5 / (5 + 1e-6)))]);
    assert.ok(atLimit.a.dataSync()[0] < 3);
    const off = clipByGlobalNorm(grads, 5, 0);
    assert.deepEqual(Array.from(off.a.dataSync()), [3]);
    tf.dispose([n, ...Object.values(grads), ...Object.values(clipped), ...Object.values(untouched), ...Object.values(atLimit), ...Object.values(off)]);
  });
});
