// Kernel-time profile of one training step:
// `npx tsx test/bench/profileStep.ts <workload> <naive|tuned> [wasm|cpu] [fast 0|1] [native 0|1]` (native: default 1).
import * as tf from '@tensorflow/tfjs-core';
import { Adam, buildWorkload, trainStep, workloadByName, type Formulation } from './workloads';
import { initBenchBackend, type BenchBackend } from './benchBackend';

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
  const by = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) {
    const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join('x')}`;
    const e = by.get(key) ?? { ms: 0, n: 0 };
    e.ms += (k.kernelTimeMs as number) || 0;
    e.n++;
    by.set(key, e);
  }
  const rows = [...by.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25);
  const total = [...by.values()].reduce((s, e) => s + e.ms, 0);
  console.log(`wall ${wall.toFixed(1)} ms (profiled), kernel total ${total.toFixed(1)} ms, ${info.kernels.length} kernels`);
  for (const [k, e] of rows) console.log(`${e.ms.toFixed(2).padStart(9)} ms  x${e.n}  ${k}`);
}
void main();
