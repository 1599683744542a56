// A causal-lm session, opened from disk as a run opens it, end to end on the tiny example models: text
// windows, training with falling eval loss, exact resume from a checkpoint, and a PEFT-layout adapter that
// loads back and reproduces the logits.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu, openCausalLm } from './helpers';
import { bytesTokenizer, datasetDocuments, hfTokenizer, makeWindows } from '../../../src/models/textData';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { causalLmLoss, idsTensor } from '../../../src/models/causalLm';
import { peftConfigFromJson } from '../../../src/formats/peftConfig';
import { adapterOverrides, attachPeftAdapter } from '../../../src/models/peftAdapter';
import { overlayWeights, weightsFromRecord } from '../../../src/models/weights';
import { InteropError } from '../../../src/formats/adapters/interopError';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import type { MetricPoint } from '../../../src/protocol/runFormat';

const EXAMPLES = path.resolve(__dirname, '../../../examples/models');

function experiment(model: string, targetModules: string[], steps: number, extra: Partial<ExperimentConfig['training']> = {}): ExperimentConfig {
  return {
    name: 'tiny',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath: model, dataset: { path: 'lora-notes.txt', seqLen: 24, evalFraction: 0.1, tokenizer: 'bytes' } },
    lora: { r: 4, alpha: 8, scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules, trainBias: false },
    optimizer: { name: 'adamw', lr: 0.03, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 1 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps, batchSize: 2, seed: 7, evalEvery: 1, evalBatches: 1, checkpointEvery: 0, logEvery: 1, ...extra },
  };
}

async function collect(it: AsyncIterable<MetricPoint>): Promise<MetricPoint[]> {
  const out: MetricPoint[] = [];
  for await (const p of it) out.push(p);
  return out;
}

describe('interop: text datasets', () => {
  it('cuts byte tokens into windows with a held-out tail', () => {
    const w = makeWindows(['abcdefghij', 'klmnopqrst'], bytesTokenizer(), 4, 0.25);
    // "abcdefghij\nklmnopqrst" = 21 bytes -> 5 windows of 4; 1 for eval
    assert.equal(w.train.length, 4);
    assert.equal(w.eval.length, 1);
    assert.deepEqual([...w.train[0]], [97, 98, 99, 100]);
    assert.deepEqual([...w.eval[0]], [...new TextEncoder().encode('pqrs')]);
  });

  it('reads .jsonl "text" fields and names the bad line', () => {
    assert.deepEqual(datasetDocuments('{"text":"a"}\n\n{"text":"b"}\n', 'd.jsonl'), ['a', 'b']);
    assert.throws(() => datasetDocuments('{"text":"a"}\n{"txt":1}\n', 'd.jsonl'), /d\.jsonl:2: expected an object with a string "text" field/);
    assert.deepEqual(datasetDocuments('{"text":"a"}', 'd.txt'), ['{"text":"a"}']);
  });

  it('refuses a dataset too short for one train and one eval window', () => {
    assert.throws(() => makeWindows(['abc'], bytesTokenizer(), 8, 0.1, 'tiny.txt'), (e) => InteropError.is(e, 'bad-input') && /tiny\.txt: 3 tokens make 0 window/.test(e.message));
  });

  it('tokenizes offline with a tokenizer.json (@huggingface/tokenizers)', () => {
    const json = JSON.stringify({
      version: '1.0', truncation: null, padding: null, normalizer: { type: 'Lowercase' }, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
      added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      model: { type: 'WordLevel', vocab: { '[UNK]': 0, the: 1, adapter: 2, is: 3, small: 4, '.': 5 }, unk_token: '[UNK]' },
    });
    const tok = hfTokenizer(json);
    assert.equal(tok.vocabSize, 6);
    assert.deepEqual(tok.encode('The adapter is small.'), [1, 2, 3, 4, 5]);
  });
});

