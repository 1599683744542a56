import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { EngineError } from '../../../src/engine/errors';
import { FrozenLinear, LoRALinear, deltaW, dropoutMask, loraScale } from '../../../src/engine/lora';
import { Rng } from '../../../src/engine/rng';
import { assertClose, f32, loadSeedFixture, useCpu, type FixtureTensor } from './helpers';

describe('engine/lora: LoRALinear', () => {
  before(useCpu);

  const fx = loadSeedFixture();
  const c = fx.linear_small as Record<string, FixtureTensor & number>;
  const d = c.in_features as number;
  const k = c.out_features as number;
  const r = c.r as number;

  function seedLayer(inputGrad = false): LoRALinear {
    return new LoRALinear({
      inFeatures: d,
      outFeatures: k,
      r,
      scaling: 'none',
      trainBias: true,
      weight: f32(c.weight),
      bias: f32(c.bias),
      A: f32(c.A),
      B: f32(c.B),
      inputGrad,
    });
  }

  it('matches the seed reference: output, loss and gradients of A, B, bias (1e-4 relative)', () => {
    for (const inputGrad of [false, true]) {
      const layer = seedLayer(inputGrad);
      const x = tf.tensor2d(f32(c.x), c.x.shape as [number, number]);
      const y = layer.apply(x);
      assertClose(y.dataSync(), c.y.data, 1e-4, 'output y');
      const vars = layer.trainableVariables();
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(layer.apply(x))) as tf.Scalar, Object.values(vars));
      assertClose(value.dataSync(), [c.loss_mean_square as number], 1e-4, 'loss');
      assertClose(grads[vars.lora_A.name].dataSync(), c.grad_A.data, 1e-4, 'grad A');
      assertClose(grads[vars.lora_B.name].dataSync(), c.grad_B.data, 1e-4, 'grad B');
      assertClose(grads[vars.bias.name].dataSync(), c.grad_bias.data, 1e-4, 'grad bias');
      assertClose(layer.deltaW().dataSync(), c.delta_W.data, 1e-4, 'delta_W');
      tf.dispose([x, y, value, ...Object.values(grads)]);
      layer.dispose();
    }
  });

  it('input gradient (inputGrad) equals autodiff of the unfactored formula', () => {
    const layer = seedLayer(true);
    const x = tf.tensor2d(f32(c.x), c.x.shape as [number, number]);
    const ours = tf.grad((xx: tf.Tensor) => tf.mean(tf.square(layer.apply(xx))))(x);
    const ref = tf.grad((xx: tf.Tensor) => {
      const Wfull = tf.add(tf.tensor2d(f32(c.weight), [k, d]), tf.matMul(layer.B, layer.A));
      return tf.mean(tf.square(tf.add(tf.matMul(xx as tf.Tensor2D, Wfull, false, true), layer.bias!)));
    })(x);
    assertClose(ours.dataSync(), ref.dataSync(), 1e-5, 'dx');
    tf.dispose([x, ours, ref]);
    layer.dispose();
  });

  it('B = 0 at init gives the base output exactly; batched [b, t, d] input keeps its leading axes', () => {
    const rng = new Rng(7);
    const layer = new LoRALinear({ inFeatures: 8, outFeatures: 6, r: 2, alpha: 16, init: 'gaussian', rng, bias: rng.normalArray(6) });
    const x = tf.tensor3d(rng.normalArray(2 * 3 * 8), [2, 3, 8]);
    const y = layer.apply(x);
    assert.deepEqual(y.shape, [2, 3, 6]);
    const base = tf.add(tf.matMul(tf.reshape(x, [6, 8]) as tf.Tensor2D, layer.Wt as tf.Tensor2D), layer.bias!);
    assert.deepEqual(Array.from(y.dataSync()), Array.from(base.dataSync()));
    assert.ok(tf.max(tf.abs(layer.A)).dataSync()[0] > 0);
    tf.dispose([x, y, base]);
    layer.dispose();
  });

  it('merged output ≈ unmerged (1e-4), unmerge restores W (1e-5)', () => {
    const rng = new Rng(3);
    const layer = new LoRALinear({ inFeatures: 10, outFeatures: 20, r: 4, alpha: 8, init: 'kaiming-uniform', rng, B: rng.normalArray(20 * 4, 0.5), bias: rng.normalArray(20) });
    const W0 = layer.weight();
    const x = tf.tensor2d(rng.normalArray(5 * 10), [5, 10]);
    const unmerged = layer.apply(x);
    layer.merge();
    assert.equal(layer.merged, true);
    const merged = layer.apply(x);
    assertClose(merged.dataSync(), unmerged.dataSync(), 1e-4, 'merged vs unmerged');
    const dW = layer.deltaW();
    const W1 = layer.weight();
    assertClose(tf.sub(W1, W0).dataSync(), dW.dataSync(), 1e-4, 'merged W − W0 = ΔW');
    layer.unmerge();
    const W2 = layer.weight();
    const maxAbs = tf.max(tf.abs(tf.sub(W2, W0))).dataSync()[0];
    assert.ok(maxAbs < 1e-5, `unmerge left |W − W0| = ${maxAbs}`);
    tf.dispose([W0, W1, W2, x, unmerged, merged, dW]);
    layer.dispose();
  });

  it("PEFT's _test_merge_layers on its tiny 10→20→2 MLP: merged ≈ unmerged (atol 1e-4), unmerge restores the output", () => {
    const rng = new Rng(12);
    const common = { r: 4, alpha: 8, rng, init: 'kaiming-uniform' as const };
    const l1 = new LoRALinear({ ...common, name: 'lin0', inFeatures: 10, outFeatures: 20, B: rng.normalArray(20 * 4, 0.3), bias: rng.normalArray(20, 0.1) });
    const l2 = new LoRALinear({ ...common, name: 'lin1', inFeatures: 20, outFeatures: 2, B: rng.normalArray(2 * 4, 0.3), bias: rng.normalArray(2, 0.1), inputGrad: true });
    const mlp = (x: tf.Tensor) => tf.tidy(() => l2.apply(tf.relu(l1.apply(x))));
    const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    const x = tf.tensor2d(rng.normalArray(16 * 10), [16, 10]);
    const base = tf.tidy(() => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, l1.Wt as tf.Tensor2D), l1.bias!)), l2.Wt as tf.Tensor2D), l2.bias!));
    const before = mlp(x);
    assert.ok(maxAbsDiff(before, base) > 1e-2, 'the adapters must change the output for this test to mean anything');
    l1.merge();
    l2.merge();
    const merged = mlp(x);
    const maxDiff = maxAbsDiff(merged, before);
    assert.ok(maxDiff <= 1e-4, `merged vs unmerged: max |Δ| = ${maxDiff}`);
    l1.unmerge();
    l2.unmerge();
    const after = mlp(x);
    assert.ok(maxAbsDiff(after, before) <= 1e-5);
    tf.dispose([x, base, before, merged, after]);
    l1.dispose();
    l2.dispose();
  });

  it('merge refuses a non-finite result like PEFT safe_merge, naming the module and leaving W unchanged', () => {
    const rng = new Rng(4);
    const layer = new LoRALinear({ name: 'attention.q', inFeatures: 6, outFeatures: 5, r: 2, rng, B: rng.normalArray(10) });
    const W0 = layer.weight();
    layer.A.assign(tf.fill([2, 6], NaN));
    assert.throws(() => layer.merge(), (e: unknown) => EngineError.is(e, 'invalid-argument') && /^attention\.q: NaNs or Infs detected while merging/.test((e as Error).message));
    assert.equal(layer.merged, false);
    const W1 = layer.weight();
    assert.deepEqual(Array.from(W1.dataSync()), Array.from(W0.dataSync()));
    tf.dispose([W0, W1]);
    layer.dispose();
  });

  it('a bad initial tensor is named in the error and leaves no variables behind', () => {
    const before = tf.memory().numTensors;
    assert.throws(
      () => new LoRALinear({ name: 'linear', inFeatures: 4, outFeatures: 3, r: 2, B: new Float32Array(5) }),
      (e: unknown) => EngineError.is(e, 'shape-mismatch') && (e as Error).message === 'linear lora_B: expected shape [3, 2], got [5]',
    );
    assert.equal(tf.memory().numTensors, before);
    const layer = new LoRALinear({ name: 'linear', inFeatures: 4, outFeatures: 3, r: 2 });
    const x = tf.zeros([2, 5]);
    assert.throws(() => layer.apply(x), (e: unknown) => (e as Error).message === "linear: input's last axis (in_features): expected shape [4], got [5]");
    x.dispose();
    layer.dispose();
  });

  it('scaling modes and deltaW(A, B, s)', () => {
    assert.equal(loraScale(16, 4, 'standard'), 4);
    assert.equal(loraScale(16, 4, 'rslora'), 8);
    assert.equal(loraScale(16, 4, 'none'), 1);
    const A = tf.tensor2d([1, 2, 3, 4], [1, 4]);
    const B = tf.tensor2d([1, -1], [2, 1]);
    assert.deepEqual(Array.from(deltaW(A, B, 2).dataSync()), [2, 4, 6, 8, -2, -4, -6, -8]);
    tf.dispose([A, B]);
  });

  it("kaiming-uniform is torch's kaiming_uniform_(A, a=√5) on A [r, in]: U(−1/√in, 1/√in); gaussian has std ≈ 0.02", () => {
    const d2 = 400;
    const ku = new LoRALinear({ inFeatures: d2, outFeatures: 3, r: 8, init: 'kaiming-uniform', rng: new Rng(1) });
    const a = Array.from(ku.A.dataSync());
    // torch: fan_in = A.size(1) = in; gain = calculate_gain('leaky_relu', √5) = √(2/(1+5)); bound = √3·gain/√fan_in.
    const bound = (Math.sqrt(3) * Math.sqrt(2 / (1 + 5))) / Math.sqrt(d2);
    assert.ok(Math.abs(bound - 1 / Math.sqrt(d2)) < 1e-12);
    const maxAbs = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(maxAbs <= bound && maxAbs > 0.99 * bound, `max |A| ${maxAbs} vs bound ${bound}`);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const sd = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
    assert.ok(Math.abs(mean) < 0.05 * bound && Math.abs(sd - bound / Math.sqrt(3)) < 0.05 * bound, `mean ${mean}, std ${sd} (uniform: ${bound / Math.sqrt(3)})`);
    const g = new LoRALinear({ inFeatures: d2, outFeatures: 3, r: 8, init: 'gaussian', rng: new Rng(1) });
    const ga = g.A.dataSync();
    const std = Math.sqrt(Array.from(ga).reduce((s, v) => s + v * v, 0) / ga.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);
    ku.dispose();
    g.dispose();
  });

  it('dropout applies to the LoRA path only, is seeded, and is off outside training', () => {
    const rng = new Rng(5);
    const layer = new LoRALinear({ inFeatures: 16, outFeatures: 4, r: 2, dropout: 0.5, rng, B: rng.normalArray(8) });
    const x = tf.tensor2d(rng.normalArray(32 * 16), [32, 16]);
    const evalY = layer.apply(x);
    const a = layer.apply(x, { training: true, dropoutSeed: 11 });
    const b = layer.apply(x, { training: true, dropoutSeed: 11 });
    const other = layer.apply(x, { training: true, dropoutSeed: 12 });
    assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
    assert.notDeepEqual(Array.from(a.dataSync()), Array.from(other.dataSync()));
    assert.notDeepEqual(Array.from(a.dataSync()), Array.from(evalY.dataSync()));
    tf.dispose([x, evalY, a, b, other]);
    layer.dispose();
  });

  it('dropout: y = x·Wᵀ + b + s·((x ⊙ m)·Aᵀ)·Bᵀ in float64, m ∈ {0, 1/(1−p)} at rate p, unbiased over seeds', () => {
    // The oracle is written here: the mask touches the LoRA path's input only, and the kept entries are
    // scaled by 1/(1−p) (PEFT's nn.Dropout), so averaged over masks the training output is the eval output.
    const rng = new Rng(21);
    const [n, d, k, r, p, alpha] = [64, 12, 5, 3, 0.3, 6];
    const s = alpha / r;
    const W = rng.normalArray(k * d, 0.3);
    const bias = rng.normalArray(k, 0.1);
    const A = rng.normalArray(r * d, 0.4);
    const B = rng.normalArray(k * r, 0.4);
    const layer = new LoRALinear({ inFeatures: d, outFeatures: k, r, alpha, scaling: 'standard', dropout: p, trainBias: true, weight: W, bias, A, B });
    const xs = rng.normalArray(n * d);
    const x = tf.tensor2d(xs, [n, d]);
    const oracle = (m: ArrayLike<number> | undefined): Float64Array => {
      const y = new Float64Array(n * k);
      for (let i = 0; i < n; i++) {
        const xa = new Float64Array(r);
        for (let q = 0; q < r; q++) for (let j = 0; j < d; j++) xa[q] += xs[i * d + j] * (m ? m[i * d + j] : 1) * A[q * d + j];
        for (let o = 0; o < k; o++) {
          let v = bias[o];
          for (let j = 0; j < d; j++) v += xs[i * d + j] * W[o * d + j];
          for (let q = 0; q < r; q++) v += s * xa[q] * B[o * r + q];
          y[i * k + o] = v;
        }
      }
      return y;
    };
    // The mask: exactly 0 or 1/(1−p), zero at about rate p (a larger draw for the rate).
    const big = dropoutMask([200, 100], p, 3).dataSync();
    assert.ok(big.every((v) => v === 0 || v === Math.fround(1 / (1 - p))), 'mask values other than 0 and 1/(1−p)');
    const zeros = big.filter((v) => v === 0).length / big.length;
    assert.ok(Math.abs(zeros - p) < 0.02, `dropped ${zeros}, p = ${p}`);
    // One training call against the oracle with that call's mask; eval (no mask) against the plain oracle.
    const seed = 41;
    const m = dropoutMask([n, d], p, seed);
    const yTrain = layer.apply(x, { training: true, dropoutSeed: seed });
    assertClose(yTrain.dataSync() as Float32Array, oracle(m.dataSync()), 1e-5, 'training output vs float64 oracle');
    const yEval = layer.apply(x);
    const evalRef = oracle(undefined);
    assertClose(yEval.dataSync() as Float32Array, evalRef, 1e-5, 'eval output vs float64 oracle');
    // Unbiased: the LoRA part averaged over 400 seeds approaches its eval value (std of the mean ≈ 0.05·scale).
    const sum = new Float64Array(n * k);
    const seeds = 400;
    for (let t = 0; t < seeds; t++) {
      const y = tf.tidy(() => layer.apply(x, { training: true, dropoutSeed: 1000 + t }).dataSync());
      for (let i = 0; i < sum.length; i++) sum[i] += y[i] / seeds;
    }
    const base = oracle(new Float64Array(n * d)); // mask of zeros: the base path alone
    let bias2 = 0;
    let spread = 0;
    for (let i = 0; i < sum.length; i++) {
      bias2 += (sum[i] - evalRef[i]) * (evalRef[i] - base[i]);
      spread += (evalRef[i] - base[i]) ** 2;
    }
    // Projected on the LoRA part: 0 when unbiased; −p (here −0.3) if kept entries were not rescaled.
    const ratio = bias2 / spread;
    assert.ok(Math.abs(ratio) < 0.05, `mean over seeds − eval, along the LoRA part: ${ratio.toFixed(3)} of it (0 when unbiased)`);
    tf.dispose([x, m, yTrain, yEval]);
    layer.dispose();
  });

  it('FrozenLinear: the hand-written dx (inputGrad) equals autodiff, and no gradient reaches W', () => {
    const rng = new Rng(8);
    const w = rng.normalArray(6 * 10);
    const b = rng.normalArray(6);
    const fast = new FrozenLinear(10, 6, w, b, true);
    const plain = new FrozenLinear(10, 6, w, b, false);
    const x = tf.tensor3d(rng.normalArray(2 * 3 * 10), [2, 3, 10]);
    const f = (m: FrozenLinear) => (xx: tf.Tensor) => tf.sum(tf.sin(m.apply(xx)));
    const g1 = tf.grad(f(fast))(x);
    const g2 = tf.grad(f(plain))(x);
    assert.deepEqual(g1.shape, [2, 3, 10]);
    assertClose(g1.dataSync(), g2.dataSync(), 1e-5, 'dx');
    assertClose(fast.apply(x).dataSync(), plain.apply(x).dataSync(), 1e-6, 'y');
    tf.dispose([x, g1, g2]);
    fast.dispose();
    plain.dispose();
  });
});
