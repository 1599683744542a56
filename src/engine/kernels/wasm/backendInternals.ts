// The one module that reads tfjs-backend-wasm's internals: its BackendWasm exports no types for them,
// and they are private API (the tensor map, the id counter, the emscripten module's heap and C entry
// points) that any release may change. The fast kernels reach them only through WasmInternals below,
// and only on a version listed in KNOWN: elsewhere wasmInternals() answers undefined,
// unknownWasmVersion() says why, and tfjs's plain kernels stay in place.
import * as tf from '@tensorflow/tfjs-core';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';

/** The installed @tensorflow/tfjs-backend-wasm's version (its own export). */
export const TFJS_WASM_VERSION: string = version_wasm;

/** The versions whose internals this module was written against and is tested on. */
const KNOWN = { pattern: /^4\.22\.\d+$/, label: '4.22.x' };

/** What the fast kernels do with one wasm backend. Offsets are in floats unless named bytes. */
export interface WasmInternals {
  /** A new tensor of `shape` in the heap; `values`, where given, copied in. */
  makeOutput(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo;
  /** Drops one reference to the data (freed at none). */
  disposeData(dataId: object): void;
  /** x again on the same data, one reference more (tensor data never changes in place in tfjs). */
  share(x: tf.TensorInfo): tf.TensorInfo;
  /** Whether the backend still holds this data. */
  holds(dataId: object): boolean;
  /** A tensor's place in the heap. */
  offset(t: tf.TensorInfo): number;
  /** The end of the last of these tensors in the heap (each one's offset plus its own size). */
  heapEnd(ts: tf.TensorInfo[]): number;
  /**
   * The heap as floats, covering at least `end` elements. Call it after makeOutput: a new tensor may
   * grow the memory, and so replace the buffer.
   */
  heap(end: number): Float32Array;
  /** A tensor's place in the heap, in bytes. */
  byteOffset(t: tf.TensorInfo): number;
  /** The backend's own id of a tensor, for matMul. */
  tensorId(t: tf.TensorInfo): number;
  /** A temporary id for `size` floats at `byteOffset` (inside another tensor), for matMul; free it with dropView. */
  view(byteOffset: number, size: number): number;
  dropView(id: number): void;
  /**
   * tfjs-backend-wasm's own product C = A·B of [m, k]·[k, n] on ids from tensorId or view: XNNPACK,
   * which that backend uses only for such untransposed 2-D operands.
   */
  matMul(m: number, k: number, n: number): (aId: number, bId: number, outId: number) => void;
}

/** Reads a wasm backend (the `backend` a kernel is given, or tf.backend()) as WasmInternals. */
export type WasmInternalsOf = (backend: unknown) => WasmInternals;

/** Why the fast kernels do not use this tfjs-backend-wasm (default: the installed one); undefined where they do. */
export function unknownWasmVersion(version: string = TFJS_WASM_VERSION): string | undefined {
  if (KNOWN.pattern.test(version)) return undefined;
  return `tfjs-backend-wasm ${version} is not one LoRA Lab's fast kernels know (${KNOWN.label}); using its plain kernels`;
}

/** The reader of wasm backends' internals; undefined on a version that unknownWasmVersion rejects. */
export function wasmInternals(version: string = TFJS_WASM_VERSION): WasmInternalsOf | undefined {
  return unknownWasmVersion(version) === undefined ? internalsOf : undefined;
}

// ---------------------------------------------------------------------------------------------
// tfjs-backend-wasm 4.22's BackendWasm and its emscripten module, as far as used here.

interface TensorData {
  id: number;
  memoryOffset: number;
}

interface EmscriptenModule {
  cwrap(name: string, ret: null | string, args: string[]): (...args: unknown[]) => unknown;
  tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  HEAPF32: Float32Array;
  /** The memory itself: where HEAPF32 is stale (the threaded build's shared memory, grown by another thread). */
  wasmMemory?: { buffer: ArrayBufferLike };
  asm?: { memory?: { buffer: ArrayBufferLike } };
}

interface BackendWasm {
  wasm: EmscriptenModule;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): TensorData; has(dataId: object): boolean };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
}

