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

  it('readSafetensorsHeader reads only the header: fast on a large file, and still catches truncation', async () => {
    const f = path.join(dir, 'big.safetensors');
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (let i = 0; i < 16; i++) tensors[`t${i}`] = { dtype: 'F32', shape: [1024, 1024], data: new Float32Array(1024 * 1024) };
    await writeSafetensors(f, tensors);
    assert.ok(fs.statSync(f).size > 64 * 2 ** 20);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) await readSafetensorsHeader(f);
    const perHeader = (performance.now() - t0) / 200;
    assert.ok(perHeader < 5, `header read took ${perHeader.toFixed(2)} ms`);
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
