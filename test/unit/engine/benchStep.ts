// Not a test: measures ms/step of the low-rank-recovery session (LoRALinear d = k = 1024, r = 8, batch 256)
// on each backend, against a naive formulation (autodiff of x·(W + s·B·A)ᵀ). Run:
//   npx tsx test/unit/engine/benchStep.ts [steps]
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src/engine/backend';
import { Adam } from '../../../src/engine/optim';
import { Rng } from '../../../src/engine/rng';
import { buildBuiltinSession } from '../../../src/engine/session';
import { lrrConfig } from './configs';

const wasmDir = path.join(__dirname, '..', '..', '..', 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
const steps = Number(process.argv[2] ?? 10);
const d = 1024;
const r = 8;
const batch = 256;

async function session(): Promise<number> {
  const s = await buildBuiltinSession(lrrConfig({ model: { inFeatures: d, outFeatures: d, trueRank: 4 }, lora: { r, alpha: r }, training: { steps: steps + 2, batchSize: batch, logEvery: 1, evalEvery: 0, checkpointEvery: 0, evalBatches: 1 } }));
  const times: number[] = [];
  let last = performance.now();
  for await (const _p of s.run()) {
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  s.dispose();
  return median(times.slice(2));
}

/** The textbook version: materialise W + s·B·A each step, let autodiff do the rest. */
async function naive(): Promise<number> {
  const rng = new Rng(1);
  const W = tf.tensor2d(rng.normalArray(d * d, 1 / 32), [d, d]);
  const A = tf.variable(tf.tensor2d(rng.normalArray(r * d, 0.02), [r, d]));
  const B = tf.variable(tf.zeros([d, r]));
  const x = tf.tensor2d(rng.normalArray(batch * d), [batch, d]);
  const y = tf.tensor2d(rng.normalArray(batch * d), [batch, d]);
  const opt = new Adam('adam');
  const times: number[] = [];
  for (let i = 0; i < steps + 2; i++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.squaredDifference(tf.matMul(x, tf.add(W, tf.matMul(B, A)), false, true), y)) as tf.Scalar, [A, B]);
    await value.data();
    opt.apply({ A, B }, { A: grads[A.name], B: grads[B.name] }, 1e-3);
    tf.dispose([value, ...Object.values(grads)]);
    times.push(performance.now() - t0);
  }
  tf.dispose([W, A, B, x, y]);
  opt.dispose();
  return median(times.slice(2));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

void (async () => {
  for (const name of ['wasm', 'cpu'] as const) {
    const rep = await initBackend({ prefer: name, wasmDir });
    if (rep.name !== name) {
      console.log(`${name}: unavailable (${rep.notes.join('; ')})`);
      continue;
    }
    const ours = await session();
    const base = await naive();
    console.log(`${name}${rep.simd ? ' (SIMD)' : ''}: session step ${ours.toFixed(1)} ms, naive ${base.toFixed(1)} ms (${(base / ours).toFixed(1)}×), d=k=${d} r=${r} batch=${batch}, median of ${steps}`);
  }
})();
