// `lora-lab convert --to gguf` checked against a real llama.cpp (node-llama-cpp's prebuilt CPU build):
// tiny random Llama / Qwen2 / GPT-2 models (written here as safetensors; GPT-2 also the example) are
// converted to model GGUFs and random PEFT adapters to llama.cpp's adapter GGUF. llama.cpp's
// next-token distribution at every position, with and without the adapter, must match LoRA Lab's
// logits (1e-3 for F32 files). node-llama-cpp returns probabilities, not raw logits, so log p is compared
// with LoRA Lab's log-softmax (logits up to their per-position constant). The KV cache is F32: llama.cpp
// defaults to F16, whose rounding alone exceeds the tolerance.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadHfFolder, loadPeftAdapterDir } from '../../../src/io/hfFolder';
import { writeGgufFile } from '../../../src/io/ggufFile';
import { adapterFactors } from '../../../src/models/adapterFactors';
import { loadPeftModel } from '../../../src/models/peftAdapter';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { loraToGguf } from '../../../src/formats/gguf/loraToGguf';
import { modelToGguf } from '../../../src/formats/gguf/modelToGguf';
import { llamaCppArch } from '../../../src/formats/gguf/llamaCppNames';
import type { GgufTensorType } from '../../../src/formats/gguf/gguf';
import { useCpu } from './helpers';
import { LLAMA, byteLevelBpeTokenizer, gpt2Modules, llamaModules, only, writeAdapter, writeTinyGpt2, writeTinyLlama } from './tinyCheckpoints';
import { hfTokenizer } from '../../../src/models/textData';

const ROOT = path.resolve(__dirname, '../../..');

