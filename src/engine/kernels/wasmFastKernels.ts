// Fast paths for the tfjs wasm backend, registered as kernel overrides, in groups by kind (wasm/):
//   products.ts     BatchMatMul, _FusedMatMul: XNNPACK for transposed and batched products too, or
//                   the native kernels' product
//   elementwise.ts  Exp (native), Tanh (as 2·σ(2x) − 1), and the fused GELU of gelu.ts (native)
//   norms.ts        the fused LayerNorm / RMSNorm of norm.ts (native)
//   movement.ts     Transpose of the last two axes (blocked copy), Identity and same-dtype Cast
//                   (shared data), GatherV2 on the first axis (whole rows)
//   slices.ts       Slice, SplitV and Concat of float32/int32 tensors as copies of contiguous runs
// They reach the backend's internals only through wasm/backendInternals.ts, which knows
// tfjs-backend-wasm 4.22.x: on another version nothing is registered and tfjs's own kernels stay.
//
// Use: `registerWasmFastKernels(native?)` once after the wasm backend is initialised (it is a no-op
// on other backends' kernels); it returns a function that restores the original kernels. The native
// kernels (native/src, loaded by src/runs/nativeLoader.ts where they were built) are
// optional.
import * as tf from '@tensorflow/tfjs-core';
import type { NativeKernels } from './nativeKernels';
import { wasmInternals, type WasmInternals } from './wasm/backendInternals';
import { elementwiseKernels } from './wasm/elementwise';
import type { WasmKernelDeps, WasmKernelGroup } from './wasm/kernelGroup';
import { movementKernels } from './wasm/movement';
import { normKernels } from './wasm/norms';
import { productKernels } from './wasm/products';
import { sliceKernels } from './wasm/slices';

export { transposeBlocked } from './wasm/movement';
export { unknownWasmVersion } from './wasm/backendInternals';

export interface WasmFastKernelOptions {
  /** tfjs-backend-wasm's version as the kernels see it; default: the installed package's (tests pass others). */
  wasmVersion?: string;
}

let installed: (() => void) | undefined;
let activeNative: NativeKernels | undefined;

/** Whether the overrides are currently registered. */
export function wasmFastKernelsActive(): boolean {
  return installed !== undefined;
}

/** The native kernels the overrides use now (undefined: the pure wasm paths, or no overrides). */
export function wasmNativeKernels(): NativeKernels | undefined {
  return activeNative;
}

/**
 * The native kernels in use on the wasm backend, when they have every function named, with the
 * backend's internals to hand them heap offsets; undefined elsewhere (the caller's tfjs path).
 */
export function nativeOnWasm<K extends keyof NativeKernels>(...names: K[]): { nk: NativeKernels & Required<Pick<NativeKernels, K>>; be: WasmInternals } | undefined {
  const nk = tf.getBackend() === 'wasm' ? activeNative : undefined;
  const internalsOf = nk && names.every((n) => nk[n] !== undefined) ? wasmInternals() : undefined;
  return nk && internalsOf ? { nk: nk as NativeKernels & Required<Pick<NativeKernels, K>>, be: internalsOf(tf.backend()) } : undefined;
}

/**
 * Registers the wasm fast kernels in place of tfjs's own; with `native`, products, Exp, GELU and the
 * norms go to the native kernels. Call after `tf.setBackend('wasm')` resolved. Returns a function
 * that restores the originals. A second call with the same native kernels (or none again) returns
 * the same restore function and changes nothing; with different ones it restores the originals and
 * registers anew, so the kernels in use are always the ones last asked for (what the backend report
 * says). On a tfjs-backend-wasm version that wasm/backendInternals.ts does not know it registers
 * nothing (and takes down what an earlier call registered); unknownWasmVersion() says why.
 */
export function registerWasmFastKernels(native?: NativeKernels, opts: WasmFastKernelOptions = {}): () => void {
  const internals = wasmInternals(opts.wasmVersion);
  if (installed) {
    if (internals && native === activeNative) return installed;
    installed();
  }
  if (!internals) return () => {};

  const originals = new Map<string, tf.KernelConfig>();
  const deps: WasmKernelDeps = {
    internals,
    native,
    original: (name) => {
      const k = originals.get(name) ?? tf.getKernel(name, 'wasm');
      if (!k) throw new Error('registerWasmFastKernels: the wasm backend kernels are not registered (import @tensorflow/tfjs-backend-wasm first)');
      originals.set(name, k);
      return k;
    },
  };
  // Every group is built (and every original looked up) before anything is registered.
  const groups: WasmKernelGroup[] = [productKernels(deps), elementwiseKernels(deps), normKernels(deps), movementKernels(deps), sliceKernels(deps)];
  const overrides = groups.flatMap((g) => g.overrides.map(([name, kernelFunc]) => ({ original: deps.original(name), kernelFunc })));
  const added = groups.flatMap((g) => g.added.map(([kernelName, kernelFunc]): tf.KernelConfig => ({ kernelName, backendName: 'wasm', kernelFunc })));

  for (const k of added) {
    if (tf.getKernel(k.kernelName, 'wasm')) tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel(k);
  }
  for (const { original, kernelFunc } of overrides) {
    tf.unregisterKernel(original.kernelName, 'wasm');
    tf.registerKernel({ kernelName: original.kernelName, backendName: 'wasm', kernelFunc });
  }
  activeNative = native;

  installed = () => {
    for (const g of groups) g.dispose?.();
    for (const { original } of overrides) {
      tf.unregisterKernel(original.kernelName, 'wasm');
      tf.registerKernel(original);
    }
    for (const k of added) tf.unregisterKernel(k.kernelName, 'wasm');
    installed = undefined;
    activeNative = undefined;
  };
  return installed;
}
