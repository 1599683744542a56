// Models with their frozen weights outside the wasm heap (the default on the wasm backend with the
// native kernels): the PEFT fixtures' base and adapted logits, loss, one SGD step's gradients and the
// merge still match transformers + PEFT; and a random GPT-2 / tied-embedding Llama written as F32,
// BF16 and F16 safetensors trains 2 steps with the same losses and LoRA values as the same model held
// in the heap (the stored values widened), through the chunked loss and the tied output layer (SGD,
// whose update is proportional to the gradient).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PEFT_CASES, PEFT_FIXTURES, maxAbsDiff, readReference, useCpu } from './helpers';
import { loadHfFolder, readWeightsFile, weightsFromFiles } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { causalLmLoss, causalLmTrainLoss, idsTensor, type CausalLm } from '../../../src/models/causalLm';
import { parsePeftConfig } from '../../../src/formats/peftConfig';
import { attachPeftAdapter, resolveTargets } from '../../../src/models/peftAdapter';
import { mergeAdapterWeights } from '../../../src/models/merge';
import { trainableFromTensors, initTrainableAdapter } from '../../../src/models/loraTrainable';
import { weightsFromRecord, type WeightSource } from '../../../src/models/weights';
import { serializeSafetensors } from '../../../src/formats/safetensors';
import { encodeBf16, encodeF16 } from '../../../src/formats/dtype';
import { startBackend } from '../../../src/runs/backendSetup';
import { frozenNative } from '../../../src/engine/kernels/frozenWeights';
import { Rng } from '../../../src/engine/rng';
import { createOptimizer } from '../../../src/engine/optim';
import { checkpointShapes, parseConfigJson, randomCheckpoint } from '../../bench/randomModel';

const BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && process.arch === 'x64';

async function weightsOf(file: string): Promise<WeightSource> {
  return weightsFromFiles([{ file, st: await readWeightsFile(file) }]);
}

async function useNative(ctx: Mocha.Context): Promise<void> {
  await startBackend({ prefer: 'wasm', threads: 2 });
  if (!frozenNative()) {
    if (BUILT_HERE) assert.fail('the native kernels with frozen products are not in use: run `npm run build:native`');
    ctx.skip();
  }
}

