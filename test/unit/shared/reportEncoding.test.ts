import assert from 'node:assert/strict';
import { base64ToBytes, bytesToBase64, decodeMatrix, encodeMatrix, ReportDataError } from '../../../src/shared/reportEncoding';

describe('shared/reportEncoding', () => {
  it('base64 agrees with Node’s Buffer for every length mod 3', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 255]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 255);
      const b64 = bytesToBase64(bytes);
      assert.equal(b64, Buffer.from(bytes).toString('base64'));
      assert.deepEqual(base64ToBytes(b64), bytes);
    }
  });

  it('a matrix round-trips bit for bit, NaN and signed zero included', () => {
    const data = Float32Array.from([1.5, -0, NaN, 3.4028234663852886e38, 1e-45, -2]);
    const back = decodeMatrix(encodeMatrix({ shape: [2, 3], data }));
    assert.deepEqual(back.shape, [2, 3]);
    assert.deepEqual(new Uint8Array(back.data.buffer, back.data.byteOffset, 24), new Uint8Array(data.buffer));
  });

  it('bad report data is a ReportDataError saying what is wrong', () => {
    assert.throws(() => base64ToBytes('AB!D'), (e: unknown) => ReportDataError.is(e) && /invalid base64 at character 0/.test((e as Error).message));
    const short = { shape: [2, 2] as [number, number], f32: bytesToBase64(new Uint8Array(12)) };
    assert.throws(() => decodeMatrix(short), (e: unknown) => ReportDataError.is(e) && /matrix \[2, 2\] should have 16 bytes, got 12/.test((e as Error).message));
  });
});
