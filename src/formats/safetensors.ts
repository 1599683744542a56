// A strict safetensors reader and writer over bytes (no I/O; src/io/safetensorsFile.ts does files).
//
// Layout (https://github.com/huggingface/safetensors#format):
//   [8 bytes: u64 little-endian N][N bytes: UTF-8 JSON header][data section]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
// data section) plus an optional "__metadata__" string -> string map.
//
// Validation follows the reference Rust crate (safetensors/src/tensor.rs, `SafeTensors::read_metadata`
// and `Metadata::validate`): header length sane and inside the file, UTF-8, a JSON object, every dtype
// known, shapes of non-negative integers whose byte size does not overflow, each tensor's span equal to
// nelem * itemsize, spans contiguous and non-overlapping, and together covering the data section
// exactly (no trailing bytes: polyglot files are rejected). Like the Rust reader we accept whitespace
// before and after the JSON object; our writer never emits leading whitespace.

import { showValue } from './jsonText';
import { DTYPES, DTYPE_SIZE, decodeBf16, decodeF16, decodeF8, isDtype, type Dtype } from './dtype';
import { FormatError } from './errors';

export type { Dtype } from './dtype';

/** Where one tensor lives: `begin`/`end` are byte offsets into the data section (after the header). */
export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes (without the 8-byte prefix). */
  headerLength: number;
  /** Offset of the data section from the start of the file: 8 + N. */
  dataOffset: number;
  /** Every tensor, in data-section order. */
  tensors: TensorEntry[];
  /** The `__metadata__` map ({} when absent). */
  metadata: Record<string, string>;
}

export type SafetensorsTypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

export interface SafetensorsFile {
  header: SafetensorsHeader;
  /** Tensor names in data-section order. */
  names(): string[];
  has(name: string): boolean;
  /** Throws FormatError('tensor-not-found') for an unknown name. */
  entry(name: string): TensorEntry;
  /** The tensor's bytes: a view into the input, not a copy. */
  raw(name: string): Uint8Array;
  /** The tensor as float32 (a fresh array), converting F16, BF16, F64, F8, BOOL and integer dtypes. */
  toFloat32(name: string): Float32Array;
  /**
   * The tensor in its natural typed array: F16/BF16 as Uint16Array bits, F8 and BOOL as Uint8Array,
   * I64/U64 as BigInt arrays. A zero-copy view when the data is aligned, otherwise an aligned copy;
   * treat it as read-only.
   */
  typed(name: string): SafetensorsTypedArray;
}

/** Same limit as the Rust crate (MAX_HEADER_SIZE): a header beyond 100 MB is an attack or garbage. */
export const MAX_HEADER_SIZE = 100_000_000;

const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads N from the first 8 bytes and checks it against the file size. */
export function headerLengthOf(first8: Uint8Array, fileSize: number, source?: string): number {
  if (fileSize < 8 || first8.length < 8) {
    throw new FormatError(
      'header-too-small',
      `not a safetensors file: ${Math.min(fileSize, first8.length)} bytes, but the format starts with an 8-byte header length`,
      { source },
    );
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new FormatError(
      'header-too-large',
      `header length prefix is ${n} bytes, more than the ${MAX_HEADER_SIZE}-byte limit (is this really a safetensors file?)`,
      { source },
    );
  }
  const headerLength = Number(n);
  if (8 + headerLength > fileSize) {
    throw new FormatError(
      'invalid-header-length',
      `header length prefix says ${headerLength} bytes, but the file has only ${fileSize - 8} bytes after the prefix (truncated file?)`,
      { source },
    );
  }
  return headerLength;
}

