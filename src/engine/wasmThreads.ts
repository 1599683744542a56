// Multi-threaded tfjs wasm backend in Node.
//
// tfjs-backend-wasm never uses its threaded build in Node: its feature flag answers "no threads"
// under Node, its pthread worker script is handed over as a blob: URL that Node's worker_threads
// cannot load, and its thread count defaults to half the logical cores (1 on a 2-core machine).
// This module builds the threaded module itself, with the worker script written to a real file and
// the main script given as a file path, then registers it as the 'wasm' backend (so every wasm
// kernel, and the fast kernels of ./kernels, apply unchanged).
//
// The caller supplies the file system parts (the engine stays free of node built-ins):
//   initThreadedWasm({
//     wasmDir,                                   // same folder as for setWasmPaths
//     threads: 2,
//     mainScriptPath: require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
//     writeFile: (name, text) => { const p = path.join(os.tmpdir(), name); fs.writeFileSync(p, text); return p; },
//     os,                                        // node:os (see ThreadedWasmOptions.os)
//   })
// then `await tf.setBackend('wasm')` as usual.
import * as tf from '@tensorflow/tfjs-core';
import { BackendWasm, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
// The emscripten factory of the threaded build and the pthread worker source (a string).
import threadedFactory from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js';
import { wasmWorkerContents } from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js';
import { ReasonError } from '../shared/errors';

export interface ThreadedWasmOptions {
  /** Folder holding tfjs-backend-wasm-threaded-simd.wasm. */
  wasmDir: string;
  /** Threads for XNNPACK's pool (tfjs's default is half the logical cores). */
  threads: number;
  /** Absolute path of @tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js. */
  mainScriptPath: string;
  /** Writes `text` to a real file named `name` (e.g. in the temp folder) and returns its absolute path. */
  writeFile(name: string, text: string): string;
  /**
   * The `node:os` module. The threaded build sizes its pool once, at start-up, as at most half of
   * `os.cpus().length` (1 thread on a 2-core machine, whatever `threads` says); its `cpus()` is
   * made to report 2 × threads while the module starts, then restored.
   */
  os: { cpus(): unknown[] };
}

export interface ThreadedWasmReport {
  threads: number;
  notes: string[];
}

export class WasmThreadsError extends ReasonError<'wasm-threads'> {
  static override readonly family = 'WasmThreadsError';
  constructor(message: string) {
    super('wasm-threads', message);
  }
}

/** Whether this runtime can run wasm threads at all (SharedArrayBuffer + atomics in wasm). */
export function wasmThreadsSupported(): boolean {
  try {
    if (typeof SharedArrayBuffer !== 'function') return false;
    // The lib for the engine has no DOM/WebAssembly types; the runtime has both.
    const wasm = (globalThis as unknown as { WebAssembly?: { validate(b: Uint8Array): boolean } }).WebAssembly;
    // A module using shared memory + an atomic op (same probe as wasm-feature-detect).
    return !!wasm && wasm.validate(
      new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0, 254, 16, 2, 0, 26, 11]),
    );
  } catch {
    return false;
  }
}

type EmscriptenModule = {
  cwrap(name: string, ret: string | null, args: string[]): (...a: unknown[]) => unknown;
  tfjs?: Record<string, unknown>;
  PThread?: { terminateAllThreads(): void };
};

/**
 * Registers the threaded-SIMD wasm module as tfjs's 'wasm' backend. Call before the first
 * `tf.setBackend('wasm')` (a wasm backend already initialised is replaced).
 */
export async function initThreadedWasm(opts: ThreadedWasmOptions): Promise<ThreadedWasmReport> {
  const notes: string[] = [];
  if (!wasmThreadsSupported()) throw new WasmThreadsError('this runtime has no SharedArrayBuffer / wasm atomics');
  if (!Number.isInteger(opts.threads) || opts.threads < 1) {
    throw new WasmThreadsError(`threads should be a positive integer, got ${opts.threads}`);
  }
  const factory = ((threadedFactory as unknown as { default?: unknown }).default ?? threadedFactory) as (cfg: object) => Promise<EmscriptenModule>;
  // The worker evaluates the main script with importScripts(path): give it the file, not a Blob.
  // The source comes from a template literal, so its "\n" escapes arrived as real newlines inside
  // string literals; escape them back (tfjs does the same before making its Blob).
  const workerPath = opts.writeFile('lora-lab-tfjs-wasm-threaded-simd.worker.js', wasmWorkerContents.replace(/\n/g, '\\n'));
  const wasmPath = `${opts.wasmDir.replace(/\/$/, '')}/tfjs-backend-wasm-threaded-simd.wasm`;
  let module: EmscriptenModule;
  const realCpus = opts.os.cpus;
  const cores = realCpus.call(opts.os).length;
  if (opts.threads > cores) notes.push(`${opts.threads} threads on ${cores} logical cores`);
  opts.os.cpus = () => Array.from({ length: 2 * opts.threads }, () => ({}));
  try {
    module = await factory({
      locateFile: (p: string, prefix: string) => (p.endsWith('.worker.js') ? workerPath : p.endsWith('.wasm') ? wasmPath : prefix + p),
      mainScriptUrlOrBlob: opts.mainScriptPath,
    });
  } catch (e) {
    throw new WasmThreadsError(`the threaded wasm module failed to start: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    opts.os.cpus = realCpus;
  }
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  setThreadsCount(opts.threads);
  if (tf.findBackendFactory('wasm')) {
    // Not tf.findBackend: it would start initialising the backend it looks up.
    const registry = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
    if (registry.wasm) notes.push('replaced an initialised single-threaded wasm backend');
    tf.removeBackend('wasm');
  }
  tf.registerBackend('wasm', () => new BackendWasm(module as never), 2);
  notes.push(`wasm threaded-simd build, ${opts.threads} threads requested`);
  return { threads: opts.threads, notes };
}
