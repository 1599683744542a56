import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/backend';
import { LoRALinear } from '../../../src/engine/lora';
import { Rng } from '../../../src/engine/rng';
import { buildBuiltinSession } from '../../../src/engine/session';
import { attnConfig, lrrConfig } from './configs';
import { assertClose } from './helpers';

const wasmDir = path.join(__dirname, '..', '..', '..', 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');

/**
 * Output and gradients of one LoRALinear (built from a fixed seed) on the current backend, as plain arrays;
 * with dropout on, so the seeded masks must agree across backends too.
 */
function forwardBackward(): Float32Array[] {
  const rng = new Rng(11);
  const layer = new LoRALinear({ inFeatures: 48, outFeatures: 40, r: 4, alpha: 8, dropout: 0.25, trainBias: true, inputGrad: true, rng, B: rng.normalArray(160, 0.1), bias: rng.normalArray(40) });
  const x = tf.tensor2d(rng.normalArray(33 * 48), [33, 48]);
  const train = { training: true, dropoutSeed: 77 };
  const vars = layer.trainableVariables();
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(layer.apply(x, train))) as tf.Scalar, Object.values(vars));
  const dx = tf.grad((xx: tf.Tensor) => tf.mean(tf.square(layer.apply(xx, train))))(x);
  const out = [layer.apply(x), layer.apply(x, train), value, ...Object.values(vars).map((v) => grads[v.name]), dx].map((t) => t.dataSync() as Float32Array);
  tf.dispose([x, value, dx, ...Object.values(grads)]);
  layer.dispose();
  return out;
}

describe('engine/backend', () => {
  let restoreIsTest: boolean | undefined;
  after(async () => {
    if (restoreIsTest !== undefined) tf.env().set('IS_TEST', restoreIsTest);
    await tf.setBackend('cpu');
  });

  it('cpu when asked; tensorflow when tfjs-node loads (same numbers as cpu), else a note saying why not', async function () {
    this.timeout(30_000);
    const r = await initBackend({ prefer: 'cpu' });
    assert.equal(r.name, 'cpu');
    assert.equal(tf.getBackend(), 'cpu');
    const onCpu = forwardBackward();
    const auto = await initBackend({ prefer: 'tensorflow', wasmDir });
    // Whether tfjs-node is installed decides the branch, and each branch checks something that can fail.
    let nodeInstalled = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      nodeInstalled = false;
    }
    if (auto.name === 'tensorflow') {
      assert.ok(nodeInstalled, 'tensorflow backend chosen although @tensorflow/tfjs-node does not resolve');
      assert.equal(tf.getBackend(), 'tensorflow');
      const onNode = forwardBackward();
      onCpu.forEach((c, i) => assertClose(onNode[i], c, 1e-4, `output ${i} tensorflow vs cpu`));
    } else {
      assert.notEqual(auto.name, 'cpu', `fell back past wasm to cpu: ${auto.notes.join('; ')}`);
      assert.equal(tf.getBackend(), auto.name);
      const why = nodeInstalled ? /tfjs-node (failed to load|loaded but)/ : /tfjs-node is not installed/;
      assert.ok(auto.notes.some((n) => why.test(n)), `expected a note matching ${why}, got: ${auto.notes.join('; ')}`);
    }
  });

  it('wasm (SIMD) initialises from a file path and gives the same numbers as cpu within 1e-4', async function () {
    this.timeout(30_000);
    // tfjs's per-kernel leak check (IS_TEST, if another test file turned it on) miscounts customGrad kernels
    // on wasm (the tensor count itself stays flat); it is a debugging aid, not what this test is about.
    restoreIsTest ??= tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', false);
    await initBackend({ prefer: 'cpu' });
    const onCpu = forwardBackward();
    const r = await initBackend({ prefer: 'wasm', wasmDir });
    assert.equal(r.name, 'wasm', `wasm did not initialise: ${r.notes.join('; ')}`);
    assert.equal(tf.getBackend(), 'wasm');
    assert.equal(typeof r.simd, 'boolean');
    assert.ok((r.threads ?? 0) >= 1);
    const onWasm = forwardBackward();
    const names = ['output', 'output with dropout', 'loss', 'grad A', 'grad B', 'grad bias', 'dx'];
    assert.equal(onWasm.length, names.length);
    onCpu.forEach((c, i) => assertClose(onWasm[i], c, 1e-4, `${names[i]} wasm vs cpu`));
  });

  it('no tensor leaks on wasm either: numTensors constant from step 2, and dispose frees everything', async function () {
    this.timeout(30_000);
    restoreIsTest ??= tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', false); // see above
    const r = await initBackend({ prefer: 'wasm', wasmDir });
    assert.equal(r.name, 'wasm', r.notes.join('; '));
    for (const cfg of [
      lrrConfig({ training: { steps: 6, logEvery: 1, evalEvery: 2 }, lora: { dropout: 0.1 }, optimizer: { gradClip: 0.5 } }),
      attnConfig({ model: { numHeads: 2, kvSeqLen: 4 }, training: { steps: 6, logEvery: 1, evalEvery: 2 }, lora: { dropout: 0.1, targetModules: ['q', 'o'], trainBias: true } }),
    ]) {
      const before = tf.memory().numTensors;
      const s = await buildBuiltinSession(cfg);
      const counts: number[] = [];
      for await (const _p of s.run()) counts.push(tf.memory().numTensors);
      assert.equal(counts.length, 6);
      assert.ok(counts.slice(1).every((c) => c === counts[1]), `${cfg.kind} on wasm: numTensors ${counts.join(' ')}`);
      s.dispose();
      assert.equal(tf.memory().numTensors, before, `${cfg.kind} on wasm: tensors left after dispose`);
    }
  });
});