type RawMatMul = (
  aId: number, aShape: Uint8Array, aRank: number,
  bId: number, bShape: Uint8Array, bRank: number,
  transposeA: number, transposeB: number, outId: number,
) => void;

// The C entry point, bound once per emscripten module: a backend replaced by another build (the
// threaded one of src/engine/wasmThreads.ts) gets its own.
const rawMatMuls = new WeakMap<object, RawMatMul>();

function rawMatMul(wasm: EmscriptenModule): RawMatMul {
  let raw = rawMatMuls.get(wasm);
  if (!raw) {
    raw = wasm.cwrap(tf.BatchMatMul, null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']) as RawMatMul;
    rawMatMuls.set(wasm, raw);
  }
  return raw;
}

/** The shape argument of the C entry point: int32 [1, rows, cols] as bytes. */
function shape3(rows: number, cols: number): Uint8Array {
  return new Uint8Array(new Int32Array([1, rows, cols]).buffer);
}

class Internals implements WasmInternals {
  constructor(private readonly be: BackendWasm) {}

  makeOutput(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo {
    return this.be.makeOutput(shape, dtype, undefined, values);
  }

  disposeData(dataId: object): void {
    this.be.disposeData(dataId);
  }

  share(x: tf.TensorInfo): tf.TensorInfo {
    this.be.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }

  holds(dataId: object): boolean {
    return this.be.dataIdMap.has(dataId);
  }

  offset(t: tf.TensorInfo): number {
    // memoryOffset is unsigned (a 4 GiB memory has offsets past 2^31), so no signed shift here.
    return this.be.dataIdMap.get(t.dataId).memoryOffset / 4;
  }

  heapEnd(ts: tf.TensorInfo[]): number {
    let end = 0;
    for (const t of ts) end = Math.max(end, this.offset(t) + tf.util.sizeFromShape(t.shape));
    return end;
  }

  heap(end: number): Float32Array {
    // Emscripten refreshes HEAPF32 when the main thread grows the memory; a stale view is re-read
    // from the memory's buffer, and a view that still falls short fails loudly rather than let
    // typed-array writes past its end be silently dropped.
    let heap = this.be.wasm.HEAPF32;
    if (heap.length < end) {
      const w = this.be.wasm;
      const buf = w.wasmMemory?.buffer ?? w.asm?.memory?.buffer;
      if (buf) heap = new Float32Array(buf);
    }
    if (heap.length < end) throw new Error(`wasm fast kernels: the heap view (${heap.length} floats) does not reach element ${end}`);
    return heap;
  }

  byteOffset(t: tf.TensorInfo): number {
    return this.be.dataIdMap.get(t.dataId).memoryOffset;
  }

  tensorId(t: tf.TensorInfo): number {
    return this.be.dataIdMap.get(t.dataId).id;
  }

  view(byteOffset: number, size: number): number {
    const id = this.be.dataIdNextNumber++;
    this.be.wasm.tfjs.registerTensor(id, size, byteOffset);
    return id;
  }

  dropView(id: number): void {
    this.be.wasm.tfjs.disposeData(id);
  }

  matMul(m: number, k: number, n: number): (aId: number, bId: number, outId: number) => void {
    const raw = rawMatMul(this.be.wasm);
    const aShape = shape3(m, k);
    const bShape = shape3(k, n);
    return (aId, bId, outId) => raw(aId, aShape, 3, bId, bShape, 3, 0, 0, outId);
  }
}

const readers = new WeakMap<object, Internals>();

const internalsOf: WasmInternalsOf = (backend) => {
  const be = backend as BackendWasm;
  let r = readers.get(be);
  if (!r) {
    r = new Internals(be);
    readers.set(be, r);
  }
  return r;
};