describe('interop: causal-lm training session', function () {
  this.timeout(60000);
  before(useCpu);

  it('fine-tunes tiny-gpt2 with falling eval loss and exports a PEFT adapter that reloads exactly', async () => {
    const s = await openCausalLm(experiment('tiny-gpt2', ['c_attn', 'c_proj', 'c_fc'], 8), EXAMPLES);
    assert.equal(s.params.totalParams, 124672);
    // 2 layers × (c_attn 4·(64+192) + attn c_proj 4·128 + c_fc 4·(64+256) + mlp c_proj 4·(256+64))
    assert.equal(s.params.trainableParams, 2 * (1024 + 512 + 1280 + 1280));
    const points = await collect(s.run());
    assert.equal(points.length, 8);
    const first = points[0].evalLoss!;
    const last = points[7].evalLoss!;
    assert.ok(last < first - 0.3, `eval loss ${first} -> ${last}`);

    const exported = s.exportAdapter();
    assert.equal(exported.config.peft_type, 'LORA');
    assert.equal(exported.config.base_model_name_or_path, path.join(EXAMPLES, 'tiny-gpt2'));
    assert.deepEqual(exported.config.target_modules, ['c_attn', 'c_fc', 'c_proj']);
    assert.equal(exported.config.fan_in_fan_out, true); // what PEFT writes for GPT-2's Conv1D
    assert.deepEqual(exported.tensors['base_model.model.transformer.h.0.attn.c_attn.lora_A.weight'].shape, [4, 64]);
    assert.deepEqual(exported.tensors['base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight'].shape, [64, 4]);

    // Reload through the PEFT reader: the held-out loss with the reloaded adapter equals the session's last eval loss.
    const folder = await loadHfFolder(path.join(EXAMPLES, 'tiny-gpt2'));
    const model = buildCausalLm(folder.config, folder.weights);
    const adapter = attachPeftAdapter(model, peftConfigFromJson(exported.config), weightsFromRecord(exported.tensors));
    const text = fs.readFileSync(path.join(EXAMPLES, 'lora-notes.txt'), 'utf8');
    const evalRows = makeWindows([text], bytesTokenizer(), 24, 0.1).eval.slice(0, 2).map((w) => [...w]);
    const ids = idsTensor(evalRows, 256);
    const reloaded = tf.tidy(() => causalLmLoss(model.forward(ids, adapter.lookup), ids).dataSync()[0]);
    const baseLoss = tf.tidy(() => causalLmLoss(model.forward(ids), ids).dataSync()[0]);
    assert.ok(Math.abs(reloaded - last) < 1e-5, `reloaded adapter eval loss ${reloaded} vs session ${last}`);
    assert.ok(baseLoss > reloaded + 0.3, `base ${baseLoss} vs adapted ${reloaded}`);
    ids.dispose();
    adapter.dispose();
    model.dispose();
    s.dispose();
  });

  it('resumes from a checkpoint with exactly the same losses (tiny-llama, bf16 weights)', async () => {
    const targets = ['q_proj', 'v_proj'];
    const before = tf.memory().numTensors;
    const full = await openCausalLm(experiment('tiny-llama', targets, 4), EXAMPLES);
    const during: number[] = [];
    const a: MetricPoint[] = [];
    for await (const p of full.run()) {
      a.push(p);
      during.push(tf.memory().numTensors);
    }
    full.dispose();
    assert.equal(new Set(during.slice(1)).size, 1, `tensor count per step ${during}`);
    assert.equal(tf.memory().numTensors, before, 'dispose frees every tensor');

    const first = await openCausalLm(experiment('tiny-llama', targets, 4), EXAMPLES);
    const ctrl = new AbortController();
    const b: MetricPoint[] = [];
    for await (const p of first.run({ signal: ctrl.signal })) {
      b.push(p);
      if (p.step === 2) ctrl.abort();
    }
    assert.equal(first.step, 2);
    const ckpt = first.checkpoint();
    first.dispose();
    const second = await openCausalLm(experiment('tiny-llama', targets, 4), EXAMPLES);
    second.restore(ckpt);
    b.push(...(await collect(second.run())));
    second.dispose();
    assert.deepEqual(b.map((p) => p.step), [1, 2, 3, 4]);
    for (let i = 0; i < 4; i++) {
      assert.ok(Math.abs(a[i].loss - b[i].loss) < 1e-6, `step ${i + 1}: ${a[i].loss} vs ${b[i].loss}`);
      assert.ok(Math.abs(a[i].evalLoss! - b[i].evalLoss!) < 1e-6);
    }
  });

  it('trains with the model folder\'s tokenizer.json (dataset.tokenizer "tokenizer")', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-tok-'));
    try {
      const model = path.join(tmp, 'model');
      fs.mkdirSync(model);
      for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(EXAMPLES, 'tiny-gpt2', f), path.join(model, f));
      const words = ['the', 'adapter', 'is', 'small', 'base', 'model', 'needs', 'a', '.'];
      fs.writeFileSync(path.join(model, 'tokenizer.json'), JSON.stringify({
        version: '1.0', truncation: null, padding: null, normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null, added_tokens: [],
        model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: 'a' },
      }));
      const text = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? 'the adapter is small .' : 'a base model needs the adapter .')).join(' ');
      fs.writeFileSync(path.join(tmp, 'data.txt'), text);
      const cfg = experiment('model', ['c_attn'], 3);
      if (cfg.model.kind === 'causal-lm') cfg.model.dataset = { path: 'data.txt', seqLen: 16, evalFraction: 0.1, tokenizer: 'tokenizer' };
      const s = await openCausalLm(cfg, tmp);
      assert.equal(s.details.tokenizer, 'tokenizer');
      // "the adapter is small ." = 5 tokens; 200 sentences ≈ 1200 tokens -> about 75 windows of 16
      assert.ok(s.details.trainWindows + s.details.evalWindows >= 70, `${s.details.trainWindows} + ${s.details.evalWindows}`);
      const pts = await collect(s.run());
      assert.ok(pts.every((p) => Number.isFinite(p.loss)));
      assert.ok(pts[2].loss < pts[0].loss, `${pts.map((p) => p.loss)}`);
      s.dispose();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('trainBias trains the adapted layers\' biases (PEFT bias "lora_only") and the adapter carries them', async () => {
    const cfg = experiment('tiny-gpt2', ['c_attn'], 3);
    cfg.lora.trainBias = true;
    const s = await openCausalLm(cfg, EXAMPLES);
    assert.equal(s.params.trainableParams, 2 * (4 * (64 + 192) + 192));
    const pts = await collect(s.run());
    const exported = s.exportAdapter();
    assert.equal(exported.config.bias, 'lora_only');
    // Under the wrapped layer's base_layer, the key PEFT 0.13 loads.
    const bias = exported.tensors['base_model.model.transformer.h.0.attn.c_attn.base_layer.bias'];
    assert.deepEqual(bias.shape, [192]);
    assert.ok(bias.data.some((v) => v !== 0), 'the bias moved from its (zero) initial value');
    s.dispose();
    // Reload: bias tensors replace the base ones (overlay), LoRA factors attach; same held-out loss.
    const folder = await loadHfFolder(path.join(EXAMPLES, 'tiny-gpt2'));
    const aw = weightsFromRecord(exported.tensors);
    const model = buildCausalLm(folder.config, overlayWeights(folder.weights, adapterOverrides(aw)));
    const adapter = attachPeftAdapter(model, peftConfigFromJson(exported.config), aw);
    const text = fs.readFileSync(path.join(EXAMPLES, 'lora-notes.txt'), 'utf8');
    const ids = idsTensor(makeWindows([text], bytesTokenizer(), 24, 0.1).eval.slice(0, 2).map((w) => [...w]), 256);
    const reloaded = tf.tidy(() => causalLmLoss(model.forward(ids, adapter.lookup), ids).dataSync()[0]);
    assert.ok(Math.abs(reloaded - pts[2].evalLoss!) < 1e-5, `${reloaded} vs ${pts[2].evalLoss}`);
    ids.dispose();
    adapter.dispose();
    model.dispose();
  });

  it('uses PEFT\'s default targets when targetModules is empty', async () => {
    const s = await openCausalLm(experiment('tiny-llama', [], 1), EXAMPLES);
    assert.deepEqual(s.details.targets.map((t) => t.path), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    s.dispose();
  });

  it('names the layers it has when target modules match nothing', async () => {
    await assert.rejects(openCausalLm(experiment('tiny-llama', ['c_attn'], 2), EXAMPLES), /match no linear layer.*q_proj/);
  });

  it('refuses, before training, GPT-2 windows longer than n_positions and a dataset that is not there', async () => {
    const long = experiment('tiny-gpt2', ['c_attn'], 2);
    if (long.model.kind === 'causal-lm') long.model.dataset.seqLen = 129;
    await assert.rejects(openCausalLm(long, EXAMPLES), /model\.dataset\.seqLen 129 is longer than the model's n_positions 128 \(.*tiny-gpt2\/config\.json\)/);
    const missing = experiment('tiny-gpt2', ['c_attn'], 2);
    if (missing.model.kind === 'causal-lm') missing.model.dataset.path = 'no-such.txt';
    await assert.rejects(openCausalLm(missing, EXAMPLES), /model\.dataset\.path .*no-such\.txt: no such file/);
  });
});