/**
 * Parses and validates the header. `headerBytes` starts at the beginning of the file and holds at
 * least 8 + N bytes (the whole file is fine); `fileSize` is the full file's size, which is what the
 * offsets are checked against, so the data section need not be in memory.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, source?: string): SafetensorsHeader {
  const headerLength = headerLengthOf(headerBytes.subarray(0, 8), fileSize, source);
  if (headerBytes.length < 8 + headerLength) {
    throw new FormatError(
      'invalid-header-length',
      `need the first ${8 + headerLength} bytes to read the header, got ${headerBytes.length}`,
      { source },
    );
  }
  let text: string;
  try {
    // fatal: reject invalid UTF-8 like Rust's from_utf8; ignoreBOM: keep a BOM so JSON.parse rejects it as serde_json does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes.subarray(8, 8 + headerLength));
  } catch (cause) {
    throw new FormatError('invalid-header', 'header is not valid UTF-8', { source, cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    const preview = text.length > 60 ? `${text.slice(0, 60)}…` : text;
    throw new FormatError('invalid-header-json', `header is not valid JSON (${(cause as Error).message}); it starts ${JSON.stringify(preview)}`, {
      source,
      cause,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new FormatError('invalid-header', `header must be a JSON object, got ${jsonKind(json)}`, { source });
  }

  const metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      readMetadata(info, metadata, source);
    } else {
      tensors.push(readTensorInfo(name, info, source));
    }
  }

  validateLayout(tensors, fileSize - 8 - headerLength, source);
  return { headerLength, dataOffset: 8 + headerLength, tensors, metadata };
}

function readMetadata(info: unknown, out: Record<string, string>, source: string | undefined): void {
  if (info === null) return; // Rust reads it as Option<HashMap>: null means none
  if (typeof info !== 'object' || Array.isArray(info)) {
    throw new FormatError('invalid-metadata', `"${METADATA_KEY}" must be an object of strings, got ${jsonKind(info)}`, { source });
  }
  for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new FormatError('invalid-metadata', `"${METADATA_KEY}.${k}" must be a string, got ${jsonKind(v)}`, { source });
    }
    // defineProperty: a key like "__proto__" stays a plain entry instead of changing the prototype.
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
}

function readTensorInfo(name: string, info: unknown, source: string | undefined): TensorEntry {
  const fail = (reason: ConstructorParameters<typeof FormatError>[0], msg: string): never => {
    throw new FormatError(reason, msg, { source, tensor: name });
  };
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    return fail('invalid-header-json', `expected an object {dtype, shape, data_offsets}, got ${jsonKind(info)}`);
  }
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== 'string') return fail('invalid-header-json', `"dtype" must be a string, got ${jsonKind(dtype)}`);
  if (!isDtype(dtype)) return fail('unknown-dtype', `unknown dtype "${dtype}" (known: ${DTYPES.join(', ')})`);
  if (!Array.isArray(shape)) return fail('invalid-header-json', `"shape" must be an array of integers, got ${jsonKind(shape)}`);
  for (const [i, d] of shape.entries()) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      return fail('invalid-shape', `shape[${i}] must be a non-negative integer, got ${showValue(d)}`);
    }
    // Integers beyond 2^53 lost precision in JSON.parse; the real value may not even fit a u64.
    if (!Number.isSafeInteger(d)) return fail('validation-overflow', `shape[${i}] = ${d} is too large to address`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    return fail('invalid-header-json', `"data_offsets" must be [begin, end], got ${offsets === undefined ? 'nothing' : showValue(offsets)}`);
  }
  const [begin, end] = offsets as unknown[];
  for (const o of [begin, end]) {
    if (typeof o !== 'number' || !Number.isInteger(o) || o < 0) {
      return fail('invalid-header-json', `"data_offsets" must hold non-negative integers, got ${showValue(offsets)}`);
    }
    if (!Number.isSafeInteger(o)) return fail('validation-overflow', `data offset ${o} is too large to address`);
  }
  if ((begin as number) > (end as number)) {
    return fail('invalid-offset', `data_offsets [${begin}, ${end}] end before they begin`);
  }
  return { name, dtype, shape: shape as number[], begin: begin as number, end: end as number };
}

/** Number of elements of a shape ([] is a scalar: 1). Throws on overflow beyond 2^53. */
export function elementCount(shape: readonly number[], what?: { source?: string; tensor?: string }): number {
  let n = 1n;
  for (const d of shape) n *= BigInt(d);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FormatError('validation-overflow', `shape [${shape.join(', ')}] has ${n} elements, too many to address`, what);
  }
  return Number(n);
}

