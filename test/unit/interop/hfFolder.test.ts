// Model folders on disk: sharded checkpoints (model.safetensors.index.json), pickles refused, and adapter
// tensors that replace whole modules (PEFT modules_to_save).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PEFT_FIXTURES, maxAbsDiff, readReference, useCpu } from './helpers';
import { loadHfFolder, loadPeftAdapterDir } from '../../../src/io/hfFolder';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { adapterOverrides, attachPeftAdapter } from '../../../src/models/peftAdapter';
import { overlayWeights, weightsFromRecord } from '../../../src/models/weights';
import { parsePeftConfig } from '../../../src/formats/peftConfig';
import { InteropError } from '../../../src/formats/adapters/interopError';

describe('interop: Hugging Face folders on disk', () => {
  let tmp: string;
  const base = path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base');
  before(async () => {
    await useCpu();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-hf-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('loads a sharded checkpoint through model.safetensors.index.json', async () => {
    const st = parseSafetensors(fs.readFileSync(path.join(base, 'model.safetensors')));
    const names = st.names();
    const shards: Record<string, TensorToWrite>[] = [{}, {}];
    const weightMap: Record<string, string> = {};
    names.forEach((n, i) => {
      const s = i % 2;
      shards[s][n] = { dtype: st.entry(n).dtype, shape: st.entry(n).shape, data: st.raw(n).slice() };
      weightMap[n] = `model-0000${s + 1}-of-00002.safetensors`;
    });
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(base, 'config.json'), path.join(dir, 'config.json'));
    shards.forEach((t, s) => fs.writeFileSync(path.join(dir, `model-0000${s + 1}-of-00002.safetensors`), serializeSafetensors(t)));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const folder = await loadHfFolder(dir);
    assert.equal(folder.weightFiles.length, 2);
    const model = buildCausalLm(folder.config, folder.weights);
    const ref = readReference('llama-tiny-qkvo-r8');
    const logits = tf.tidy(() => model.forward(idsTensor(ref.probe_input_ids, 256)));
    assert.ok(maxAbsDiff(logits.dataSync(), ref.base_logits) < 1e-4);
    logits.dispose();
    model.dispose();
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    await assert.rejects(loadHfFolder(dir), (e) => InteropError.is(e, 'missing-tensor') && /model-00002-of-00002\.safetensors: no such file \(listed in model\.safetensors\.index\.json\)$/.test(e.message));
  });

  it('refuses a folder with only a pickle, and names a missing config', async () => {
    const dir = path.join(tmp, 'pickle-only');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(base, 'config.json'), path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'PK\u0003\u0004');
    await assert.rejects(loadHfFolder(dir), (e) => InteropError.is(e, 'pickle-refused') && /never unpickles/.test(e.message));
    await assert.rejects(loadHfFolder(tmp), /no config\.json/);
    const ad = path.join(tmp, 'bin-adapter');
    fs.mkdirSync(ad);
    fs.copyFileSync(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/adapter/adapter_config.json'), path.join(ad, 'adapter_config.json'));
    fs.writeFileSync(path.join(ad, 'adapter_model.bin'), 'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 5\n');
    await assert.rejects(loadPeftAdapterDir(ad), (e) => InteropError.is(e, 'lfs-pointer'));
    // A model whose model.safetensors is an LFS pointer: said so (the size check reads headers first).
    const lfs = path.join(tmp, 'lfs-model');
    fs.mkdirSync(lfs);
    fs.copyFileSync(path.join(base, 'config.json'), path.join(lfs, 'config.json'));
    fs.writeFileSync(path.join(lfs, 'model.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:' + 'ab'.repeat(32) + '\nsize 2471645608\n');
    await assert.rejects(loadHfFolder(lfs), (e) => InteropError.is(e, 'lfs-pointer') && /model\.safetensors: this is a Git LFS pointer, not the weights; run "git lfs pull"/.test(e.message));
  });

  it('modules_to_save tensors in the adapter replace the base module', async () => {
    const folder = await loadHfFolder(base);
    const adapterWeights = weightsFromRecord({
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [8, 64], data: new Float32Array(512).fill(0.01) },
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [64, 8], data: new Float32Array(512).fill(0.01) },
      'base_model.model.lm_head.weight': { shape: [256, 64], data: new Float32Array(256 * 64) },
    });
    const overrides = adapterOverrides(adapterWeights);
    assert.deepEqual(Object.keys(overrides), ['lm_head.weight']);
    const model = buildCausalLm(folder.config, overlayWeights(folder.weights, overrides));
    const parsed = parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 8, target_modules: ['q_proj'], layers_to_transform: [0], modules_to_save: ['lm_head'] }));
    const adapter = attachPeftAdapter(model, parsed, adapterWeights);
    assert.equal(adapter.modules.size, 1);
    const logits = tf.tidy(() => model.forward(idsTensor([[1, 2, 3]], 256), adapter.lookup));
    assert.equal(maxAbsDiff(logits.dataSync(), new Float32Array(3 * 256)), 0); // the zero lm_head replaced the real one
    logits.dispose();
    adapter.dispose();
    model.dispose();
  });
});
