// What each group of wasm fast kernels (products.ts, elementwise.ts, norms.ts, movement.ts, slices.ts) is given
// and gives back. The groups only build kernel functions; ../wasmFastKernels.ts registers them all
// and restores tfjs's own from one table, so the two lists cannot drift apart.
import type * as tf from '@tensorflow/tfjs-core';
import type { NativeKernels } from '../nativeKernels';
import type { WasmInternalsOf } from './backendInternals';

export interface WasmKernelDeps {
  /** The wasm backend's internals (backendInternals.ts, the one module that reads them). */
  internals: WasmInternalsOf;
  /** tfjs's own wasm kernel of this name, as registered before any override; throws where there is none. */
  original(kernelName: string): tf.KernelConfig;
  /** The native kernels, where in use. */
  native?: NativeKernels;
}

export interface WasmKernelGroup {
  /** Replacements for tfjs's wasm kernels of the same names. */
  overrides: [kernelName: string, kernelFunc: tf.KernelFunc][];
  /** Kernels of our own (names tfjs does not have). */
  added: [kernelName: string, kernelFunc: tf.KernelFunc][];
  /** Frees what the kernels keep between calls; called when they are taken down. */
  dispose?(): void;
}
