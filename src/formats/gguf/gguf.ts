// GGUF, llama.cpp's model file (ggml's docs/gguf.md): a little-endian header, typed key/value
// metadata, tensor descriptions, then the tensor data, each tensor aligned. Version 3 is written.
// Pure: values in, byte chunks out (and back, for checks). Only the float types LoRA Lab writes
// (F32, F16, BF16) are encoded; quantised types are llama.cpp's own business (llama-quantize).
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from '../dtype';
import { FormatError } from '../errors';

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml_type ids of the float types written here. */
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30 } as const;
export type GgufTensorType = keyof typeof GGML_TYPE;

/** gguf_type ids of metadata values. */
const VT = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
type ScalarType = Exclude<keyof typeof VT, 'array' | 'string' | 'bool'>;

export type GgufValue =
  | { type: 'string'; value: string }
  | { type: 'bool'; value: boolean }
  | { type: ScalarType; value: number }
  | { type: 'array'; itemType: 'string'; value: string[] }
  | { type: 'array'; itemType: ScalarType; value: ArrayLike<number> };

export const gguf = {
  str: (value: string): GgufValue => ({ type: 'string', value }),
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  strings: (value: string[]): GgufValue => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'f32', value }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'i32', value }),
};

export interface GgufTensor {
  name: string;
  type: GgufTensorType;
  /** Row-major shape as PyTorch/numpy write it ([out, in] for a weight); GGUF stores it reversed (ne[0] fastest). */
  shape: number[];
  /** The values, encoded to `type` when serialised. */
  data: Float32Array;
}

export interface GgufFile {
  metadata: Map<string, GgufValue>;
  tensors: GgufTensor[];
}

