// DoRA from an experiment config (lora.useDora): the `lora-lab train` path (trainRun on a .lora.yaml)
// writes a PEFT DoRA adapter (use_dora, lora_magnitude_vector) that our PEFT reader loads back, and the
// reloaded adapter's logits equal the training session's own.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { maxAbsDiff, useCpu, openCausalLm } from './helpers';
import { trainRun, loadExperimentConfig } from '../../../src/runs/trainRun';
import { loadHfFolder, loadPeftAdapterDir } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { attachPeftAdapter } from '../../../src/models/peftAdapter';
import { doraWeightNorm } from '../../../src/models/linear';
import { peftConfigFromJson } from '../../../src/formats/peftConfig';
import { weightsFromRecord } from '../../../src/models/weights';
import type { MetricPoint } from '../../../src/protocol/runFormat';

const EXAMPLES = path.resolve(__dirname, '../../../examples/models');
const LAYERS = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'];

describe('interop: DoRA training from an experiment config', function () {
  this.timeout(60000);
  before(useCpu);
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-dora-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains tiny-llama with useDora; the saved PEFT DoRA adapter reloads with the session\'s logits', async () => {
    const cfgPath = path.join(tmp, 'dora.lora.yaml');
    fs.writeFileSync(
      cfgPath,
      [
        'kind: causal-lm',
        'model:',
        `  modelPath: ${JSON.stringify(path.join(EXAMPLES, 'tiny-llama'))}`,
        `  dataset: { path: ${JSON.stringify(path.join(EXAMPLES, 'lora-notes.txt'))}, seqLen: 24, evalFraction: 0.1 }`,
        'lora: { r: 4, alpha: 8, useDora: true, targetModules: [q_proj, v_proj] }',
        'optimizer: { name: adamw, lr: 0.03, weightDecay: 0 }',
        'schedule: { name: constant }',
        'training: { steps: 4, batchSize: 2, seed: 11, evalEvery: 2, evalBatches: 1, checkpointEvery: 4 }',
        '',
      ].join('\n'),
    );
    const { config, warnings } = loadExperimentConfig(cfgPath);
    assert.deepEqual(warnings, []);
    assert.equal(config.lora.useDora, true);

    // The `lora-lab train` path: a run folder with adapter/ in PEFT's layout.
    const res = await trainRun({ configPath: cfgPath, outDir: path.join(tmp, 'runs'), backend: 'cpu', progressIntervalMs: 0 });
    assert.equal(res.status, 'completed', res.error);
    const saved = await loadPeftAdapterDir(res.adapterDir!);
    const rawCfg = JSON.parse(fs.readFileSync(path.join(res.adapterDir!, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(rawCfg.use_dora, true);
    assert.equal(rawCfg.peft_type, 'LORA');
    assert.equal(saved.parsed.config.useDora, true);
    const names = saved.weights.names().sort();
    assert.equal(names.length, 3 * LAYERS.length, names.join(', '));
    for (const p of LAYERS) {
      // PEFT's save keys: no ".weight" after lora_magnitude_vector; one magnitude per output feature.
      assert.deepEqual(saved.weights.get(`base_model.model.${p}.lora_magnitude_vector`)?.shape, [p.endsWith('q_proj') ? 64 : 32]);
      assert.deepEqual(saved.weights.get(`base_model.model.${p}.lora_A.weight`)?.shape, [4, 64]);
    }

    // The same config in-process (seeded: the same training), to read the session's own logits.
    const session = await openCausalLm(config, tmp);
    // q_proj 4·(64+64) + 64 magnitudes, v_proj (2 kv heads of 16) 4·(64+32) + 32, two layers.
    assert.equal(session.params.trainableParams, 2 * (4 * 128 + 64 + 4 * 96 + 32));
    const points: MetricPoint[] = [];
    for await (const p of session.run()) points.push(p);
    assert.equal(points.at(-1)!.loss, res.lastLoss, 'the in-process session repeats the run');
    const rows = [
      [...new TextEncoder().encode('LoRA adds a low-rank upd')],
      [...new TextEncoder().encode('DoRA rescales each row..')],
    ];
    const own = session.logits(rows);
    session.dispose();

    const folder = await loadHfFolder(path.join(EXAMPLES, 'tiny-llama'));
    const model = buildCausalLm(folder.config, folder.weights);
    const adapter = attachPeftAdapter(model, saved.parsed, saved.weights);
    // Without the magnitudes (read as plain LoRA) the logits differ: DoRA really is in the saved adapter.
    const plain = attachPeftAdapter(model, peftConfigFromJson({ ...rawCfg, use_dora: false }), saved.weights);
    const ids = idsTensor(rows, 256);
    const reloaded = tf.tidy(() => model.forward(ids, adapter.lookup).dataSync());
    const asLora = tf.tidy(() => model.forward(ids, plain.lookup).dataSync());
    const base = tf.tidy(() => model.forward(ids).dataSync());
    const diff = maxAbsDiff(reloaded, own.data);
    assert.deepEqual(own.shape, [2, 24, 256]);
    assert.ok(diff < 1e-5, `reloaded DoRA adapter vs session logits: max |Δ| ${diff}`);
    assert.ok(maxAbsDiff(asLora, own.data) > 1e-3, 'the magnitude vectors change the output');
    assert.ok(maxAbsDiff(base, own.data) > 1e-2, 'training moved the model');
    // The magnitudes trained away from their initial value ‖W‖ (row norms of the base weight; B starts at 0).
    const layer = model.linears.get(LAYERS[0])!;
    const mod = adapter.modules.get(LAYERS[0])!;
    const initNorm = tf.tidy(() => doraWeightNorm(layer, { ...mod, B: tf.zerosLike(mod.B) }).dataSync());
    assert.ok(maxAbsDiff(initNorm, mod.magnitude!.dataSync()) > 1e-4, 'magnitude moved from ‖W‖');
    ids.dispose();
    adapter.dispose();
    plain.dispose();
    model.dispose();
  });

  it('GPT-2 (Conv1D, fan_in_fan_out) with useDora: the exported adapter reloads with the session\'s logits', async () => {
    const { config } = loadExperimentConfig(writeConfig(tmp, 'tiny-gpt2', 'c_attn'));
    const session = await openCausalLm(config, tmp);
    assert.equal(session.params.trainableParams, 2 * (4 * (64 + 192) + 192));
    for await (const p of session.run()) assert.ok(Number.isFinite(p.loss));
    const exported = session.exportAdapter();
    assert.equal(exported.config.use_dora, true);
    assert.equal(exported.config.fan_in_fan_out, true);
    assert.deepEqual(exported.tensors['base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector'].shape, [192]);
    const rows = [[...new TextEncoder().encode('a tiny GPT-2 with DoRA..')]];
    const own = session.logits(rows);
    session.dispose();
    const folder = await loadHfFolder(path.join(EXAMPLES, 'tiny-gpt2'));
    const model = buildCausalLm(folder.config, folder.weights);
    const adapter = attachPeftAdapter(model, peftConfigFromJson(exported.config), weightsFromRecord(exported.tensors));
    const ids = idsTensor(rows, 256);
    const reloaded = tf.tidy(() => model.forward(ids, adapter.lookup).dataSync());
    const diff = maxAbsDiff(reloaded, own.data);
    assert.ok(diff < 1e-5, `max |Δ| ${diff}`);
    ids.dispose();
    adapter.dispose();
    model.dispose();
  });
});

function writeConfig(dir: string, model: string, target: string): string {
  const file = path.join(dir, `${model}.lora.yaml`);
  fs.writeFileSync(
    file,
    [
      'kind: causal-lm',
      `model: { modelPath: ${JSON.stringify(path.join(EXAMPLES, model))}, dataset: { path: ${JSON.stringify(path.join(EXAMPLES, 'lora-notes.txt'))}, seqLen: 24 } }`,
      `lora: { r: 4, alpha: 8, useDora: true, targetModules: [${target}] }`,
      'optimizer: { lr: 0.03 }',
      'training: { steps: 3, batchSize: 2, seed: 5, evalEvery: 3, evalBatches: 1 }',
      '',
    ].join('\n'),
  );
  return file;
}