function cli(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** LoRA Lab's log-softmax over the vocabulary, [seq, vocab] for one row of ids. */
async function loraLabLogProbs(modelDir: string, adapterDir: string | undefined, ids: number[]): Promise<Float32Array[]> {
  const folder = await loadHfFolder(modelDir);
  const ad = adapterDir ? await loadPeftAdapterDir(adapterDir) : undefined;
  const loaded = ad ? loadPeftModel(folder.config, folder.weights, ad.parsed, ad.weights) : undefined;
  const model = loaded?.model ?? buildCausalLm(folder.config, folder.weights);
  try {
    const lp = tf.tidy(() => tf.logSoftmax(model.forward(idsTensor([ids], folder.config.vocabSize), loaded?.adapter.lookup)));
    const data = (await lp.data()) as Float32Array;
    const V = lp.shape[2]!;
    lp.dispose();
    return ids.map((_, t) => data.slice(t * V, (t + 1) * V));
  } finally {
    loaded?.adapter.dispose();
    model.dispose();
  }
}

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;

/** llama.cpp's log p of every token at every position (node-llama-cpp, CPU, one thread). */
async function llamaCppLogProbs(nlc: NodeLlamaCpp, llama: Awaited<ReturnType<NodeLlamaCpp['getLlama']>>, modelFile: string, loraFile: string | undefined, ids: number[], vocab: number): Promise<Float64Array[]> {
  const model = await llama.loadModel({ modelPath: modelFile, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false, ...(loraFile ? { lora: { adapters: [{ filePath: loraFile, scale: 1 }] } } : {}) });
    try {
      const seq = ctx.getSequence();
      const input = ids.map((t) => [t as Token, { generateNext: { probabilities: true } }] as const);
      const res = await seq.controlledEvaluate(input.map(([t, o]) => [t, o]));
      return res.map((r, t) => {
        const p = r?.next.probabilities;
        assert.ok(p && p.size === vocab, `position ${t}: llama.cpp gave ${p?.size} probabilities for a vocabulary of ${vocab}`);
        const out = new Float64Array(vocab);
        for (const [tok, prob] of p) out[tok] = Math.log(prob);
        return out;
      });
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
    void nlc;
  }
}

function maxDiff(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let m = 0;
  a.forEach((row, t) => {
    for (let i = 0; i < row.length; i++) m = Math.max(m, Math.abs(row[i] - b[t][i]));
  });
  return m;
}

describe('interop: GGUF against llama.cpp (node-llama-cpp)', function () {
  this.timeout(120000);
  let tmp: string;
  let nlc: NodeLlamaCpp | undefined;
  let llama: Awaited<ReturnType<NodeLlamaCpp['getLlama']>> | undefined;
  let why = '';
  before(async function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-gguf-'));
    await useCpu();
    try {
      nlc = await import('node-llama-cpp');
      llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
    } catch (e) {
      why = (e as Error).message;
    }
  });
  after(async () => {
    await llama?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  // tol 1e-3 for F32 files. GPT-2 2e-3: llama.cpp's CPU GELU looks its input up in an F16 table
  // (ggml-cpu vec.h, GGML_GELU_FP16), an F16 rounding of every activation that LoRA Lab's exact GELU
  // does not have. F16 files round every weight; their bound is wider but still catches a wrong layout.
  interface Case {
    name: string;
    write?: (dir: string) => void;
    model?: string;
    modules: Record<string, [number, number]>;
    embeddings?: Record<string, [number, number]>;
    modelType: GgufTensorType;
    adapterType: GgufTensorType;
    tol: number;
    adapterCfg: Record<string, unknown>;
  }
  const cases: Case[] = [
    // rsLoRA and an alpha_pattern: modules differ in scale, which the single adapter.lora.alpha must absorb.
    {
      name: 'Llama (GQA, attention bias, untied head), all-linear rsLoRA with alpha_pattern',
      write: (dir) => writeTinyLlama(dir),
      modules: llamaModules(),
      modelType: 'F32',
      adapterType: 'F32',
      tol: 1e-3,
      adapterCfg: { r: 8, lora_alpha: 16, use_rslora: true, alpha_pattern: { down_proj: 4 }, target_modules: 'all-linear' },
    },
    {
      name: "Llama 3.1 rope scaling (llama.cpp's rope_freqs), LoRA on lm_head, q_proj, k_proj",
      write: (dir) => writeTinyLlama(dir, {}, { attentionBias: false, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } }),
      modules: only(llamaModules({}, true), ['q_proj', 'k_proj', 'lm_head']),
      modelType: 'F32',
      adapterType: 'F32',
      tol: 1e-3,
      adapterCfg: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'lm_head'] },
    },
    {
      name: 'Llama, LoRA on the token embedding (llama.cpp adds it to the lookup) and on v_proj, down_proj',
      write: (dir) => writeTinyLlama(dir),
      modules: only(llamaModules(), ['v_proj', 'down_proj']),
      embeddings: { 'model.embed_tokens': [LLAMA.vocab, LLAMA.hidden] },
      modelType: 'F32',
      adapterType: 'F32',
      tol: 1e-3,
      adapterCfg: { r: 4, lora_alpha: 8, target_modules: ['embed_tokens', 'v_proj', 'down_proj'] },
    },
    {
      name: 'Qwen2 (q/k/v biases, tied embeddings: llama.cpp\'s qwen2, no row reordering)',
      write: (dir) => writeTinyLlama(dir, {}, { modelType: 'qwen2', tied: true }),
      modules: only(llamaModules(), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj']),
      modelType: 'F32',
      adapterType: 'F32',
      tol: 1e-3,
      adapterCfg: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] },
    },
    {
      name: 'GPT-2 (Conv1D, fan_in_fan_out), c_attn/c_proj/c_fc',
      model: path.join(ROOT, 'examples/models/tiny-gpt2'),
      modules: gpt2Modules(),
      modelType: 'F32',
      adapterType: 'F32',
      tol: 2e-3,
      adapterCfg: { r: 4, lora_alpha: 8, fan_in_fan_out: true, target_modules: ['c_attn', 'c_proj', 'c_fc'] },
    },
    {
      name: 'Llama as F16 model and F16 adapter',
      write: (dir) => writeTinyLlama(dir),
      modules: only(llamaModules(), ['q_proj', 'v_proj']),
      modelType: 'F16',
      adapterType: 'F16',
      tol: 3e-2,
      adapterCfg: { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] },
    },
  ];

  for (const [n, c] of cases.entries()) {
    it(`${c.name}: llama.cpp's log-probabilities equal LoRA Lab's within ${c.tol}, with and without the adapter`, async function () {
      if (!llama || !nlc) {
        console.log(`      skipped: node-llama-cpp cannot load llama.cpp here (${why})`);
        this.skip();
      }
      const dir = path.join(tmp, `case-${n}`);
      const modelDir = c.model ?? path.join(dir, 'base');
      c.write?.(modelDir);
      const adapterDir = path.join(dir, 'adapter');
      writeAdapter(adapterDir, c.modules, c.adapterCfg, 11, c.embeddings);
      const folder = await loadHfFolder(modelDir);
      const arch = llamaCppArch(folder.config);
      const modelFile = path.join(dir, 'model.gguf');
      await writeGgufFile(modelFile, modelToGguf(folder.config, folder.weights, { type: c.modelType }).file);
      const ad = await loadPeftAdapterDir(adapterDir);
      const { factors, embeddings } = adapterFactors(folder.config, folder.weights, ad.parsed, ad.weights, { target: 'GGUF' });
      const lora = loraToGguf(arch, folder.config, factors, { type: c.adapterType, embeddings });
      assert.equal(lora.modules.length, Object.keys(c.modules).length + Object.keys(c.embeddings ?? {}).length);
      const worst = Math.max(...lora.modules.map((m) => m.relError));
      assert.ok(worst < (c.adapterType === 'F32' ? 1e-6 : 2e-3), `conversion error ${worst}`);
      const loraFile = path.join(dir, 'adapter.gguf');
      await writeGgufFile(loraFile, lora.file);

      const ids = [3, 250, 17, 99, 42, 7, 130, 64, 201, 5, 18, 77];
      const V = folder.config.vocabSize;
      const baseRef = await loraLabLogProbs(modelDir, undefined, ids);
      const adaptedRef = await loraLabLogProbs(modelDir, adapterDir, ids);
      const base = await llamaCppLogProbs(nlc!, llama!, modelFile, undefined, ids, V);
      const adapted = await llamaCppLogProbs(nlc!, llama!, modelFile, loraFile, ids, V);
      const dBase = maxDiff(base, baseRef);
      const dAdapted = maxDiff(adapted, adaptedRef);
      const effect = maxDiff(adaptedRef, baseRef);
      console.log(`      ${c.name}: max |Δ log p| llama.cpp vs LoRA Lab: base ${dBase.toExponential(2)}, adapter ${dAdapted.toExponential(2)} (the adapter itself moves log p by up to ${effect.toFixed(3)})`);
      assert.ok(effect > 0.05, `the adapter should change the outputs (max |Δ| ${effect})`);
      assert.ok(dBase < c.tol, `base: max |Δ log p| ${dBase}`);
      assert.ok(dAdapted < c.tol, `with the adapter: max |Δ log p| ${dAdapted}`);
    });
  }
  it('a byte-level BPE tokenizer.json travels into the GGUF: llama.cpp tokenizes text as @huggingface/tokenizers does', async function () {
    if (!llama || !nlc) this.skip();
    const dir = path.join(tmp, 'bpe');
    const { json, vocabSize } = byteLevelBpeTokenizer();
    writeTinyGpt2(dir, vocabSize, vocabSize - 1);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), json);
    const folder = await loadHfFolder(dir);
    const { file, notes } = modelToGguf(folder.config, folder.weights, { type: 'F32', tokenizerJson: folder.tokenizerJson });
    assert.deepEqual(notes, []);
    assert.equal(file.metadata.get('tokenizer.ggml.pre')?.value, 'gpt-2');
    assert.equal(file.metadata.get('tokenizer.ggml.eos_token_id')?.value, vocabSize - 1);
    const modelFile = path.join(dir, 'model.gguf');
    await writeGgufFile(modelFile, file);
    const hf = hfTokenizer(json);
    const model = await llama!.loadModel({ modelPath: modelFile, gpuLayers: 0 });
    try {
      let merged = 0;
      for (const text of ['Hello there, the wind is in the reeds and the sea.', ' the theater is in Winnipeg', 'naïve café ☕ 12345', 'line\nbreak\ttab  two spaces']) {
        const want = hf.encode(text);
        merged += want.filter((id) => id >= 256).length;
        assert.deepEqual([...model.tokenize(text)], want, JSON.stringify(text));
        assert.equal(model.detokenize(model.tokenize(text)), text);
      }
      assert.ok(merged >= 10, `the merges are used (${merged} merged tokens)`);
      assert.equal(model.tokens.eos, vocabSize - 1);
      assert.equal(model.detokenize([model.tokens.eos!], true), '<|endoftext|>');
    } finally {
      await model.dispose();
    }
  });
  it('an adapter LoRA Lab trains (lora-lab train), converted from its run folder by lora-lab convert, runs in llama.cpp with the same outputs', async function () {
    if (!llama || !nlc) this.skip();
    const examples = path.join(ROOT, 'examples');
    const dir = path.join(tmp, 'trained');
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, 'tiny.lora.yaml');
    fs.writeFileSync(
      config,
      [
        'name: tiny',
        'kind: causal-lm',
        'model:',
        `  modelPath: ${JSON.stringify(path.join(examples, 'models/tiny-llama'))}`,
        '  dataset:',
        `    path: ${JSON.stringify(path.join(examples, 'models/lora-notes.txt'))}`,
        '    seqLen: 32',
        '    tokenizer: bytes',
        'lora: { r: 4, alpha: 8, targetModules: [q_proj, v_proj, o_proj] }',
        'optimizer: { name: adamw, lr: 0.05 }',
        'training: { steps: 4, batchSize: 2, evalEvery: 4 }',
        '',
      ].join('\n'),
    );
    const train = cli('train', config, '--out', path.join(dir, 'runs'), '--backend', 'cpu');
    assert.equal(train.code, 0, train.err);
    const runDir = path.join(dir, 'runs', fs.readdirSync(path.join(dir, 'runs'))[0]);
    const modelDir = path.join(examples, 'models/tiny-llama');
    const modelFile = path.join(dir, 'tiny-llama.gguf');
    const loraFile = path.join(dir, 'tiny-adapter.gguf');
    const m = cli('convert', modelDir, '--to', 'gguf', '--out', modelFile, '--dtype', 'f32');
    assert.equal(m.code, 0, m.err);
    // No --model: the run's adapter names its base folder (base_model_name_or_path).
    const a = cli('convert', runDir, '--to', 'gguf', '--out', loraFile);
    assert.equal(a.code, 0, a.err);
    assert.match(a.out, /max rel\. ΔW error 0 over 6 module\(s\)/);
    const ids = [76, 111, 82, 65, 32, 108, 97, 98, 10, 33, 120, 200];
    const baseRef = await loraLabLogProbs(modelDir, undefined, ids);
    const adaptedRef = await loraLabLogProbs(modelDir, path.join(runDir, 'adapter'), ids);
    const base = await llamaCppLogProbs(nlc!, llama!, modelFile, undefined, ids, 256);
    const adapted = await llamaCppLogProbs(nlc!, llama!, modelFile, loraFile, ids, 256);
    const effect = maxDiff(adaptedRef, baseRef);
    const dBase = maxDiff(base, baseRef);
    const dAdapted = maxDiff(adapted, adaptedRef);
    console.log(`      trained by LoRA Lab: max |Δ log p| llama.cpp vs LoRA Lab: base ${dBase.toExponential(2)}, adapter ${dAdapted.toExponential(2)} (training moved log p by up to ${effect.toFixed(3)})`);
    assert.ok(effect > 0.01, `training should change the outputs (max |Δ| ${effect})`);
    assert.ok(dBase < 1e-3 && dAdapted < 1e-3, `base ${dBase}, adapted ${dAdapted}`);
  });
});
