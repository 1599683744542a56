// Which kernels ran, seen from the tests alone (production code keeps no counters): a kernel
// registered with tfjs is swapped, through tfjs's own registry, for one that counts its calls and
// then calls it; the native kernels handed to registerWasmFastKernels are wrapped the same way.
import * as tf from '@tensorflow/tfjs-core';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';

export interface KernelSpy {
  /** Calls per kernel name since the spy was put up. */
  readonly calls: Record<string, number>;
  /** The kernel functions that count (what tf.getKernel returns while the spy is up). */
  readonly funcs: Record<string, tf.KernelFunc>;
  /** Registers again the kernels that were there before the spy. */
  undo(): void;
}

/**
 * Counts the calls of the kernels registered now for `backend` under `names`. Spied before
 * registerWasmFastKernels, a kernel is what the overrides fall back to (tfjs's own); spied after,
 * it is the override itself.
 */
export function spyOnKernels(names: string[], backend = 'wasm'): KernelSpy {
  const calls: Record<string, number> = {};
  const funcs: Record<string, tf.KernelFunc> = {};
  const before: tf.KernelConfig[] = [];
  for (const name of names) {
    const k = tf.getKernel(name, backend);
    if (!k) throw new Error(`spyOnKernels: no ${name} kernel registered for ${backend}`);
    before.push(k);
    calls[name] = 0;
    funcs[name] = (args) => {
      calls[name]++;
      return k.kernelFunc(args);
    };
    tf.unregisterKernel(name, backend);
    tf.registerKernel({ ...k, kernelFunc: funcs[name] });
  }
  return {
    calls,
    funcs,
    undo: () => {
      for (const k of before) {
        tf.unregisterKernel(k.kernelName, k.backendName);
        tf.registerKernel(k);
      }
    },
  };
}

/** `nk` with every method call counted by name; the calls themselves go to `nk` unchanged. */
export function countingNative(nk: NativeKernels): { kernels: NativeKernels; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  // A copy, not a Proxy: the addon's methods are read-only, non-configurable properties, which a
  // Proxy's get must return as they are.
  const kernels: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(nk)) {
    kernels[name] = typeof v !== 'function' ? v : (...args: unknown[]) => {
      calls[name] = (calls[name] ?? 0) + 1;
      return (v as (...a: unknown[]) => unknown).apply(nk, args);
    };
  }
  return { kernels: kernels as unknown as NativeKernels, calls };
}

/** The calls of these methods counted so far. */
export function callsOf(calls: Record<string, number>, ...names: string[]): number {
  return names.reduce((s, n) => s + (calls[n] ?? 0), 0);
}