function validateLayout(tensors: TensorEntry[], dataLength: number, source: string | undefined): void {
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let cursor = 0;
  let previous: TensorEntry | undefined;
  for (const t of tensors) {
    if (t.begin !== cursor) {
      const detail =
        t.begin < cursor
          ? `overlaps ${previous ? `"${previous.name}" (which ends at ${cursor})` : 'another tensor'}`
          : `leaves a gap of ${t.begin - cursor} bytes after ${previous ? `"${previous.name}"` : 'the start of the data section'}`;
      throw new FormatError('invalid-offset', `data_offsets [${t.begin}, ${t.end}] ${detail}; tensors must be contiguous`, {
        source,
        tensor: t.name,
      });
    }
    const nelem = BigInt(elementCount(t.shape, { source, tensor: t.name }));
    const nbytes = nelem * BigInt(DTYPE_SIZE[t.dtype]);
    if (nbytes > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError('validation-overflow', `${t.dtype} [${t.shape.join(', ')}] needs ${nbytes} bytes, too many to address`, {
        source,
        tensor: t.name,
      });
    }
    if (BigInt(t.end - t.begin) !== nbytes) {
      throw new FormatError(
        'tensor-invalid-info',
        `${t.dtype} [${t.shape.join(', ')}] needs ${nbytes} bytes, but data_offsets [${t.begin}, ${t.end}] give ${t.end - t.begin}`,
        { source, tensor: t.name },
      );
    }
    cursor = t.end;
    previous = t;
  }
  if (cursor !== dataLength) {
    const detail =
      cursor > dataLength
        ? `the tensors need ${cursor} bytes of data but the file has only ${dataLength} (truncated by ${cursor - dataLength} bytes)`
        : `the tensors cover ${cursor} bytes but the data section has ${dataLength}: ${dataLength - cursor} unexplained trailing bytes`;
    throw new FormatError('incomplete-buffer', detail, { source });
  }
}

/** The entry of `name` in a parsed header; FormatError('tensor-not-found'), listing the tensors there are, otherwise. */
export function findTensorEntry(header: SafetensorsHeader, name: string, source?: string): TensorEntry {
  const t = header.tensors.find((e) => e.name === name);
  if (!t) throw tensorNotFound(header, name, source);
  return t;
}

function tensorNotFound(header: SafetensorsHeader, name: string, source: string | undefined): FormatError {
  const known = header.tensors.map((t) => t.name);
  const list = known.length > 8 ? `${known.slice(0, 8).join(', ')}, … (${known.length} in all)` : known.join(', ') || 'none';
  return new FormatError('tensor-not-found', `no such tensor (tensors: ${list})`, { source, tensor: name });
}

/** Parses a whole file held in memory. */
export function parseSafetensors(bytes: Uint8Array, source?: string): SafetensorsFile {
  const header = parseHeader(bytes, bytes.length, source);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const entry = (name: string): TensorEntry => {
    const t = byName.get(name);
    if (!t) throw tensorNotFound(header, name, source);
    return t;
  };
  const raw = (name: string): Uint8Array => {
    const t = entry(name);
    return bytes.subarray(header.dataOffset + t.begin, header.dataOffset + t.end);
  };
  const typed = (name: string): SafetensorsTypedArray => typedView(raw(name), entry(name).dtype);
  return {
    header,
    names: () => header.tensors.map((t) => t.name),
    has: (name) => byName.has(name),
    entry,
    raw,
    typed,
    toFloat32: (name) => toFloat32(raw(name), entry(name).dtype),
  };
}

type TypedCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): SafetensorsTypedArray; BYTES_PER_ELEMENT: number };

const CTOR: Record<Dtype, TypedCtor> = {
  BOOL: Uint8Array,
  U8: Uint8Array,
  I8: Int8Array,
  F8_E5M2: Uint8Array,
  F8_E4M3: Uint8Array,
  I16: Int16Array,
  U16: Uint16Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I32: Int32Array,
  U32: Uint32Array,
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  U64: BigUint64Array,
};

/** Views little-endian tensor bytes as the dtype's typed array (copying only when unaligned or on a big-endian host). */
export function typedView(bytes: Uint8Array, dtype: Dtype): SafetensorsTypedArray {
  const size = DTYPE_SIZE[dtype];
  const n = bytes.length / size;
  if (size > 1 && (!LITTLE_ENDIAN_HOST || bytes.byteOffset % size !== 0)) {
    // A fresh buffer starts at offset 0, so it is aligned. Not `bytes.slice()`: on a Node Buffer that
    // is a view of the same memory, which left the typed array reading from the wrong bytes.
    const copy = Uint8Array.prototype.slice.call(bytes);
    if (!LITTLE_ENDIAN_HOST) swapBytes(copy, size);
    return new CTOR[dtype](copy.buffer, 0, n);
  }
  return new CTOR[dtype](bytes.buffer, bytes.byteOffset, n);
}

