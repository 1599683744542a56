// Picks the fastest tfjs backend that actually works here and says why the faster ones were not used:
// @tensorflow/tfjs-node ('tensorflow', native) → wasm with SIMD (XNNPACK) → cpu (plain JS).
// `tf.setBackend` resolves to false instead of throwing when a backend fails to initialise, so every
// attempt is checked with its result and tf.getBackend().
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import type { BackendReport } from './reports';
import { EngineError } from './errors';
import { registerWasmFastKernels, unknownWasmVersion } from './kernels/wasmFastKernels';
import { describeNative, type NativeKernels } from './kernels/nativeKernels';

export type BackendName = Exclude<BackendReport['name'], 'torch'>;

export interface BackendOptions {
  /** Try this backend first; the others follow in the default order. */
  prefer?: BackendName;
  /** Folder holding tfjs-backend-wasm*.wasm (a file path in Node, a URL prefix in a browser). */
  wasmDir?: string;
  /** wasm threads (only where the threaded build can run; Node's wasm backend is single-threaded). */
  threads?: number;
  /** Native matrix-product kernels for the wasm backend (src/runs/nativeLoader.ts), where built. */
  native?: NativeKernels;
  /** tfjs-backend-wasm's version as the fast kernels see it; default: the installed package's (tests pass others). */
  wasmVersion?: string;
}

const ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

function errText(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0] : String(e);
}

async function trySet(name: BackendName, notes: string[]): Promise<boolean> {
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    notes.push(`${name}: initialisation threw: ${errText(e)}`);
    return false;
  }
  if (!ok || tf.getBackend() !== name) {
    notes.push(`${name}: tf.setBackend('${name}') returned ${ok} (backend in use: ${tf.getBackend() ?? 'none'})`);
    return false;
  }
  return true;
}

/** Loads tfjs-node if installed; it must register 'tensorflow' on *our* copy of tfjs-core to be usable. */
function loadTfjsNode(notes: string[]): boolean {
  if (tf.findBackend('tensorflow')) return true;
  if (typeof require !== 'function') {
    notes.push('@tensorflow/tfjs-node: require() is not available in this runtime');
    return false;
  }
  try {
    // A plain require of an optional dependency: it is not installed where its native download failed.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-node');
  } catch (e) {
    const code = (e as { code?: string }).code;
    notes.push(
      code === 'MODULE_NOT_FOUND'
        ? '@tensorflow/tfjs-node is not installed (optional dependency; its install downloads libtensorflow)'
        : `@tensorflow/tfjs-node failed to load: ${errText(e)}`,
    );
    return false;
  }
  if (!tf.findBackend('tensorflow') && !tf.engine().registryFactory['tensorflow']) {
    notes.push('@tensorflow/tfjs-node loaded but registered its backend on another copy of @tensorflow/tfjs-core (versions differ); not used');
    return false;
  }
  return true;
}

export async function initBackend(opts: BackendOptions = {}): Promise<BackendReport> {
  const notes: string[] = [];
  const order = opts.prefer ? [opts.prefer, ...ORDER.filter((n) => n !== opts.prefer)] : ORDER;
  for (const name of order) {
    if (name === 'tensorflow') {
      if (!loadTfjsNode(notes)) continue;
      if (await trySet('tensorflow', notes)) return { name, notes };
    } else if (name === 'wasm') {
      try {
        if (opts.wasmDir) wasm.setWasmPaths(opts.wasmDir.replace(/[\\/]+$/, '') + '/');
        if (opts.threads && opts.threads > 0) wasm.setThreadsCount(opts.threads);
      } catch (e) {
        notes.push(`wasm: ${errText(e)}`);
      }
      if (await trySet('wasm', notes)) {
        // Native products where built, else XNNPACK for transposed and batched matMuls too; fast
        // tanh/transpose (kernels/wasmFastKernels.ts). None on a tfjs-backend-wasm they do not know.
        registerWasmFastKernels(opts.native, { wasmVersion: opts.wasmVersion });
        const unknown = unknownWasmVersion(opts.wasmVersion);
        if (unknown) notes.push(unknown);
        const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
        if (!simd) notes.push('wasm: this runtime has no WebAssembly SIMD; using the slower non-SIMD build');
        let threads = 1;
        try {
          threads = wasm.getThreadsCount();
        } catch {
          // older builds: single-threaded
        }
        return { name, simd, threads, ...(opts.native && !unknown ? { kernels: describeNative(opts.native) } : {}), notes };
      }
    } else {
      if (await trySet('cpu', notes)) return { name: 'cpu', notes };
    }
  }
  throw new EngineError('backend-unavailable', `no tfjs backend could be initialised: ${notes.join('; ')}`);
}
