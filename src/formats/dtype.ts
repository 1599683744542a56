// Element types of safetensors files and the bit-level conversions between them and float32.
// f16 and bf16 are done with bit math (plus a 64K lookup table for f16 -> f32) because the polyfilled
// Float16Array goes through a Proxy and is orders of magnitude slower on whole tensors; the tests check
// these functions against @petamoriken/float16 on every one of the 65,536 f16 bit patterns.

export type Dtype =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'F64'
  | 'I64'
  | 'U64';

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

export const DTYPES: readonly Dtype[] = Object.freeze(Object.keys(DTYPE_SIZE) as Dtype[]);

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

export function dtypeSize(dtype: Dtype): number {
  return DTYPE_SIZE[dtype];
}

// One scratch word to reinterpret float32 <-> uint32 bits.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function bitsToF32(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0];
}

// ---- f16 (IEEE 754 binary16) ----

/** float16 bits -> number (exact: every f16 is representable in f32). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** number -> float16 bits, rounding to nearest even; overflow goes to ±Infinity, NaN stays NaN (quiet). */
export function f32ToF16Bits(v: number): number {
  scratchF32[0] = v; // first round to f32, as a float32 tensor would hold it
  const x = scratchU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal in f16 (or zero): value = full * 2^(exp-150) = m * 2^-24 with m = full >> (14 - e).
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const full = mant | 0x800000;
    const shift = 14 - e;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && m & 1)) m++;
    return sign | m; // m == 0x400 is the smallest normal, which is the right answer
  }
  let bits = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && bits & 1)) bits++; // a carry into the exponent is correct (up to Inf)
  return sign | bits;
}

let f16Table: Float32Array | undefined;

/** Decode a whole f16 tensor (raw bits) to float32. */
export function decodeF16(bits: Uint16Array): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  const t = f16Table;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/** Encode float32 values as f16 bits (round to nearest even). */
export function encodeF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

// ---- bf16 (the top 16 bits of a float32) ----

export function bf16BitsToF32(b: number): number {
  return bitsToF32((b & 0xffff) << 16);
}

/** number -> bfloat16 bits, rounding to nearest even; NaN stays NaN (never rounds into Inf). */
export function f32ToBf16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // keep sign + payload, set quiet bit
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function decodeBf16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

export function encodeBf16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16Bits(values[i]);
  return out;
}

// ---- 8-bit floats (OCP FP8) ----

/** F8_E4M3 as safetensors/PyTorch mean it (E4M3FN): bias 7, no infinities, S.1111.111 is NaN, max 448. */
export function f8E4M3ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >>> 3) & 0xf;
  const mant = b & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (8 + mant) * 2 ** (exp - 10);
}

/** F8_E5M2: bias 15, IEEE-style infinities and NaN (like f16 with the low 8 mantissa bits cut). */
export function f8E5M2ToF32(b: number): number {
  return f16BitsToF32((b & 0xff) << 8);
}

let e4m3Table: Float32Array | undefined;
let e5m2Table: Float32Array | undefined;

export function decodeF8(bytes: Uint8Array, dtype: 'F8_E4M3' | 'F8_E5M2'): Float32Array {
  let t: Float32Array;
  if (dtype === 'F8_E4M3') {
    t = e4m3Table ??= Float32Array.from({ length: 256 }, (_, i) => f8E4M3ToF32(i));
  } else {
    t = e5m2Table ??= Float32Array.from({ length: 256 }, (_, i) => f8E5M2ToF32(i));
  }
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = t[bytes[i]];
  return out;
}
