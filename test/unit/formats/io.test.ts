import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { appendLine, writeFileAtomic } from '../../../src/io/atomic';
import {
  readSafetensors,
  readSafetensorsHeader,
  readTensorBytes,
  readTensorFloat32,
  readWholeFile,
  writeSafetensors,
} from '../../../src/io/safetensorsFile';
import { FormatError } from '../../../src/formats/errors';

describe('io: atomic writes and safetensors files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-io-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writeFileAtomic replaces the file and leaves no temp files', async () => {
    const f = path.join(dir, 'run.json');
    await writeFileAtomic(f, '{"a":1}');
    await writeFileAtomic(f, new TextEncoder().encode('{"a":2}'));
    assert.equal(fs.readFileSync(f, 'utf8'), '{"a":2}');
    assert.deepEqual(fs.readdirSync(dir), ['run.json']);
  });

  it('writeFileAtomic leaves the old content and no temp file when the write fails', async () => {
    const f = path.join(dir, 'x.json');
    await writeFileAtomic(f, 'old');
    // Renaming onto a non-empty folder fails after the temp file was written.
    const blocked = path.join(dir, 'blocked');
    fs.mkdirSync(blocked);
    fs.writeFileSync(path.join(blocked, 'keep'), '');
    await assert.rejects(writeFileAtomic(blocked, 'new'));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['blocked', 'x.json']);
    assert.equal(fs.readFileSync(f, 'utf8'), 'old');
  });

  it('writeFileAtomic writes chunks in order, returns the byte count, and keeps the old file when a chunk fails', async () => {
    const f = path.join(dir, 'model.gguf');
    const chunks = [Uint8Array.from([1, 2, 3]), new Uint8Array(0), Uint8Array.from({ length: 70_000 }, (_, i) => i % 251)];
    assert.equal(await writeFileAtomic(f, chunks), 70_003);
    assert.deepEqual(new Uint8Array(fs.readFileSync(f)), Uint8Array.from([...chunks[0], ...chunks[2]]));
    function* failing(): Generator<Uint8Array> {
      yield Uint8Array.from([9, 9]);
      throw new Error('serialiser failed');
    }
    await assert.rejects(writeFileAtomic(f, failing()), /serialiser failed/);
    assert.equal(fs.readFileSync(f).length, 70_003);
    assert.deepEqual(fs.readdirSync(dir), ['model.gguf']);
  });

  it('concurrent atomic writers never produce a torn file', async () => {
    const f = path.join(dir, 'c.txt');
    const bodies = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));
    await Promise.all(bodies.map((b) => writeFileAtomic(f, b)));
    assert.ok(bodies.includes(fs.readFileSync(f, 'utf8')));
    assert.deepEqual(fs.readdirSync(dir), ['c.txt']);
  });

  it('appendLine appends whole lines and refuses embedded newlines', async () => {
    const f = path.join(dir, 'metrics.jsonl');
    await appendLine(f, '{"step":1}');
    await appendLine(f, '{"step":2}', { fsync: true });
    await Promise.all(Array.from({ length: 50 }, (_, i) => appendLine(f, JSON.stringify({ step: 3 + i }))));
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 52);
    for (const l of lines) JSON.parse(l);
    await assert.rejects(appendLine(f, 'a\nb'), /must not contain a newline/);
  });

  it('writeSafetensors + readSafetensors round trip; the header-only read sees the same header', async () => {
    const f = path.join(dir, 'adapter_model.safetensors');
    const A = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i));
    const B = Float32Array.from({ length: 64 * 4 }, (_, i) => Math.cos(i));
    await writeSafetensors(
      f,
      { 'layer.lora_A.weight': { dtype: 'F32', shape: [4, 64], data: A }, 'layer.lora_B.weight': { dtype: 'F32', shape: [64, 4], data: B } },
      { format: 'pt' },
    );
    const st = await readSafetensors(f);
    assert.deepEqual(st.toFloat32('layer.lora_A.weight'), A);
    assert.deepEqual(st.toFloat32('layer.lora_B.weight'), B);
    const header = await readSafetensorsHeader(f);
    assert.deepEqual(header, st.header);
    assert.deepEqual(await readTensorFloat32(f, header, 'layer.lora_B.weight'), B);
    assert.equal((await readTensorBytes(f, header, 'layer.lora_A.weight')).length, 4 * 64 * 4);
    await assert.rejects(
      readTensorBytes(f, header, 'nope'),
      (e: unknown) => FormatError.is(e, 'tensor-not-found') && e.message === `${f}: tensor "nope": no such tensor (tensors: layer.lora_A.weight, layer.lora_B.weight)`,
    );
  });

  it('reading a tensor from a file that shrank since its header was read is a FormatError naming the file', async () => {
    const f = path.join(dir, 'shrunk.safetensors');
    await writeSafetensors(f, { a: { dtype: 'F32', shape: [8], data: new Float32Array(8) }, b: { dtype: 'F32', shape: [8], data: new Float32Array(8) } });
    const header = await readSafetensorsHeader(f);
    fs.truncateSync(f, fs.statSync(f).size - 4);
    assert.equal((await readTensorFloat32(f, header, 'a')).length, 8);
    await assert.rejects(
      readTensorFloat32(f, header, 'b'),
      (e: unknown) => FormatError.is(e, 'incomplete-buffer') && e.message.startsWith(`${f}: the file ends at byte `) && /changed since its header was read/.test(e.message),
    );
  });

  it('readSafetensorsHeader reads only the header bytes (of a sparse 6 GiB file), and still catches truncation', async () => {
    // Structural, not timed: count the bytes read through the file handle, on a file too large to read whole.
    const f = path.join(dir, 'big.safetensors');
    const json = JSON.stringify({ __metadata__: { format: 'pt' }, t: { dtype: 'F32', shape: [3, 2 ** 29], data_offsets: [0, 6 * 2 ** 30] } });
    const headerLen = Buffer.byteLength(json);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(headerLen));
    fs.writeFileSync(f, Buffer.concat([prefix, Buffer.from(json)]));
    fs.truncateSync(f, 8 + headerLen + 6 * 2 ** 30); // sparse: no disk used for the data
    const probe = await fs.promises.open(f, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<{ bytesRead: number }> };
    await probe.close();
    const read = proto.read;
    let bytes = 0;
    proto.read = async function (this: unknown, ...a: unknown[]) {
      const r = await read.apply(this, a);
      bytes += r.bytesRead;
      return r;
    };
    let header;
    try {
      header = await readSafetensorsHeader(f);
    } finally {
      proto.read = read;
    }
    assert.deepEqual(header.tensors.map((t) => [t.name, t.shape]), [['t', [3, 2 ** 29]]]);
    assert.equal(bytes, 8 + headerLen, `read ${bytes} bytes; the header is ${8 + headerLen}`);
    fs.truncateSync(f, fs.statSync(f).size - 1);
    await assert.rejects(readSafetensorsHeader(f), (e: unknown) => FormatError.is(e, 'incomplete-buffer') && e.message.startsWith(f));
  });

  it('readWholeFile reads past fs.readFile\'s 2 GiB limit in pieces (tested with small pieces), and refuses a file over 4 GiB naming it', async () => {
    const f = path.join(dir, 'pieces.safetensors');
    await writeSafetensors(f, { w: { dtype: 'F32', shape: [257, 3], data: Float32Array.from({ length: 771 }, (_, i) => i * 0.5) } });
    const whole = new Uint8Array(fs.readFileSync(f));
    for (const chunk of [1, 7, 1000, whole.length, whole.length + 1]) assert.deepEqual(await readWholeFile(f, chunk), whole, `chunk ${chunk}`);
    const huge = path.join(dir, 'huge.safetensors');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 2 ** 32 + 16); // sparse: nothing is read
    await assert.rejects(readSafetensors(huge), (e: unknown) => FormatError.is(e, 'file-too-large') && e.message.startsWith(`${huge}: 4.00 GiB is more than one array can hold`) && /shards/.test(e.message));
  });

  it('readSafetensorsHeader on tiny and empty files gives a clear error', async () => {
    const f = path.join(dir, 'crlf.safetensors');
    fs.writeFileSync(f, '\r\n');
    await assert.rejects(readSafetensorsHeader(f), (e: unknown) => FormatError.is(e, 'header-too-small') && /crlf\.safetensors: not a safetensors file: 2 bytes/.test(e.message));
    fs.writeFileSync(f, '');
    await assert.rejects(readSafetensorsHeader(f), (e: unknown) => FormatError.is(e, 'header-too-small'));
    await assert.rejects(readSafetensorsHeader(path.join(dir, 'missing.safetensors')), /ENOENT/);
  });
});
