// scratch: the engine's sessions on wasm with and without the fast kernels give the same losses
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { createSession } from '../../src/engine/session';
import { registerWasmFastKernels, fastKernelStats } from '../../src/engine/kernels/wasmFastKernels';
import { lrrConfig, attnConfig } from '../unit/engine/configs';
const wasmDir = path.join(__dirname, '../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
async function losses(cfg: any): Promise<number[]> {
  const s = await createSession(cfg); const out: number[] = [];
  const t0 = performance.now();
  for await (const p of s.run()) out.push(p.loss);
  const ms = performance.now() - t0;
  s.dispose(); console.log('  ms', ms.toFixed(0), 'tensors', tf.memory().numTensors);
  return out;
}
async function main() {
  for (const [name, cfg] of [['lrr', lrrConfig({ training: { steps: 30, batchSize: 64, logEvery: 1, evalEvery: 0, checkpointEvery: 0 } })], ['attn', attnConfig({ training: { steps: 30, logEvery: 1, evalEvery: 0, checkpointEvery: 0 } })]] as const) {
    await initBackend({ prefer: 'cpu' }); const c = await losses(cfg);
    await initBackend({ prefer: 'wasm', wasmDir }); const w = await losses(cfg);
    const restore = registerWasmFastKernels(); const f = await losses(cfg); restore();
    let d1 = 0, d2 = 0; for (let i = 0; i < c.length; i++) { d1 = Math.max(d1, Math.abs(w[i] - c[i]) / Math.abs(c[i])); d2 = Math.max(d2, Math.abs(f[i] - c[i]) / Math.abs(c[i])); }
    console.log(name, c.length, 'wasm vs cpu', d1.toExponential(2), 'wasm+fast vs cpu', d2.toExponential(2), 'last', c[c.length - 1], f[f.length - 1], fastKernelStats());
  }
}
main().then(() => process.exit(0));