/** Converts little-endian tensor bytes of any dtype to a fresh Float32Array. */
export function toFloat32(bytes: Uint8Array, dtype: Dtype): Float32Array {
  const v = typedView(bytes, dtype);
  switch (dtype) {
    case 'F16':
      return decodeF16(v as Uint16Array);
    case 'BF16':
      return decodeBf16(v as Uint16Array);
    case 'F8_E4M3':
    case 'F8_E5M2':
      return decodeF8(v as Uint8Array, dtype);
    case 'BOOL':
      return Float32Array.from(v as Uint8Array, (b) => (b ? 1 : 0));
    case 'I64':
    case 'U64': {
      const big = v as BigInt64Array | BigUint64Array;
      const out = new Float32Array(big.length);
      for (let i = 0; i < big.length; i++) out[i] = Number(big[i]);
      return out;
    }
    default:
      return new Float32Array(v as Exclude<SafetensorsTypedArray, BigInt64Array | BigUint64Array>);
  }
}

function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo];
      b[lo] = b[hi];
      b[hi] = t;
    }
  }
}

export interface TensorToWrite {
  dtype: Dtype;
  shape: number[];
  /** Elements in the dtype's layout: a matching typed array (F16/BF16 as Uint16Array bits), or raw little-endian bytes as Uint8Array. */
  data: ArrayBufferView;
}

// Which typed arrays may carry which dtype. Uint8Array and DataView are taken as raw bytes for any dtype.
const NATURAL: [new (...a: never[]) => ArrayBufferView, Dtype[]][] = [
  [Float32Array, ['F32']],
  [Float64Array, ['F64']],
  [Int32Array, ['I32']],
  [Uint32Array, ['U32']],
  [Int16Array, ['I16']],
  [Uint16Array, ['U16', 'F16', 'BF16']],
  [Int8Array, ['I8']],
  [BigInt64Array, ['I64']],
  [BigUint64Array, ['U64']],
];

/**
 * Writes a safetensors file: tensors sorted by name and laid out in that order, `__metadata__`
 * first (omitted when empty), the header padded with spaces so the data section starts 8-byte
 * aligned, all numbers little-endian.
 */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort();
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const meta: string[] = [];
    for (const k of Object.keys(metadata).sort()) {
      const v = metadata[k];
      if (typeof v !== 'string') {
        throw new FormatError('invalid-metadata', `metadata "${k}" must be a string, got ${jsonKind(v)}`);
      }
      meta.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(',')}}`);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new FormatError('invalid-tensor', `"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const { dtype, shape, data } = tensors[name];
    const what = { tensor: name };
    if (!isDtype(dtype)) throw new FormatError('unknown-dtype', `unknown dtype "${String(dtype)}" (known: ${DTYPES.join(', ')})`, what);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new FormatError('invalid-shape', `shape must be non-negative integers, got ${JSON.stringify(shape)}`, what);
    }
    if (!ArrayBuffer.isView(data)) throw new FormatError('invalid-tensor', 'data must be a typed array or DataView', what);
    const natural = NATURAL.find(([ctor]) => data instanceof ctor);
    if (natural && !natural[1].includes(dtype)) {
      throw new FormatError('invalid-tensor', `${data.constructor.name} cannot hold ${dtype} data (use ${natural[1].join('/')}, or raw bytes in a Uint8Array)`, what);
    }
    const nbytes = elementCount(shape, what) * DTYPE_SIZE[dtype];
    if (data.byteLength !== nbytes) {
      throw new FormatError('invalid-tensor', `${dtype} [${shape.join(', ')}] needs ${nbytes} bytes, got ${data.byteLength}`, what);
    }
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!LITTLE_ENDIAN_HOST && natural && DTYPE_SIZE[dtype] > 1) {
      bytes = bytes.slice();
      swapBytes(bytes, DTYPE_SIZE[dtype]);
    }
    chunks.push(bytes);
    parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${offset + nbytes}]}`);
    offset += nbytes;
  }
  let headerText = `{${parts.join(',')}}`;
  const encoded = new TextEncoder().encode(headerText);
  const pad = (8 - (encoded.length % 8)) % 8;
  headerText += ' '.repeat(pad);
  const header = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + header.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v === undefined) return 'nothing';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${showValue(v)}`;
}
