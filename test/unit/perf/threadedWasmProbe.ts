// Child process of wasmThreads.test.ts: starts the threaded wasm backend with 2 threads, runs a
// batched/transposed matMul and a 2-D XNNPACK matMul through the fast kernels, prints the results
// as one JSON line and exits (pthread workers would otherwise keep the process alive).
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initThreadedWasm } from '../../../src/engine/wasmThreads';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-threads-'));
  const report = await initThreadedWasm({
    wasmDir: path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist'),
    threads: 2,
    mainScriptPath: require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
    writeFile: (name, text) => {
      const p = path.join(tmp, name);
      fs.writeFileSync(p, text);
      return p;
    },
    os,
  });
  const ok = await tf.setBackend('wasm');
  registerWasmFastKernels();
  const be = tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } };
  const a = tf.tensor3d(Array.from({ length: 3 * 40 * 24 }, (_, i) => Math.sin(i)), [3, 40, 24]);
  const b = tf.tensor3d(Array.from({ length: 3 * 30 * 24 }, (_, i) => Math.cos(i)), [3, 30, 24]);
  const x = tf.tensor2d(Array.from({ length: 64 * 128 }, (_, i) => Math.sin(i * 0.37)), [64, 128]);
  const w = tf.tensor2d(Array.from({ length: 128 * 96 }, (_, i) => Math.cos(i * 0.11)), [128, 96]);
  const out = {
    ok,
    backend: tf.getBackend(),
    threads: be.wasm.tfjs.getThreadsCount(),
    notes: report.notes,
    batched: Array.from(tf.matMul(a, b, false, true).dataSync()),
    plain: Array.from(tf.matMul(x, w).dataSync()),
  };
  fs.rmSync(tmp, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }) + '\n');
    process.exit(1);
  },
);
