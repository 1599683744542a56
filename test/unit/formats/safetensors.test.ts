import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError, type FormatErrorReason } from '../../../src/formats/errors';
import { parseHeader, parseSafetensors, serializeSafetensors, headerLengthOf, type Dtype } from '../../../src/formats/safetensors';
import { encodeF16, encodeBf16 } from '../../../src/formats/dtype';

const REAL_WORLD = path.resolve(__dirname, '../../../../shared/fixtures/real-world');

/** Builds a file from a header object/string and data bytes, without our writer (to make malformed files). */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function rejects(bytes: Uint8Array, reason: FormatErrorReason, pattern?: RegExp): FormatError {
  let caught: unknown;
  try {
    parseSafetensors(bytes, 'x.safetensors');
  } catch (e) {
    caught = e;
  }
  assert.ok(FormatError.is(caught), `expected a FormatError(${reason}), got ${String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  assert.match(caught.message, /^x\.safetensors: /, 'the message names the file');
  if (pattern) assert.match(caught.message, pattern);
  return caught;
}

describe('safetensors: upstream test vectors (MANIFEST.txt)', function () {
  const dir = path.join(REAL_WORLD, 'safetensors-upstream-vectors');
  if (!fs.existsSync(path.join(dir, 'MANIFEST.txt'))) {
    it.skip(`skipped: ${dir} is absent (shared fixtures not mounted)`);
    return;
  }
  // Rust SafeTensorError variant -> our reason.
  const REASON: Record<string, FormatErrorReason> = {
    MetadataIncompleteBuffer: 'incomplete-buffer',
    HeaderTooLarge: 'header-too-large',
    HeaderTooSmall: 'header-too-small',
    InvalidHeaderLength: 'invalid-header-length',
    InvalidHeader: 'invalid-header',
    InvalidHeaderDeserialization: 'invalid-header-json',
    TensorInvalidInfo: 'tensor-invalid-info',
    ValidationOverflow: 'validation-overflow',
    InvalidOffset: 'invalid-offset',
  };
  const rows = fs
    .readFileSync(path.join(dir, 'MANIFEST.txt'), 'utf8')
    .split('\n')
    .filter((l) => /^\S+\.safetensors \|/.test(l))
    .map((l) => l.split(' | '));
  it('lists all 18 vectors', () => assert.equal(rows.length, 18));
  for (const [file, , expected, size] of rows) {
    it(`${file}: ${expected.split(' ')[0]}`, () => {
      const bytes = new Uint8Array(fs.readFileSync(path.join(dir, file)));
      assert.equal(bytes.length, Number(size));
      if (expected.startsWith('OK')) {
        const st = parseSafetensors(bytes, file);
        const tensors = /0 tensors/.test(expected) ? 0 : 1;
        assert.equal(st.names().length, tensors);
        for (const name of st.names()) st.toFloat32(name);
        return;
      }
      const variant = /^(?:rejected \()?(\w+)/.exec(expected)![1];
      const reason = REASON[variant];
      assert.ok(reason, `unmapped variant ${variant}`);
      assert.throws(
        () => parseSafetensors(bytes, file),
        (e: unknown) => FormatError.is(e, reason) && e.message.startsWith(`${file}: `),
      );
    });
  }
  it('values of the doc example and the scalar', () => {
    const doc = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'valid_doc_example_I32_2x2.safetensors'))));
    assert.deepEqual(doc.entry('test'), { name: 'test', dtype: 'I32', shape: [2, 2], begin: 0, end: 16 });
    assert.deepEqual([...doc.typed('test')], [0, 0, 0, 0]);
    const scalar = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'valid_0rank_scalar_I32.safetensors'))));
    const [name] = scalar.names();
    assert.deepEqual(scalar.entry(name).shape, []);
    assert.equal(scalar.toFloat32(name).length, 1);
    const empty = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'valid_zero_sized_tensor_2x0.safetensors'))));
    assert.equal(empty.toFloat32(empty.names()[0]).length, 0);
  });
  it('the lying 4 MiB file is rejected from its header alone', () => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, 'bad_lying_offsets_4MiB_claimed_1_byte_present.safetensors')));
    assert.throws(() => parseHeader(bytes, bytes.length, 'lying'), /need 4194304 bytes of data but the file has only 1/);
  });
});

describe('safetensors: samples (values range(-3, 3) cast to each dtype)', function () {
  const dir = path.join(REAL_WORLD, 'safetensors-samples');
  if (!fs.existsSync(dir)) {
    it.skip(`skipped: ${dir} is absent`);
    return;
  }
  const expected: Record<string, { dtype: Dtype; values: (number | bigint)[] }> = {
    B: { dtype: 'U8', values: [253, 254, 255, 0, 1, 2] },
    H: { dtype: 'U16', values: [65533, 65534, 65535, 0, 1, 2] },
    I: { dtype: 'U32', values: [4294967293, 4294967294, 4294967295, 0, 1, 2] },
    b: { dtype: 'I8', values: [-3, -2, -1, 0, 1, 2] },
    h: { dtype: 'I16', values: [-3, -2, -1, 0, 1, 2] },
    i: { dtype: 'I32', values: [-3, -2, -1, 0, 1, 2] },
    e: { dtype: 'F16', values: [-3, -2, -1, 0, 1, 2] },
    f: { dtype: 'F32', values: [-3, -2, -1, 0, 1, 2] },
    d: { dtype: 'F64', values: [-3, -2, -1, 0, 1, 2] },
  };
  const check = (st: ReturnType<typeof parseSafetensors>, name: string) => {
    const { dtype, values } = expected[name];
    assert.equal(st.entry(name).dtype, dtype);
    assert.deepEqual(st.entry(name).shape, [6]);
    assert.deepEqual(Array.from(st.toFloat32(name)), values.map((v) => Math.fround(Number(v))));
    if (dtype !== 'F16') assert.deepEqual(Array.from(st.typed(name) as ArrayLike<number>), values);
  };
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') && f !== 'overall.safetensors')) {
    it(file, () => {
      const st = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, file))), file);
      assert.deepEqual(st.header.metadata, { test: 'a' });
      assert.equal(st.names().length, 1);
      check(st, st.names()[0]);
    });
  }
  it('overall.safetensors: 9 tensors at an unaligned data offset', () => {
    const st = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'overall.safetensors'))));
    assert.equal(st.header.dataOffset, 534);
    assert.deepEqual([...st.names()].sort(), Object.keys(expected).sort());
    for (const name of st.names()) check(st, name);
  });
});

describe('safetensors: real-world files', function () {
  if (!fs.existsSync(REAL_WORLD)) {
    it.skip(`skipped: ${REAL_WORLD} is absent`);
    return;
  }
  const files: string[] = [];
  for (const d of fs.readdirSync(REAL_WORLD)) {
    if (d.startsWith('safetensors-')) continue;
    const full = path.join(REAL_WORLD, d);
    if (!fs.statSync(full).isDirectory()) continue;
    for (const f of fs.readdirSync(full)) if (f.endsWith('.safetensors')) files.push(path.join(d, f));
  }
  for (const f of files) {
    const malformed = path.basename(f).startsWith('MALFORMED');
    it(`${f}: ${malformed ? 'rejected' : 'accepted, every tensor converts to float32'}`, () => {
      const bytes = new Uint8Array(fs.readFileSync(path.join(REAL_WORLD, f)));
      if (malformed) {
        assert.throws(() => parseSafetensors(bytes, f), (e: unknown) => FormatError.is(e) && e.message.includes(f));
        return;
      }
      const st = parseSafetensors(bytes, f);
      assert.ok(st.names().length > 0);
      for (const name of st.names()) {
        const v = st.toFloat32(name);
        assert.equal(v.length, st.entry(name).shape.reduce((a, b) => a * b, 1));
      }
    });
  }
  it('a Git LFS pointer saved as .safetensors gets a clear error', () => {
    const f = 'bawgz__dripfusion/MALFORMED_lfs_pointer_drip_glasses.safetensors';
    const bytes = new Uint8Array(fs.readFileSync(path.join(REAL_WORLD, f)));
    assert.throws(() => parseSafetensors(bytes, f), /header-length|header length prefix|more than the/);
  });
});

describe('safetensors: writer round trip', () => {
  it('writes every dtype and reads back identical bytes and values', () => {
    const f32 = new Float32Array([1.5, -2.25, 3e-3, 0, -0, 65504]);
    const tensors = {
      'z.f32': { dtype: 'F32' as const, shape: [2, 3], data: f32 },
      'a.f16': { dtype: 'F16' as const, shape: [6], data: encodeF16(f32) },
      'm.bf16': { dtype: 'BF16' as const, shape: [3, 2], data: encodeBf16(f32) },
      'i64': { dtype: 'I64' as const, shape: [3], data: new BigInt64Array([-1n, 2n ** 40n, 7n]) },
      'u64': { dtype: 'U64' as const, shape: [1], data: new BigUint64Array([2n ** 63n]) },
      'f64': { dtype: 'F64' as const, shape: [2], data: new Float64Array([Math.PI, -1e300]) },
      'bool': { dtype: 'BOOL' as const, shape: [3], data: new Uint8Array([1, 0, 1]) },
      'i8': { dtype: 'I8' as const, shape: [1], data: new Int8Array([-7]) },
      'i16': { dtype: 'I16' as const, shape: [1, 1], data: new Int16Array([-300]) },
      'u16': { dtype: 'U16' as const, shape: [], data: new Uint16Array([60000]) },
      'i32': { dtype: 'I32' as const, shape: [2], data: new Int32Array([-5, 5]) },
      'u32': { dtype: 'U32' as const, shape: [1], data: new Uint32Array([4e9]) },
      'e4m3': { dtype: 'F8_E4M3' as const, shape: [3], data: new Uint8Array([0x38, 0x7e, 0xff]) },
      'e5m2': { dtype: 'F8_E5M2' as const, shape: [2], data: new Uint8Array([0x3c, 0x7c]) },
      'empty': { dtype: 'F32' as const, shape: [4, 0], data: new Float32Array(0) },
    };
    const bytes = serializeSafetensors(tensors, { format: 'pt', note: 'ünïcode "quoted"' });
    const st = parseSafetensors(bytes);
    assert.equal(st.header.dataOffset % 8, 0, 'data section is 8-byte aligned');
    assert.deepEqual(st.names(), Object.keys(tensors).sort(), 'laid out in sorted order');
    assert.deepEqual(st.header.metadata, { format: 'pt', note: 'ünïcode "quoted"' });
    for (const [name, t] of Object.entries(tensors)) {
      assert.deepEqual(st.entry(name).shape, t.shape);
      assert.deepEqual(Buffer.from(st.raw(name)), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), name);
    }
    assert.deepEqual(Array.from(st.toFloat32('z.f32')), Array.from(f32));
    assert.deepEqual(Array.from(st.toFloat32('a.f16')), [1.5, -2.25, 0.0030002593994140625, 0, -0, 65504]);
    assert.deepEqual(Array.from(st.toFloat32('m.bf16')), [1.5, -2.25, 0.0030059814453125, 0, -0, 65536]);
    assert.deepEqual(Array.from(st.typed('i64') as BigInt64Array), [-1n, 2n ** 40n, 7n]);
    assert.deepEqual(Array.from(st.toFloat32('i64')), [-1, 2 ** 40, 7]);
    assert.deepEqual(Array.from(st.toFloat32('u64')), [2 ** 63]);
    assert.deepEqual(Array.from(st.toFloat32('bool')), [1, 0, 1]);
    assert.deepEqual(Array.from(st.toFloat32('e4m3')), [1, 448, NaN]);
    assert.deepEqual(Array.from(st.toFloat32('e5m2')), [1, Infinity]);
    assert.equal(st.toFloat32('u16')[0], 60000);
    // Writing what we read gives the same bytes (deterministic writer).
    const again = serializeSafetensors(
      Object.fromEntries(st.names().map((n) => [n, { dtype: st.entry(n).dtype, shape: st.entry(n).shape, data: st.raw(n) }])),
      st.header.metadata,
    );
    assert.deepEqual(Buffer.from(again), Buffer.from(bytes));
  });

  it('matches the byte layout of the reference writer', () => {
    // safetensors' doc example: {"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}, padded to 8.
    const bytes = serializeSafetensors({ test: { dtype: 'I32', shape: [2, 2], data: new Int32Array(4) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(new TextDecoder().decode(bytes.subarray(8, 8 + n)), '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    ');
    assert.equal(n % 8, 0);
  });

  it('typed() on unaligned data returns an aligned copy with the right values', () => {
    const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) } });
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    const st = parseSafetensors(shifted);
    assert.deepEqual(Array.from(st.typed('w') as Float32Array), [1, 2, 3]);
  });

  it('rejects bad writer input naming the tensor', () => {
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }), /tensor "w": F32 \[2, 2\] needs 16 bytes, got 12/);
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F16', shape: [2], data: new Float32Array(1) } }), /Float32Array cannot hold F16/);
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F33' as Dtype, shape: [1], data: new Uint8Array(4) } }), /unknown dtype "F33"/);
    assert.throws(() => serializeSafetensors({ w: { dtype: 'F32', shape: [-1], data: new Uint8Array(0) } }), /shape must be non-negative/);
    assert.throws(() => serializeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }), /reserved/);
  });
});

describe('safetensors: malformed files (self-made)', () => {
  const t = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  it('fewer than 8 bytes', () => {
    rejects(new Uint8Array([1, 2]), 'header-too-small', /2 bytes/);
    assert.throws(() => headerLengthOf(new Uint8Array(8), 5), FormatError);
  });
  it('header length beyond the file', () => rejects(craft({}, new Uint8Array(0), 100n), 'invalid-header-length', /says 100 bytes/));
  it('header not an object', () => {
    rejects(craft('[]'), 'invalid-header', /must be a JSON object, got an array/);
    rejects(craft('"hi"'), 'invalid-header');
  });
  it('BOM before the JSON', () => rejects(craft('\uFEFF{}'), 'invalid-header-json'));
  it('unknown dtype', () => rejects(craft({ w: t('F128', [1], [0, 16]) }, new Uint8Array(16)), 'unknown-dtype', /tensor "w": unknown dtype "F128"/));
  it('negative or fractional dims', () => {
    rejects(craft({ w: t('F32', [-1], [0, 0]) }), 'invalid-shape', /shape\[0\] must be a non-negative integer, got -1/);
    rejects(craft({ w: t('F32', [1.5], [0, 6]) }, new Uint8Array(6)), 'invalid-shape');
    rejects(craft({ w: t('F32', 'big', [0, 6]) }, new Uint8Array(6)), 'invalid-header-json', /"shape" must be an array/);
  });
  it('bad data_offsets', () => {
    rejects(craft({ w: t('F32', [1], [0]) }, new Uint8Array(4)), 'invalid-header-json', /data_offsets/);
    rejects(craft({ w: t('F32', [1], [4, 0]) }, new Uint8Array(4)), 'invalid-offset', /end before they begin/);
    rejects(craft({ w: t('F32', [1], [4, 8]) }, new Uint8Array(8)), 'invalid-offset', /gap of 4 bytes/);
    rejects(craft({ a: t('F32', [2], [0, 8]), b: t('F32', [1], [4, 8]) }, new Uint8Array(8)), 'invalid-offset', /tensor "b".*overlaps "a"/);
  });
  it('size mismatch and trailing bytes', () => {
    rejects(craft({ w: t('F16', [3], [0, 4]) }, new Uint8Array(4)), 'tensor-invalid-info', /F16 \[3\] needs 6 bytes.*give 4/);
    rejects(craft({ w: t('U8', [2], [0, 2]) }, new Uint8Array(5)), 'incomplete-buffer', /3 unexplained trailing bytes/);
    rejects(craft({}, new Uint8Array(1)), 'incomplete-buffer');
  });
  it('metadata must be string -> string', () => {
    rejects(craft({ __metadata__: { a: 1 } }), 'invalid-metadata', /"__metadata__.a" must be a string, got number 1/);
    rejects(craft({ __metadata__: [] }), 'invalid-metadata');
    assert.deepEqual(parseSafetensors(craft({ __metadata__: null })).header.metadata, {});
  });
  it('a "__proto__" metadata key stays data', () => {
    const st = parseSafetensors(craft('{"__metadata__":{"__proto__":"x","b":"<script>"}}'));
    assert.equal(Object.getPrototypeOf(st.header.metadata), Object.prototype);
    assert.deepEqual(Object.keys(st.header.metadata), ['__proto__', 'b']);
  });
  it('tensor lookup errors name the tensor and list the known ones', () => {
    const st = parseSafetensors(serializeSafetensors({ a: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), 'f.st');
    assert.throws(() => st.raw('b'), /f\.st: tensor "b": no such tensor \(tensors: a\)/);
  });
  it('parseHeader works from the header bytes alone', () => {
    const bytes = serializeSafetensors({ a: { dtype: 'F32', shape: [1000], data: new Float32Array(1000) } });
    const n = headerLengthOf(bytes.subarray(0, 8), bytes.length);
    const h = parseHeader(bytes.subarray(0, 8 + n), bytes.length, 'f');
    assert.deepEqual(h.tensors, [{ name: 'a', dtype: 'F32', shape: [1000], begin: 0, end: 4000 }]);
    assert.throws(() => parseHeader(bytes.subarray(0, 8 + n), bytes.length + 4, 'f'), /4 unexplained trailing bytes/);
    assert.throws(() => parseHeader(bytes.subarray(0, 8 + n - 1), bytes.length, 'f'), /need the first/);
  });
});
