// The engine's own training sessions give the same loss curve on wasm with the fast kernels
// registered (src/engine/kernels/wasmFastKernels.ts) as on wasm without them and on cpu: the hook
// the engine's initBackend calls changes speed, not numbers.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/backend';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { attnConfig, lrrConfig } from '../engine/configs';
import { sessionLosses } from './helpers';
import { spyOnKernels } from './kernelSpies';

const wasmDir = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');

const losses = sessionLosses;

function maxRel(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]) / Math.max(1e-6, Math.abs(b[i]))));
}

describe('perf: engine sessions with the wasm fast kernels', function () {
  this.timeout(60_000);
  let previous: string;
  let isTest: boolean;
  before(function () {
    previous = tf.getBackend();
    // tfjs's IS_TEST per-kernel leak check miscounts customGrad kernels on wasm (see the engine's backend test).
    isTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', false);
  });
  after(async function () {
    tf.env().set('IS_TEST', isTest);
    if (previous) await tf.setBackend(previous);
  });

  const steps = { steps: 25, logEvery: 1, evalEvery: 0, checkpointEvery: 0 };
  const cases: [string, ExperimentConfig][] = [
    ['low-rank-recovery', lrrConfig({ training: { ...steps, batchSize: 32 } })],
    ['attention-adaptation (LoRA on q, k, v)', attnConfig({ training: steps })],
    ['attention-adaptation, 2 heads', attnConfig({ model: { numHeads: 2 }, training: steps })],
  ];
  for (const [name, cfg] of cases) {
    it(`${name}: same losses (1e-5) with and without them, and as on cpu`, async function () {
      await initBackend({ prefer: 'cpu' });
      const onCpu = await losses(cfg);
      const r = await initBackend({ prefer: 'wasm', wasmDir });
      assert.equal(r.name, 'wasm', r.notes.join('; '));
      registerWasmFastKernels()(); // initBackend registered them: take them down for the plain run
      const plainMatMul = tf.getKernel(tf.BatchMatMul, 'wasm')!.kernelFunc;
      const plain = await losses(cfg);
      const restore = registerWasmFastKernels();
      assert.notEqual(tf.getKernel(tf.BatchMatMul, 'wasm')!.kernelFunc, plainMatMul, 'the fast BatchMatMul is not registered');
      const ours = spyOnKernels([tf.BatchMatMul]);
      const tensors = tf.memory().numTensors;
      let fast: number[];
      try {
        fast = await losses(cfg);
      } finally {
        ours.undo();
        restore();
      }
      assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
      assert.ok(ours.calls[tf.BatchMatMul] > 0, 'the fast kernels ran');
      assert.ok(maxRel(fast, plain) < 1e-5, `wasm fast vs plain: ${maxRel(fast, plain)}`);
      assert.ok(maxRel(fast, onCpu) < 1e-4, `wasm fast vs cpu: ${maxRel(fast, onCpu)}`);
    });
  }
});
