// On a tfjs-backend-wasm version whose internals src/engine/kernels/wasm/backendInternals.ts does not
// know, the fast kernels stay out: the backend report says why, no kernel is overridden or added, the
// native kernels are not used, and training gives exactly the numbers of tfjs's plain kernels. The
// version is passed in (the same seam initBackend has), not changed in node_modules.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/backend';
import { FUSED_ADAM, registerFusedAdam } from '../../../src/engine/kernels/fusedAdam';
import { frozenNative } from '../../../src/engine/kernels/frozenWeights';
import { GELU_TANH, GELU_TANH_GRAD } from '../../../src/engine/kernels/gelu';
import { NORM, NORM_GRAD } from '../../../src/engine/kernels/norm';
import { TFJS_WASM_VERSION, wasmInternals } from '../../../src/engine/kernels/wasm/backendInternals';
import { registerWasmFastKernels, unknownWasmVersion, wasmFastKernelsActive, wasmNativeKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { attnConfig, lrrConfig } from '../engine/configs';
import { sessionLosses } from './helpers';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
const OVERRIDDEN = [tf.BatchMatMul, tf._FusedMatMul, tf.Exp, tf.Tanh, tf.Transpose, tf.Identity, tf.Cast, tf.GatherV2, tf.Slice, tf.SplitV, tf.Concat];
const ADDED = [GELU_TANH, GELU_TANH_GRAD, NORM, NORM_GRAD];
const UNKNOWN = '4.23.0';

describe('perf: the wasm fast kernels on a tfjs-backend-wasm they do not know', function () {
  this.timeout(60_000);
  const nk = loadNativeKernels({}).kernels;
  let previous: string;
  let isTest: boolean;

  before(function () {
    previous = tf.getBackend();
    // tfjs's IS_TEST per-kernel leak check miscounts customGrad kernels on wasm (see engineParity.test.ts).
    isTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', false);
  });
  after(async function () {
    tf.env().set('IS_TEST', isTest);
    if (previous) await tf.setBackend(previous);
  });

  it('knows the installed version and 4.22 patch releases; names any other and what happens', function () {
    assert.equal(unknownWasmVersion(), undefined, `the installed ${TFJS_WASM_VERSION}`);
    assert.equal(unknownWasmVersion('4.22.9'), undefined);
    assert.ok(wasmInternals('4.22.0'));
    for (const v of ['4.23.0', '4.2.20', '5.0.0', '4.22.0-rc.1']) {
      assert.equal(unknownWasmVersion(v), `tfjs-backend-wasm ${v} is not one LoRA Lab's fast kernels know (4.22.x); using its plain kernels`);
      assert.equal(wasmInternals(v), undefined, v);
    }
  });

  it('initBackend: the report says why, nothing is overridden or added, and training gives the plain kernels\' numbers exactly', async function () {
    const cfgs = [
      lrrConfig({ training: { steps: 8, logEvery: 1, evalEvery: 0, checkpointEvery: 0, batchSize: 32 } }),
      attnConfig({ model: { numHeads: 2 }, training: { steps: 8, logEvery: 1, evalEvery: 0, checkpointEvery: 0 } }),
    ];
    const known = await initBackend({ prefer: 'wasm', wasmDir: WASM_DIR, native: nk });
    assert.equal(known.name, 'wasm', known.notes.join('; '));
    assert.ok(wasmFastKernelsActive(), 'the installed version gets the fast kernels');
    registerWasmFastKernels(nk)(); // tfjs's own kernels, for the reference run
    const plainFuncs = OVERRIDDEN.map((n) => tf.getKernel(n, 'wasm')!.kernelFunc);
    const plain = [];
    for (const cfg of cfgs) plain.push(await sessionLosses(cfg));

    // Registered again by a first initBackend, then asked for on the unknown version: taken down.
    await initBackend({ prefer: 'wasm', wasmDir: WASM_DIR, native: nk });
    const r = await initBackend({ prefer: 'wasm', wasmDir: WASM_DIR, native: nk, wasmVersion: UNKNOWN });
    assert.equal(r.name, 'wasm', r.notes.join('; '));
    assert.ok(r.notes.includes(`tfjs-backend-wasm ${UNKNOWN} is not one LoRA Lab's fast kernels know (4.22.x); using its plain kernels`), r.notes.join('; '));
    assert.equal(r.kernels, undefined, 'the native kernels are not reported (nor used)');
    assert.ok(!wasmFastKernelsActive());
    assert.equal(wasmNativeKernels(), undefined);
    assert.equal(frozenNative(), undefined, 'frozen weights stay in the heap');
    OVERRIDDEN.forEach((n, i) => assert.equal(tf.getKernel(n, 'wasm')!.kernelFunc, plainFuncs[i], `${n} is overridden`));
    for (const n of ADDED) assert.equal(tf.getKernel(n, 'wasm'), undefined, `${n} is registered`);
    for (const [i, cfg] of cfgs.entries()) assert.deepEqual(await sessionLosses(cfg), plain[i], `${cfg.kind}: losses differ from the plain kernels'`);
  });

  it('registerWasmFastKernels on the unknown version registers nothing and restores nothing', async function () {
    assert.ok(await tf.setBackend('wasm'));
    const before = OVERRIDDEN.map((n) => tf.getKernel(n, 'wasm')!.kernelFunc);
    const restore = registerWasmFastKernels(nk, { wasmVersion: UNKNOWN });
    assert.ok(!wasmFastKernelsActive());
    OVERRIDDEN.forEach((n, i) => assert.equal(tf.getKernel(n, 'wasm')!.kernelFunc, before[i], n));
    restore();
    OVERRIDDEN.forEach((n, i) => assert.equal(tf.getKernel(n, 'wasm')!.kernelFunc, before[i], n));
  });

  it('fused Adam on the unknown version: registered for cpu only (wasm keeps the op-by-op form)', function () {
    const wasmAdam = tf.getKernel(FUSED_ADAM, 'wasm');
    if (wasmAdam) tf.unregisterKernel(FUSED_ADAM, 'wasm');
    try {
      registerFusedAdam({ wasmVersion: UNKNOWN });
      assert.equal(tf.getKernel(FUSED_ADAM, 'wasm'), undefined);
      assert.ok(tf.getKernel(FUSED_ADAM, 'cpu'));
      registerFusedAdam();
      assert.ok(tf.getKernel(FUSED_ADAM, 'wasm'), 'the installed version gets it');
    } finally {
      if (tf.getKernel(FUSED_ADAM, 'wasm')) tf.unregisterKernel(FUSED_ADAM, 'wasm');
      if (wasmAdam) tf.registerKernel(wasmAdam);
    }
  });
});
