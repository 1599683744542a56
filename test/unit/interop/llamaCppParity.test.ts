// `lora-lab convert --to gguf` checked against a real llama.cpp (node-llama-cpp's prebuilt CPU build):
// a tiny random Llama (written here as safetensors) and the tiny GPT-2 example, each converted to a
// model GGUF, with a random PEFT adapter converted to llama.cpp's adapter GGUF. llama.cpp's
// next-token distribution at every position, with and without the adapter, must match LoRA Lab's
// logits within 1e-3. node-llama-cpp returns probabilities, not raw logits, so log p is compared
// with LoRA Lab's log-softmax (logits up to their per-position constant). The KV cache is F32 (llama.cpp
// defaults to F16, which alone moves log p by ~1e-2).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';
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

const ROOT = path.resolve(__dirname, '../../..');

/** mulberry32 + Box-Muller: the same random model on every run. */
function rng(seed: number) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n: number, std: number) => Float32Array.from({ length: n }, () => std * Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u()));
}

function writeFolder(dir: string, json: Record<string, unknown>, jsonName: string, weightsName: string, tensors: Record<string, { shape: number[]; data: Float32Array }>) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, jsonName), JSON.stringify(json, null, 2));
  const out: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(tensors)) out[k] = { dtype: 'F32', shape: t.shape, data: t.data };
  fs.writeFileSync(path.join(dir, weightsName), serializeSafetensors(out));
}

const LLAMA = { hidden: 64, heads: 4, kvHeads: 2, ff: 96, layers: 2, vocab: 272, positions: 64 };

/** A random Llama with grouped-query attention, an untied lm_head and biases on q/k/v/o (attention_bias). */
function writeTinyLlama(dir: string) {
  const r = rng(7);
  const { hidden: H, heads, kvHeads, ff, layers, vocab: V } = LLAMA;
  const hd = H / heads;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const w = (name: string, shape: number[], std: number) => (t[name] = { shape, data: r(shape.reduce((a, b) => a * b, 1), std) });
  w('model.embed_tokens.weight', [V, H], 1);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    t[`${p}.input_layernorm.weight`] = { shape: [H], data: Float32Array.from(r(H, 0.1), (x) => 1 + x) };
    t[`${p}.post_attention_layernorm.weight`] = { shape: [H], data: Float32Array.from(r(H, 0.1), (x) => 1 + x) };
    w(`${p}.self_attn.q_proj.weight`, [heads * hd, H], 0.25);
    w(`${p}.self_attn.q_proj.bias`, [heads * hd], 0.1);
    w(`${p}.self_attn.k_proj.weight`, [kvHeads * hd, H], 0.25);
    w(`${p}.self_attn.k_proj.bias`, [kvHeads * hd], 0.1);
    w(`${p}.self_attn.v_proj.weight`, [kvHeads * hd, H], 0.15);
    w(`${p}.self_attn.v_proj.bias`, [kvHeads * hd], 0.1);
    w(`${p}.self_attn.o_proj.weight`, [H, heads * hd], 0.15);
    w(`${p}.self_attn.o_proj.bias`, [H], 0.1);
    w(`${p}.mlp.gate_proj.weight`, [ff, H], 0.15);
    w(`${p}.mlp.up_proj.weight`, [ff, H], 0.15);
    w(`${p}.mlp.down_proj.weight`, [H, ff], 0.12);
  }
  t['model.norm.weight'] = { shape: [H], data: Float32Array.from(r(H, 0.1), (x) => 1 + x) };
  w('lm_head.weight', [V, H], 0.3);
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: H,
    intermediate_size: ff,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    num_hidden_layers: layers,
    vocab_size: V,
    max_position_embeddings: LLAMA.positions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    attention_bias: true,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
  };
  writeFolder(dir, config, 'config.json', 'model.safetensors', t);
}

/** A random PEFT LoRA on `modules` (paths → [in, out]) of rank r; B is not zero, so ΔW matters. */
function writeAdapter(dir: string, modules: Record<string, [number, number]>, cfg: Record<string, unknown>, seed: number) {
  const r = rng(seed);
  const rank = cfg.r as number;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [p, [inF, outF]] of Object.entries(modules)) {
    t[`base_model.model.${p}.lora_A.weight`] = { shape: [rank, inF], data: r(rank * inF, 1 / Math.sqrt(inF)) };
    t[`base_model.model.${p}.lora_B.weight`] = { shape: [outF, rank], data: r(outF * rank, 0.08) };
  }
  writeFolder(dir, { peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: null, lora_dropout: 0, bias: 'none', ...cfg }, 'adapter_config.json', 'adapter_model.safetensors', t);
}

