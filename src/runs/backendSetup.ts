// Starts the tfjs backend for the CLI, the worker and trainRun: src/engine/backend.ts picks the backend;
// this adds what needs node built-ins (the wasm binaries' folder, the threaded wasm build's worker file)
// and keeps tfjs-backend-cpu's console banner out of the output. Once it has started, backendFacts() says
// what the backend in use can hold; trainRun reads them once and passes them down in SessionOptions.
import * as fs from 'node:fs';
// The module object itself, not a namespace copy: initThreadedWasm patches os.cpus while the build starts.
import os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendReport } from '../protocol/runFormat';
import { initBackend } from '../engine/backend';
import { frozenNative } from '../engine/kernels/frozenWeights';
import { wasmNativeKernels } from '../engine/kernels/wasmFastKernels';
import { WASM_HEAP_BYTES, type MemoryLimits } from '../engine/memoryEstimate';
import type { LoadHfFolderOptions } from '../io/hfFolder';
import { initThreadedWasm } from '../engine/wasmThreads';
import { unknownWasmVersion } from '../engine/kernels/wasmFastKernels';
import { loadNativeKernels } from './nativeLoader';

export type BackendName = Exclude<BackendReport['name'], 'torch'>;

export interface StartBackendOptions {
  /** Backend to try first (the others follow, as initBackend does). */
  prefer?: BackendName;
  /** Folder with the tfjs wasm binaries; default: defaultWasmDir(). */
  wasmDir?: string;
  /**
   * Threads. With the native kernels: their threads per matrix product (default: the cores, up to 8),
   * and the wasm build stays single-threaded. Without them: wasm threads; above 1 the threaded-SIMD
   * build is started (src/engine/wasmThreads.ts).
   */
  threads?: number;
  /** Use the native matrix-product kernels where built (default true; LORA_LAB_NATIVE=0 also turns them off). */
  native?: boolean;
}

/** Where the tfjs wasm binaries are: dist/wasm beside the bundle, else inside the npm package. */
export function defaultWasmDir(): string | undefined {
  const has = (dir: string) => fs.existsSync(path.join(dir, 'tfjs-backend-wasm.wasm'));
  const bundled = path.join(__dirname, 'wasm');
  if (has(bundled)) return bundled;
  try {
    const pkg = createRequire(__filename).resolve('@tensorflow/tfjs-backend-wasm/package.json');
    const dir = path.join(path.dirname(pkg), 'dist');
    if (has(dir)) return dir;
  } catch {
    // not installed: initBackend falls back to cpu and says why
  }
  return undefined;
}

let threadedStarted = false;

async function startThreadedWasm(wasmDir: string, threads: number, notes: string[]): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-wasm-'));
  try {
    const report = await initThreadedWasm({
      wasmDir,
      threads,
      mainScriptPath: createRequire(__filename).resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
      writeFile: (name, text) => {
        const p = path.join(tmp, name);
        fs.writeFileSync(p, text);
        return p;
      },
      os,
    });
    threadedStarted = true;
    notes.push(...report.notes);
  } catch (e) {
    notes.push(`wasm threads: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}; using the single-threaded build`);
  }
}

/**
 * tfjs-backend-cpu prints "Hi, looks like you are running TensorFlow.js in Node.js…" through
 * console.warn on its first tensor when IS_NODE. Its advice (install tfjs-node) is moot here: tfjs-node
 * was tried first and the report's notes say why it was not used, or cpu was asked for. Marking the
 * backend as already used silences that one message; PROD or IS_TEST would silence every tfjs warning.
 */
function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu && typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
}

/**
 * The largest model (weights as float32) the backend now in use can hold: the wasm backend keeps every
 * tensor in one WebAssembly memory of at most 4 GiB, and a step needs room for activations and
 * gradients beside the weights; beyond this a model fails with "memory access out of bounds".
 */
export const WASM_MODEL_BYTES = 3 * 2 ** 30;