describe('interop: frozen weights outside the heap', function () {
  this.timeout(120000);
  after(useCpu);

  for (const name of PEFT_CASES) {
    it(`${name}: base and adapted logits, loss, one SGD step and merge match the PEFT fixture`, async function () {
      await useNative(this);
      const dir = path.join(PEFT_FIXTURES, name);
      const ref = readReference(name);
      const folder = await loadHfFolder(path.join(dir, 'base'));
      const model: CausalLm = buildCausalLm(folder.config, folder.weights);
      try {
        const frozen = [...model.linears.values()].filter((l) => l.frozen).length;
        assert.equal(frozen, model.linears.size, 'every linear layer (and the output layer) lives outside the heap');
        const ids = idsTensor(ref.probe_input_ids, 256);
        const base = tf.tidy(() => model.forward(ids).dataSync());
        assert.ok(maxAbsDiff(base, ref.base_logits) < 1e-4, `base logits max |Δ| = ${maxAbsDiff(base, ref.base_logits)}`);
        const config = parsePeftConfig(fs.readFileSync(path.join(dir, 'adapter/adapter_config.json'), 'utf8'));
        const adapter = attachPeftAdapter(model, config, await weightsOf(path.join(dir, 'adapter/adapter_model.safetensors')));
        const [adapted, loss] = tf.tidy(() => {
          const logits = model.forward(ids, adapter.lookup);
          return [logits.dataSync(), causalLmLoss(logits, ids).dataSync()[0]] as const;
        });
        assert.ok(maxAbsDiff(adapted, ref.adapted_logits) < 1e-4, `adapted logits max |Δ| = ${maxAbsDiff(adapted, ref.adapted_logits)}`);
        assert.ok(Math.abs(loss - ref.adapted_loss) < 1e-4);
        // Merge reads Wᵀ, made in the heap on first use from the stored weight.
        const merged = mergeAdapterWeights(model, adapter.modules);
        adapter.dispose();
        const expected = await weightsOf(path.join(dir, 'merged/model.safetensors'));
        for (const [n, t] of merged) assert.ok(maxAbsDiff(t.data, expected.get(n)!.data) < 1e-5, `merged ${n}`);
        // One SGD step's loss and gradients, through the chunked loss and the frozen products.
        const t = trainableFromTensors(model, resolveTargets(model, config.config), config.config.useDora, await weightsOf(path.join(dir, 'init_adapter_params.safetensors')));
        const trainIds = idsTensor(ref.train_input_ids, 256);
        const afterFile = await weightsOf(path.join(dir, 'after_one_sgd_step.safetensors'));
        const after = new Map(afterFile.names().map((k) => [k.replace('.default', ''), afterFile.get(k)!]));
        const names = Object.keys(t.variables);
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => causalLmTrainLoss(model, trainIds, t.lookup), names.map((n) => t.variables[n]));
          assert.ok(Math.abs(value.dataSync()[0] - ref.sgd_step.loss_before) < 1e-4, `loss ${value.dataSync()[0]} vs ${ref.sgd_step.loss_before}`);
          let compared = 0;
          for (const n of names) {
            const stepped = tf.sub(t.variables[n], tf.mul(grads[t.variables[n].name], ref.sgd_step.lr)).dataSync();
            const want = after.get(n);
            if (!want) continue;
            compared++;
            assert.ok(maxAbsDiff(stepped, want.data) < 1e-5, `${n} after one SGD step: max |Δ| = ${maxAbsDiff(stepped, want.data)}`);
          }
          assert.equal(compared, after.size, 'every tensor of after_one_sgd_step.safetensors is compared');
        });
        tf.dispose([ids, trainIds]);
        t.dispose();
      } finally {
        model.dispose();
      }
    });
  }

  for (const [family, dtype] of [['gpt2', 'F32'], ['llama', 'BF16'], ['llama', 'F16']] as const) {
    it(`a random ${family} written as ${dtype}: 2 SGD steps give the in-heap model's losses and LoRA values`, async function () {
      await useNative(this);
      const raw = family === 'gpt2'
        ? { model_type: 'gpt2', vocab_size: 1000, n_embd: 64, n_layer: 2, n_head: 4, n_positions: 64 }
        : { model_type: 'llama', vocab_size: 1000, hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true };
      const hf = parseConfigJson(raw);
      const rec = randomCheckpoint(hf, 3);
      const tensors: Record<string, { dtype: 'F32' | 'BF16' | 'F16'; shape: number[]; data: ArrayBufferView }> = {};
      for (const [n] of checkpointShapes(hf)) {
        const t = rec[n];
        tensors[n] = { dtype, shape: t.shape, data: dtype === 'F32' ? t.data : dtype === 'BF16' ? encodeBf16(t.data) : encodeF16(t.data) };
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-frozen-'));
      try {
        fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw));
        fs.writeFileSync(path.join(dir, 'model.safetensors'), serializeSafetensors(tensors));
        const folder = await loadHfFolder(dir);
        // The same stored values, widened, in the heap (a source without stored bytes).
        const widened: Record<string, { shape: number[]; data: Float32Array }> = {};
        for (const n of folder.weights.names()) widened[n] = folder.weights.get(n)!;
        const run = (model: CausalLm): { losses: number[]; values: Float32Array[] } => {
          const rng = new Rng(5);
          const paths = [...model.linears.keys()].filter((p) => p !== 'lm_head');
          const adapter = initTrainableAdapter(model, paths.map((p) => ({ path: p, r: 4, alpha: 8, scale: 2 })), { init: 'kaiming-uniform', dora: false, uniform: () => rng.uniform(), normal: () => rng.normal() });
          const opt = createOptimizer({ name: 'sgd', lr: 0.5, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 });
          const losses: number[] = [];
          for (let step = 0; step < 2; step++) {
            const ids = tf.tensor2d(Int32Array.from({ length: 2 * 32 }, (_, i) => (i * 31 + step * 7) % 1000), [2, 32], 'int32');
            tf.tidy(() => {
              const { value, grads } = tf.variableGrads(() => causalLmTrainLoss(model, ids, adapter.lookup, { checkpoint: step === 1 }), Object.values(adapter.variables));
              losses.push(value.dataSync()[0]);
              const g: Record<string, tf.Tensor> = {};
              for (const [k, v] of Object.entries(adapter.variables)) g[k] = grads[v.name];
              opt.apply(adapter.variables, g, 0.5);
            });
            ids.dispose();
          }
          const values = Object.values(adapter.variables).map((v) => v.dataSync() as Float32Array);
          adapter.dispose();
          opt.dispose();
          return { losses, values };
        };
        // Nothing kept outside the heap is ever widened to float32 on the host (get() widens).
        const widenedNames = new Set<string>();
        const counting: WeightSource = {
          names: () => folder.weights.names(),
          get: (n) => (widenedNames.add(n), folder.weights.get(n)),
          dtype: (n) => folder.weights.dtype?.(n),
          stored: (n) => folder.weights.stored?.(n),
        };
        const outside = buildCausalLm(folder.config, counting);
        assert.ok(outside.linears.get('lm_head')!.frozen, 'the (tied) output layer is read outside the heap');
        const a = run(outside);
        outside.dispose();
        assert.deepEqual([...widenedNames].filter((n) => /(wte|embed_tokens|attn\.c_attn|c_proj|c_fc|_proj)\.weight$/.test(n)), [], 'frozen weights were widened');
        const inHeap = buildCausalLm(folder.config, weightsFromRecord(widened));
        assert.equal(inHeap.linears.get('lm_head')!.frozen, undefined);
        const b = run(inHeap);
        inHeap.dispose();
        assert.ok(a.losses.every(Number.isFinite));
        for (let i = 0; i < 2; i++) assert.ok(Math.abs(a.losses[i] - b.losses[i]) <= 1e-6 * Math.abs(b.losses[i]), `step ${i + 1}: loss ${a.losses[i]} vs ${b.losses[i]} in the heap`);
        a.values.forEach((v, i) => assert.ok(maxAbsDiff(v, b.values[i]) <= 1e-6, `LoRA tensor ${i} differs by ${maxAbsDiff(v, b.values[i])}`));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
