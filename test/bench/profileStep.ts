// Kernel-time profile of one training step:
// `npx tsx test/bench/profileStep.ts <workload> <naive|tuned> [wasm|cpu] [fast 0|1] [native 0|1]` (native: default 1).
import * as tf from '@tensorflow/tfjs-core';
import { Adam, buildWorkload, trainStep, workloadByName, type Formulation } from './workloads';
import { initBenchBackend, type BenchBackend } from './benchBackend';
import { printKernelProfile } from './profileProbe';

async function main(): Promise<void> {
  const [name = 'a', form = 'tuned', backend = 'wasm', fast = '1', native = '1'] = process.argv.slice(2);
  await initBenchBackend(backend as BenchBackend, 1, fast === '1', fast === '1' && native === '1');
  const w = buildWorkload(workloadByName(name), form as Formulation);
  const opt = new Adam(w.trainable, 1e-3, form !== 'naive');
  trainStep(w, opt);
  trainStep(w, opt);
  const t0 = performance.now();
  const info = await tf.profile(() => {
    trainStep(w, opt);
  });
  const wall = performance.now() - t0;
  printKernelProfile(info, wall, 25);
}
void main();
