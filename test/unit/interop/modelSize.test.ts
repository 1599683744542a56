// Model size against the backend: the weights' float32 size is read from the headers and a model the
// wasm backend cannot hold (one WebAssembly memory of at most 4 GiB) is refused before anything is read.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { InteropError } from '../../../src/formats/adapters/interopError';
import { WASM_MODEL_BYTES, modelSizeLimit, startBackend } from '../../../src/runs/backendSetup';
import { PEFT_FIXTURES, useCpu } from './helpers';
import { frozenNative } from '../../../src/engine/kernels/frozenWeights';

const BASE = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base');

describe('interop: model size against the backend', () => {
  after(useCpu);

  it('counts the parameters from the headers (the fixture: 113,984 − LoRA = its base) and refuses above a limit, naming folder, size and reason', async () => {
    const folder = await loadHfFolder(BASE);
    let elements = 0;
    for (const n of folder.weights.names()) elements += folder.weights.get(n)!.data.length;
    assert.equal(folder.paramCount, elements);
    assert.equal(folder.float32Bytes, elements * 4);
    await assert.rejects(
      loadHfFolder(BASE, { maxFloat32Bytes: 1000, limitReason: 'a test limit' }),
      (e: unknown) => InteropError.is(e, 'too-large') &&
        e.message === `${BASE}: the model has ${(elements / 1e6).toFixed(1)} M parameters, ${(elements * 4 / 2 ** 30).toFixed(2)} GiB as float32, over the 0.00 GiB this backend can hold (a test limit)`,
    );
    assert.equal((await loadHfFolder(BASE, { maxFloat32Bytes: elements * 4 })).paramCount, elements); // at the limit: loads
  });

  it('refuses before reading the weights: a folder whose header promises 1.5 B parameters is refused on size before its 6 GB are read', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-size-'));
    try {
      fs.copyFileSync(path.join(BASE, 'config.json'), path.join(dir, 'config.json'));
      // One 1.5e9-element F32 tensor whose 6 GB of data are a hole (a sparse file: nothing on disk).
      const header = Buffer.from(JSON.stringify({ 'model.embed_tokens.weight': { dtype: 'F32', shape: [1_500_000, 1000], data_offsets: [0, 6_000_000_000] } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      const file = path.join(dir, 'model.safetensors');
      fs.writeFileSync(file, Buffer.concat([len, header]));
      fs.truncateSync(file, 8 + header.length + 6_000_000_000);
      await assert.rejects(loadHfFolder(dir, { maxFloat32Bytes: WASM_MODEL_BYTES }), (e: unknown) => InteropError.is(e, 'too-large') && /1\.50 B parameters, 5\.59 GiB as float32, over the 3\.00 GiB/.test(e.message));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the limit applies on the wasm backend only, and not where the native kernels keep frozen weights outside it', async () => {
    await useCpu();
    assert.deepEqual(modelSizeLimit(), {});
    await startBackend({ prefer: 'wasm', native: false });
    assert.equal(tf.getBackend(), 'wasm');
    const lim = modelSizeLimit();
    assert.equal(lim.maxFloat32Bytes, WASM_MODEL_BYTES);
    assert.match(lim.limitReason ?? '', /WebAssembly memory of at most 4 GiB/);
    await startBackend({ prefer: 'wasm' });
    if (frozenNative()) assert.deepEqual(modelSizeLimit(), {}, 'frozen weights outside the heap: the memory estimate decides');
  });
});
