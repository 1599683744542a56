// Loads the optional native kernels (native/src/*.c → dist/native/lora_lab_native.node, built by
// native/build.mjs from `npm run build` where a C compiler is present). Absent or unloadable kernels are not an
// error: the engine runs on the pure wasm kernels and the backend report says why.
//
// LORA_LAB_NATIVE=0 in the environment turns them off (to compare, or to rule them out).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import type { NativeKernels } from '../engine/kernels/nativeKernels';

export const NATIVE_FILE = 'lora_lab_native.node';

/** Where the addon may be: dist/native beside the bundle (extension, CLI), or the repository's dist/native (tsx). */
export function nativeCandidates(): string[] {
  return [path.join(__dirname, 'native', NATIVE_FILE), path.resolve(__dirname, '..', '..', 'dist', 'native', NATIVE_FILE)];
}

export interface NativeLoad {
  kernels?: NativeKernels;
  /** Why there are none (for the backend report's notes). */
  note?: string;
}

let cached: NativeLoad | undefined;

export function loadNativeKernels(env: NodeJS.ProcessEnv = process.env): NativeLoad {
  if (env.LORA_LAB_NATIVE === '0') return { note: 'native kernels: turned off (LORA_LAB_NATIVE=0)' };
  if (cached) return cached;
  const file = nativeCandidates().find((p) => fs.existsSync(p));
  if (!file) {
    cached = { note: `native kernels: not built for this platform (${process.platform}-${process.arch}; \`npm run build\` builds them where a C compiler is present)` };
    return cached;
  }
  try {
    const mod = createRequire(__filename)(file) as NativeKernels;
    if (typeof mod.gemm !== 'function' || typeof mod.isa !== 'function') throw new Error('it does not export gemm and isa');
    cached = { kernels: mod };
  } catch (e) {
    cached = { note: `native kernels: ${file} failed to load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
  return cached;
}
