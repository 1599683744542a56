import * as assert from 'node:assert/strict';
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import {
  bf16BitsToF32,
  decodeBf16,
  decodeF16,
  decodeF8,
  encodeF16,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  f8E4M3ToF32,
  f8E5M2ToF32,
} from '../../../src/formats/dtype';

// @petamoriken/float16 is the independent reference for f16.
const dv = new DataView(new ArrayBuffer(2));
const refDecode = (bits: number) => (dv.setUint16(0, bits, true), getFloat16(dv, 0, true));
const refEncode = (v: number) => (setFloat16(dv, 0, v, true), dv.getUint16(0, true));
const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

describe('dtype: f16', () => {
  it('decodes all 65,536 bit patterns like @petamoriken/float16', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const table = decodeF16(all);
    for (let h = 0; h < 65536; h++) {
      const ref = refDecode(h);
      assert.ok(same(f16BitsToF32(h), ref), `bits 0x${h.toString(16)}: ${f16BitsToF32(h)} vs ${ref}`);
      assert.ok(same(table[h], ref));
    }
  });
  it('encodes every f16 value back to its own bits (except NaN payloads)', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(v))));
      else assert.equal(f32ToF16Bits(v), h, `0x${h.toString(16)}`);
    }
  });
  it('rounds to nearest even like the reference on 200k random float32 values, incl. ties and subnormals', () => {
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    for (let i = 0; i < 200_000; i++) {
      // Random sign/mantissa with exponents around the f16 range (subnormals, normals, overflow).
      u[0] = ((rnd() < 0.5 ? 1 : 0) << 31) | ((100 + Math.floor(rnd() * 50)) << 23) | Math.floor(rnd() * 0x800000);
      if (i % 7 === 0) u[0] = (u[0] & ~0x1fff) | 0x1000; // exact tie in the normal range
      const v = f[0];
      assert.equal(f32ToF16Bits(v), refEncode(v), `value ${v} (0x${u[0].toString(16)})`);
    }
    assert.equal(f32ToF16Bits(65520), 0x7c00, '65520 rounds up to Infinity');
    assert.equal(f32ToF16Bits(65519), 0x7bff);
    assert.equal(f32ToF16Bits(2 ** -25), 0, 'half the smallest subnormal ties to even (zero)');
    assert.equal(f32ToF16Bits(2 ** -25 * 1.5), 1);
    assert.equal(f32ToF16Bits(-0), 0x8000);
    assert.deepEqual(Array.from(encodeF16([1, -2, Infinity])), [0x3c00, 0xc000, 0x7c00]);
  });
});

describe('dtype: bf16', () => {
  it('round to nearest even, keeps NaN, carries into the exponent', () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(bf16BitsToF32(0x3f80), 1);
    // 1 + 2^-8 is a tie between 1 (even) and 1 + 2^-7: goes to 1. 1 + 3*2^-8 ties to 1 + 2^-6.
    assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8)), 1);
    assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
    assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)), 1 + 2 ** -7, 'above the tie rounds up');
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
    // A NaN whose payload sits only in the low 16 bits must not become Infinity.
    const u = new Uint32Array([0x7f800001]);
    const nan = new Float32Array(u.buffer)[0];
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(nan))));
    assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
    assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80, 'max f32 rounds to Infinity');
    assert.equal(f32ToBf16Bits(-0), 0x8000);
    assert.deepEqual(Array.from(decodeBf16(new Uint16Array([0x3f80, 0xc000, 0x7f80]))), [1, -2, Infinity]);
  });
  it('every bf16 value survives a round trip', () => {
    for (let b = 0; b < 65536; b++) {
      const v = bf16BitsToF32(b);
      if (!Number.isNaN(v)) assert.equal(f32ToBf16Bits(v), b);
    }
  });
});

describe('dtype: f8', () => {
  it('E4M3 (FN): max 448, no infinity, S.1111.111 is NaN, subnormals', () => {
    assert.equal(f8E4M3ToF32(0x7e), 448);
    assert.equal(f8E4M3ToF32(0xfe), -448);
    assert.ok(Number.isNaN(f8E4M3ToF32(0x7f)));
    assert.equal(f8E4M3ToF32(0x78), 256, '1.000 x 2^8 is a number, not infinity');
    assert.equal(f8E4M3ToF32(0x38), 1);
    assert.equal(f8E4M3ToF32(0x01), 2 ** -9);
    assert.equal(f8E4M3ToF32(0x08), 2 ** -6);
  });
  it('E5M2: IEEE-like with infinities', () => {
    assert.equal(f8E5M2ToF32(0x3c), 1);
    assert.equal(f8E5M2ToF32(0x7b), 57344);
    assert.equal(f8E5M2ToF32(0x7c), Infinity);
    assert.equal(f8E5M2ToF32(0xfc), -Infinity);
    assert.ok(Number.isNaN(f8E5M2ToF32(0x7d)));
    assert.equal(f8E5M2ToF32(0x01), 2 ** -16);
    assert.deepEqual(Array.from(decodeF8(new Uint8Array([0x3c, 0xc0]), 'F8_E5M2')), [1, -2]);
  });
});
