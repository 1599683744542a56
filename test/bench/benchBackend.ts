// Backend set-up for the bench. Checks what tfjs silently ignores: `tf.setBackend` resolves false
// (and stays on cpu) when a backend fails to initialise.
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastKernels } from '../../src/engine/kernels/wasmFastKernels';
import { describeNative } from '../../src/engine/kernels/nativeKernels';
import { loadNativeKernels } from '../../src/runs/nativeLoader';

export type BenchBackend = 'wasm' | 'cpu' | 'tensorflow';

export interface BenchBackendReport {
  name: string;
  threads?: number;
  notes: string[];
}

export const WASM_DIR = path.resolve(__dirname, '../../node_modules/@tensorflow/tfjs-backend-wasm/dist');

export async function initBenchBackend(which: BenchBackend, threads: number, fastKernels: boolean, native = false): Promise<BenchBackendReport> {
  const notes: string[] = [];
  if (which === 'tensorflow') {
    try {
      // Optional dependency: absent on most machines (it needs a native download at install).
      await import('@tensorflow/tfjs-node' as string);
    } catch (e) {
      throw new Error(`@tensorflow/tfjs-node is not installed: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!(await tf.setBackend('tensorflow'))) throw new Error('tf.setBackend("tensorflow") returned false');
    return { name: tf.getBackend(), notes };
  }
  if (which === 'wasm') {
    // With native kernels the threads are theirs and the wasm build stays single-threaded (as in training).
    if (threads > 1 && !native) {
      const { initThreadedWasm } = await import('../../src/engine/wasmThreads');
      const r = await initThreadedWasm({
        wasmDir: WASM_DIR,
        threads,
        mainScriptPath: require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
        writeFile: (name, text) => {
          const p = path.join(os.tmpdir(), name);
          fs.writeFileSync(p, text);
          return p;
        },
        os,
      });
      notes.push(...r.notes);
    } else {
      setThreadsCount(1);
      setWasmPaths(WASM_DIR + '/');
    }
    const ok = await tf.setBackend('wasm');
    if (!ok || tf.getBackend() !== 'wasm') throw new Error(`tf.setBackend("wasm") returned ${ok}; backend is ${tf.getBackend()}`);
    if (fastKernels) {
      const nk = native ? loadNativeKernels().kernels : undefined;
      if (native && !nk) throw new Error(`native kernels requested but unavailable: ${loadNativeKernels().note}`);
      registerWasmFastKernels(nk);
      if (nk) {
        nk.setThreads(threads);
        notes.push(describeNative(nk));
      }
    }
    const be = tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } };
    return { name: 'wasm', threads: native ? threads : be.wasm.tfjs.getThreadsCount(), notes };
  }
  if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") returned false');
  return { name: 'cpu', notes };
}