export function modelSizeLimit(): LoadHfFolderOptions {
  // With the native kernels the frozen weights stay outside the wasm memory (frozenWeights.ts); the
  // memory estimate checks what the heap must still hold.
  if (tf.getBackend() !== 'wasm' || frozenNative() !== undefined) return {};
  return {
    maxFloat32Bytes: WASM_MODEL_BYTES,
    limitReason: 'the wasm backend keeps every tensor in one WebAssembly memory of at most 4 GiB, with activations beside the weights: models up to ~0.8 B parameters fit; larger ones need @tensorflow/tfjs-node',
  };
}

/** What bounds memory on the backend in use: the wasm memory's 4 GiB, and the machine's memory. */
export function memoryLimits(): MemoryLimits {
  const wasm = tf.getBackend() === 'wasm';
  return {
    heapBytes: wasm ? WASM_HEAP_BYTES : undefined,
    heapWhy: wasm ? 'the wasm backend\'s one WebAssembly memory' : undefined,
    totalBytes: os.totalmem(),
  };
}

/** What the backend in use can hold and where the frozen weights live, as a session needs to know it. */
export interface BackendFacts {
  /** The native kernels run the wasm backend's matrix products. */
  nativeKernels: boolean;
  /** Frozen base weights stay outside the tensor heap, as stored (src/engine/kernels/frozenWeights.ts). */
  frozenOutsideHeap: boolean;
  /** The largest model the backend can load (refused before any weight is read). */
  modelSizeLimit: LoadHfFolderOptions;
  /** What bounds the memory estimate: the heap and the machine. */
  memoryLimits: MemoryLimits;
}

/**
 * The facts of the backend now in use, read once after startBackend: the one place that asks the
 * kernels what is installed, so the layers below take them from SessionOptions instead of asking again.
 */
export function backendFacts(): BackendFacts {
  return {
    nativeKernels: tf.getBackend() === 'wasm' && wasmNativeKernels() !== undefined,
    frozenOutsideHeap: frozenNative() !== undefined,
    modelSizeLimit: modelSizeLimit(),
    memoryLimits: memoryLimits(),
  };
}

/** Threads for the native kernels when none are asked for: the cores, up to 8. */
export function defaultNativeThreads(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, cores));
}

/** initBackend with the wasm folder and thread pool set up; the report says which backend is in use and why. */
export async function startBackend(opts: StartBackendOptions = {}): Promise<BackendReport> {
  const wasmDir = opts.wasmDir ?? defaultWasmDir();
  const notes: string[] = [];
  const native = opts.native === false ? { note: 'native kernels: turned off' } : loadNativeKernels();
  if (native.kernels) native.kernels.setThreads(Math.min(64, opts.threads ?? defaultNativeThreads()));
  // With native kernels the threads go to them: the threaded wasm build would only compete for the cores.
  // They run only through the wasm fast kernels, which need a tfjs-backend-wasm they know; on another
  // version the threads go to the threaded wasm build instead.
  const threads = native.kernels && unknownWasmVersion() === undefined ? undefined : opts.threads;
  if (threads !== undefined && threads > 1 && opts.prefer !== 'cpu' && !threadedStarted) {
    if (wasmDir) await startThreadedWasm(wasmDir, threads, notes);
    else notes.push('wasm threads: the wasm binaries were not found');
  }
  const report = await initBackend({ prefer: opts.prefer, wasmDir, threads: threadedStarted ? threads : undefined, native: native.kernels });
  if (report.name === 'wasm' && native.note) notes.push(native.note);
  if (report.name === 'cpu') silenceCpuBanner();
  return { ...report, notes: [...notes, ...report.notes] };
}

/**
 * Ends the threaded wasm build's worker threads (they keep a process alive). Only for a process that is
 * about to exit: the wasm backend cannot run afterwards.
 */
export function stopWasmThreads(): void {
  if (!threadedStarted || tf.getBackend() !== 'wasm') return;
  const be = tf.backend() as unknown as { wasm?: { PThread?: { terminateAllThreads(): void } } };
  be.wasm?.PThread?.terminateAllThreads();
}