function llamaModules(): Record<string, [number, number]> {
  const { hidden: H, heads, kvHeads, ff } = LLAMA;
  const hd = H / heads;
  const m: Record<string, [number, number]> = {};
  for (let i = 0; i < LLAMA.layers; i++) {
    const p = `model.layers.${i}`;
    m[`${p}.self_attn.q_proj`] = [H, heads * hd];
    m[`${p}.self_attn.k_proj`] = [H, kvHeads * hd];
    m[`${p}.self_attn.v_proj`] = [H, kvHeads * hd];
    m[`${p}.self_attn.o_proj`] = [heads * hd, H];
    m[`${p}.mlp.gate_proj`] = [H, ff];
    m[`${p}.mlp.up_proj`] = [H, ff];
    m[`${p}.mlp.down_proj`] = [ff, H];
  }
  return m;
}

function gpt2Modules(): Record<string, [number, number]> {
  const H = 64;
  const m: Record<string, [number, number]> = {};
  for (let i = 0; i < 2; i++) {
    m[`transformer.h.${i}.attn.c_attn`] = [H, 3 * H];
    m[`transformer.h.${i}.attn.c_proj`] = [H, H];
    m[`transformer.h.${i}.mlp.c_fc`] = [H, 4 * H];
    m[`transformer.h.${i}.mlp.c_proj`] = [4 * H, H];
  }
  return m;
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

  // tol: Llama 1e-3. GPT-2 2e-3: llama.cpp's CPU GELU looks its input up in an F16 table (ggml-cpu
  // vec.h, GGML_GELU_FP16), which alone puts the base model ~8.5e-4 from an exact F32 GELU.
  const cases: { name: string; family: 'llama' | 'gpt2'; dtype: GgufTensorType; tol: number; adapterCfg: Record<string, unknown> }[] = [
    // rsLoRA and an alpha_pattern: modules differ in scale, which the single adapter.lora.alpha must absorb.
    { name: 'Llama (GQA, attention bias, untied head), all-linear rsLoRA with alpha_pattern', family: 'llama', dtype: 'F32', tol: 1e-3, adapterCfg: { r: 8, lora_alpha: 16, use_rslora: true, alpha_pattern: { down_proj: 4 }, target_modules: 'all-linear' } },
    { name: 'GPT-2 (Conv1D, fan_in_fan_out), c_attn/c_proj/c_fc', family: 'gpt2', dtype: 'F32', tol: 2e-3, adapterCfg: { r: 4, lora_alpha: 8, fan_in_fan_out: true, target_modules: ['c_attn', 'c_proj', 'c_fc'] } },
  ];

  for (const c of cases) {
    it(`${c.name}: llama.cpp's log-probabilities equal LoRA Lab's within ${c.tol}, with and without the adapter`, async function () {
      if (!llama || !nlc) {
        console.log(`      skipped: node-llama-cpp cannot load llama.cpp here (${why})`);
        this.skip();
      }
      const dir = path.join(tmp, c.family);
      const modelDir = c.family === 'llama' ? path.join(dir, 'base') : path.join(ROOT, 'examples/models/tiny-gpt2');
      if (c.family === 'llama') writeTinyLlama(modelDir);
      const adapterDir = path.join(dir, 'adapter');
      writeAdapter(adapterDir, c.family === 'llama' ? llamaModules() : gpt2Modules(), c.adapterCfg, 11);
      const folder = await loadHfFolder(modelDir);
      const arch = llamaCppArch(folder.config);
      const modelFile = path.join(dir, 'model.gguf');
      await writeGgufFile(modelFile, modelToGguf(folder.config, folder.weights, { type: 'F32' }).file);
      const ad = await loadPeftAdapterDir(adapterDir);
      const { factors } = adapterFactors(folder.config, folder.weights, ad.parsed, ad.weights, { target: 'GGUF' });
      const lora = loraToGguf(arch, folder.config, factors, { type: c.dtype });
      assert.ok(lora.modules.every((m) => m.relError < 1e-6), `conversion error ${Math.max(...lora.modules.map((m) => m.relError))}`);
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
      console.log(`      ${c.family}: max |Δ log p| llama.cpp vs LoRA Lab: base ${dBase.toExponential(2)}, adapter ${dAdapted.toExponential(2)} (the adapter itself moves log p by up to ${effect.toFixed(3)})`);
      assert.ok(effect > 0.05, `the adapter should change the outputs (max |Δ| ${effect})`);
      assert.ok(dBase < c.tol, `base: max |Δ log p| ${dBase}`);
      assert.ok(dAdapted < c.tol, `with the adapter: max |Δ log p| ${dAdapted}`);
    });
  }
});
