// Shared by the fast-path tests: deterministic inputs without any backend, a session's losses, and the
// wasm backend with the native kernels for a suite.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastKernels } from '../../../src/engine/kernels/wasmFastKernels';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { buildBuiltinSession, type TrainingSession } from '../../../src/engine/session';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';

/** Deterministic values in [-1, 1) without any backend (a linear congruential generator). */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The train loss of every step of a whole session of `cfg` on the current backend. */
export async function sessionLosses(cfg: ExperimentConfig): Promise<number[]> {
  return runLosses(await buildBuiltinSession(cfg));
}

/** The train loss of every step of `s`, run to its end; the session is disposed after. */
export async function runLosses(s: TrainingSession): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const p of s.run()) out.push(p.loss);
  } finally {
    s.dispose();
  }
  return out;
}

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
/** Where CI builds the native kernels: a suite that finds them missing there fails instead of skipping. */
export const NATIVE_BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && process.arch === 'x64';

/**
 * For a describe(): the wasm backend with the fast kernels on the native addon for its tests, the
 * previous backend back after them. `needs` names the addon functions the suite uses: where they are
 * missing the suite skips (fails where CI builds them). Returns the addon (set once before() ran).
 */
export function useWasmWithNative(needs: (keyof NativeKernels)[]): { nk: () => NativeKernels } {
  const nk = loadNativeKernels({}).kernels;
  let previous: string | undefined;
  let restore: (() => void) | undefined;
  before(async function () {
    if (!nk || needs.some((n) => nk[n] === undefined)) {
      if (NATIVE_BUILT_HERE) assert.fail('native kernels missing or stale: run `npm run build:native`');
      this.skip();
    }
    previous = tf.getBackend();
    setWasmPaths(WASM_DIR + '/');
    assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to initialise');
    restore = registerWasmFastKernels(nk);
  });
  after(async function () {
    restore?.();
    if (previous) await tf.setBackend(previous);
  });
  return { nk: () => nk! };
}

/**
 * The addon's functions on a plain object (its exports are read-only), with `name` counted (or left
 * out, with `drop`), for registering the fast kernels on it.
 */
export function nativeCopy(nk: NativeKernels, name: keyof NativeKernels, drop = false): { kernels: NativeKernels; calls: () => number } {
  let calls = 0;
  const all = nk as unknown as Record<string, (...a: unknown[]) => unknown>;
  const copy: Record<string, unknown> = {};
  for (const k of Object.getOwnPropertyNames(nk)) if (k !== name) copy[k] = all[k];
  if (!drop) copy[name] = (...a: unknown[]) => (calls++, all[name](...a));
  return { kernels: copy as unknown as NativeKernels, calls: () => calls };
}