const SCALAR_SIZE: Record<ScalarType, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 };

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number) {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number) {
    this.room(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number) {
    this.room(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  scalar(t: ScalarType, v: number) {
    this.room(8);
    const o = this.length;
    const d = this.view;
    switch (t) {
      case 'u8': d.setUint8(o, v); break;
      case 'i8': d.setInt8(o, v); break;
      case 'u16': d.setUint16(o, v, true); break;
      case 'i16': d.setInt16(o, v, true); break;
      case 'u32': d.setUint32(o, v, true); break;
      case 'i32': d.setInt32(o, v, true); break;
      case 'f32': d.setFloat32(o, v, true); break;
      case 'u64': d.setBigUint64(o, BigInt(v), true); break;
      case 'i64': d.setBigInt64(o, BigInt(v), true); break;
      case 'f64': d.setFloat64(o, v, true); break;
    }
    this.length += SCALAR_SIZE[t];
  }
  string(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array) {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad(align: number) {
    const n = (align - (this.length % align)) % align;
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function checkScalar(key: string, t: ScalarType, v: number) {
  const ok = Number.isFinite(v) && (t === 'f32' || t === 'f64' || (Number.isInteger(v) && (t.startsWith('i') || v >= 0)));
  if (!ok) throw new FormatError('invalid-tensor', `GGUF metadata "${key}": ${v} is not a valid ${t}`);
}

/** A tensor's bytes in its GGUF type (little-endian). */
export function encodeTensorData(t: GgufTensor): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw new FormatError('invalid-tensor', `GGUF tensor "${t.name}": shape [${t.shape.join(', ')}] holds ${n} values, got ${t.data.length}`, { tensor: t.name });
  switch (t.type) {
    case 'F32':
      return new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
    case 'F16': {
      const b = encodeF16(t.data);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    }
    case 'BF16': {
      const b = encodeBf16(t.data);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    }
  }
}

/** The values a reader gets back from `encodeTensorData` (F16/BF16 rounding included). */
export function decodeTensorData(bytes: Uint8Array, type: GgufTensorType): Float32Array {
  const copy = new Uint8Array(bytes); // a copy at offset 0 (Buffer.slice would be a view)
  if (type === 'F32') return new Float32Array(copy.buffer, 0, copy.length / 4);
  const bits = new Uint16Array(copy.buffer, 0, copy.length / 2);
  return type === 'F16' ? decodeF16(bits) : decodeBf16(bits);
}

/**
 * Serialise to GGUF v3: the header (metadata and tensor infos, padded to the alignment) and each
 * tensor's bytes (padded), as chunks to write in order, so a large model never needs one buffer.
 */
export function serializeGguf(file: GgufFile): Uint8Array[] {
  const align = file.metadata.get('general.alignment')?.value ?? GGUF_DEFAULT_ALIGNMENT;
  if (typeof align !== 'number' || !Number.isInteger(align) || align <= 0 || align % 8 !== 0) {
    throw new FormatError('invalid-tensor', `GGUF general.alignment must be a positive multiple of 8, got ${String(align)}`);
  }
  const seen = new Set<string>();
  for (const t of file.tensors) {
    if (seen.has(t.name)) throw new FormatError('invalid-tensor', `GGUF tensor "${t.name}" appears twice`, { tensor: t.name });
    seen.add(t.name);
    if (new TextEncoder().encode(t.name).length >= 64) throw new FormatError('invalid-tensor', `GGUF tensor name "${t.name}" is longer than ggml's 63 bytes`, { tensor: t.name });
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new FormatError('invalid-shape', `GGUF tensor "${t.name}": shape [${t.shape.join(', ')}] must have 1 to 4 positive dimensions`, { tensor: t.name });
    }
  }
  const w = new ByteWriter();
  w.u32(MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(file.tensors.length);
  w.u64(file.metadata.size);
  for (const [key, v] of file.metadata) {
    w.string(key);
    if (v.type === 'string') {
      w.u32(VT.string);
      w.string(v.value);
    } else if (v.type === 'bool') {
      w.u32(VT.bool);
      w.scalar('u8', v.value ? 1 : 0);
    } else if (v.type === 'array') {
      w.u32(VT.array);
      w.u32(VT[v.itemType]);
      w.u64(v.value.length);
      if (v.itemType === 'string') for (const s of v.value as string[]) w.string(s);
      else {
        const it = v.itemType;
        for (let i = 0; i < v.value.length; i++) {
          const x = (v.value as ArrayLike<number>)[i];
          checkScalar(key, it, x);
          w.scalar(it, x);
        }
      }
    } else {
      checkScalar(key, v.type, v.value);
      w.u32(VT[v.type]);
      w.scalar(v.type, v.value);
    }
  }
  const data: Uint8Array[] = [];
  let offset = 0;
  for (const t of file.tensors) {
    const bytes = encodeTensorData(t);
    w.string(t.name);
    w.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) w.u64(t.shape[i]);
    w.u32(GGML_TYPE[t.type]);
    w.u64(offset);
    const padded = Math.ceil(bytes.length / align) * align;
    data.push(bytes);
    if (padded > bytes.length) data.push(new Uint8Array(padded - bytes.length));
    offset += padded;
  }
  w.pad(align);
  return [w.result(), ...data];
}

export interface ParsedGgufTensor {
  name: string;
  type: GgufTensorType;
  /** Row-major (numpy) order, i.e. GGUF's ne reversed. */
  shape: number[];
  values: Float32Array;
}

export interface ParsedGguf {
  version: number;
  metadata: Map<string, string | number | boolean | string[] | number[]>;
  tensors: Map<string, ParsedGgufTensor>;
}

/** Read a GGUF file with float tensors (F32/F16/BF16): for checking what was written. */
export function parseGguf(bytes: Uint8Array, source = 'GGUF file'): ParsedGguf {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const fail = (msg: string): never => {
    throw new FormatError('invalid-header', `${msg} (at byte ${at})`, { source });
  };
  const need = (n: number) => {
    if (at + n > bytes.length) fail(`the file ends early: ${n} more bytes expected`);
  };
  const u32 = () => (need(4), (at += 4), view.getUint32(at - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(at, true);
    at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a length of ${v} is too large`);
    return Number(v);
  };
  const str = () => {
    const n = u64();
    need(n);
    const s = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at, at + n));
    at += n;
    return s;
  };
  const scalar = (t: number): number | boolean | string => {
    switch (t) {
      case VT.u8: need(1); return view.getUint8(at++);
      case VT.i8: need(1); return view.getInt8(at++);
      case VT.u16: need(2); at += 2; return view.getUint16(at - 2, true);
      case VT.i16: need(2); at += 2; return view.getInt16(at - 2, true);
      case VT.u32: return u32();
      case VT.i32: need(4); at += 4; return view.getInt32(at - 4, true);
      case VT.f32: need(4); at += 4; return view.getFloat32(at - 4, true);
      case VT.bool: need(1); return view.getUint8(at++) !== 0;
      case VT.string: return str();
      case VT.u64: return u64();
      case VT.i64: need(8); at += 8; return Number(view.getBigInt64(at - 8, true));
      case VT.f64: need(8); at += 8; return view.getFloat64(at - 8, true);
      default: return fail(`unknown metadata value type ${t}`);
    }
  };
  if (bytes.length < 4 || view.getUint32(0, true) !== MAGIC) fail('not a GGUF file (no "GGUF" magic)');
  at = 4;
  const version = u32();
  if (version < 2 || version > 3) fail(`GGUF version ${version} is not supported (2 or 3)`);
  const nTensors = u64();
  const nKv = u64();
  const metadata: ParsedGguf['metadata'] = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === VT.array) {
      const it = u32();
      const n = u64();
      const arr: (string | number)[] = [];
      for (let j = 0; j < n; j++) arr.push(scalar(it) as string | number);
      metadata.set(key, arr as string[] | number[]);
    } else metadata.set(key, scalar(t));
  }
  const infos: { name: string; shape: number[]; type: GgufTensorType; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    if (nd < 1 || nd > 4) fail(`tensor "${name}" has ${nd} dimensions`);
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(u64());
    const tid = u32();
    const type = (Object.keys(GGML_TYPE) as GgufTensorType[]).find((k) => GGML_TYPE[k] === tid);
    if (!type) fail(`tensor "${name}" has ggml type ${tid}; only F32, F16 and BF16 are read here`);
    infos.push({ name, shape: ne.reverse(), type: type!, offset: u64() });
  }
  const alignment = metadata.get('general.alignment');
  const align = typeof alignment === 'number' ? alignment : GGUF_DEFAULT_ALIGNMENT;
  const dataStart = Math.ceil(at / align) * align;
  const tensors = new Map<string, ParsedGgufTensor>();
  for (const info of infos) {
    const n = info.shape.reduce((a, b) => a * b, 1);
    const size = n * (info.type === 'F32' ? 4 : 2);
    const begin = dataStart + info.offset;
    if (begin + size > bytes.length) {
      at = begin;
      fail(`tensor "${info.name}" runs past the end of the file`);
    }
    tensors.set(info.name, { name: info.name, type: info.type, shape: info.shape, values: decodeTensorData(bytes.subarray(begin, begin + size), info.type) });
  }
  return { version, metadata, tensors };
}
