// Tiny checkpoints written by the tests: a random Llama as a Hugging Face folder and random PEFT
// adapters for it (or for the tiny GPT-2 example), seeded so every run writes the same bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeSafetensors, type TensorToWrite } from '../../../src/formats/safetensors';

/** mulberry32 + Box-Muller: the same random model on every run. */
export function rng(seed: number) {
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

export function writeFolder(dir: string, json: Record<string, unknown>, jsonName: string, weightsName: string, tensors: Record<string, { shape: number[]; data: Float32Array }>) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, jsonName), JSON.stringify(json, null, 2));
  const out: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(tensors)) out[k] = { dtype: 'F32', shape: t.shape, data: t.data };
  fs.writeFileSync(path.join(dir, weightsName), serializeSafetensors(out));
}

export const LLAMA = { hidden: 64, heads: 4, kvHeads: 2, ff: 96, layers: 2, vocab: 272, positions: 64 };

export interface TinyLlamaOptions {
  /** model_type: qwen2 has biases on q/k/v only; llama's attention_bias covers o too. */
  modelType?: 'llama' | 'qwen2';
  attentionBias?: boolean;
  tied?: boolean;
  ropeScaling?: Record<string, unknown>;
}

/** A random Llama-family model with grouped-query attention (untied lm_head and attention biases by default). */
export function writeTinyLlama(dir: string, size: Partial<typeof LLAMA> = {}, opts: TinyLlamaOptions = {}) {
  const r = rng(7);
  const L = { ...LLAMA, ...size };
  const { hidden: H, heads, kvHeads, ff, layers, vocab: V } = L;
  const modelType = opts.modelType ?? 'llama';
  const bias = opts.attentionBias ?? true;
  const hd = H / heads;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const w = (name: string, shape: number[], std: number) => (t[name] = { shape, data: r(shape.reduce((a, b) => a * b, 1), std) });
  const norm = (name: string) => (t[name] = { shape: [H], data: Float32Array.from(r(H, 0.1), (x) => 1 + x) });
  w('model.embed_tokens.weight', [V, H], 1);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    norm(`${p}.input_layernorm.weight`);
    norm(`${p}.post_attention_layernorm.weight`);
    w(`${p}.self_attn.q_proj.weight`, [heads * hd, H], 0.25);
    w(`${p}.self_attn.k_proj.weight`, [kvHeads * hd, H], 0.25);
    w(`${p}.self_attn.v_proj.weight`, [kvHeads * hd, H], 0.15);
    w(`${p}.self_attn.o_proj.weight`, [H, heads * hd], 0.15);
    if (bias) {
      w(`${p}.self_attn.q_proj.bias`, [heads * hd], 0.1);
      w(`${p}.self_attn.k_proj.bias`, [kvHeads * hd], 0.1);
      w(`${p}.self_attn.v_proj.bias`, [kvHeads * hd], 0.1);
      if (modelType !== 'qwen2') w(`${p}.self_attn.o_proj.bias`, [H], 0.1);
    }
    w(`${p}.mlp.gate_proj.weight`, [ff, H], 0.15);
    w(`${p}.mlp.up_proj.weight`, [ff, H], 0.15);
    w(`${p}.mlp.down_proj.weight`, [H, ff], 0.12);
  }
  norm('model.norm.weight');
  if (!opts.tied) w('lm_head.weight', [V, H], 0.3);
  const config = {
    architectures: [modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: modelType,
    hidden_size: H,
    intermediate_size: ff,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    num_hidden_layers: layers,
    vocab_size: V,
    max_position_embeddings: L.positions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: opts.ropeScaling ?? null,
    hidden_act: 'silu',
    attention_bias: bias,
    tie_word_embeddings: !!opts.tied,
    torch_dtype: 'float32',
  };
  writeFolder(dir, config, 'config.json', 'model.safetensors', t);
}

/** A random PEFT LoRA on `modules` (paths → [in, out]) of rank r; B is not zero, so ΔW matters. */
export function writeAdapter(dir: string, modules: Record<string, [number, number]>, cfg: Record<string, unknown>, seed: number, embeddings: Record<string, [number, number]> = {}) {
  const r = rng(seed);
  const rank = cfg.r as number;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  // PEFT's lora.Embedding (paths → [rows, dim]): lora_embedding_A [r, rows], lora_embedding_B [dim, r], no ".weight".
  for (const [p, [rows, dim]] of Object.entries(embeddings)) {
    t[`base_model.model.${p}.lora_embedding_A`] = { shape: [rank, rows], data: r(rank * rows, 1) };
    t[`base_model.model.${p}.lora_embedding_B`] = { shape: [dim, rank], data: r(dim * rank, 0.08) };
  }
  for (const [p, [inF, outF]] of Object.entries(modules)) {
    t[`base_model.model.${p}.lora_A.weight`] = { shape: [rank, inF], data: r(rank * inF, 1 / Math.sqrt(inF)) };
    t[`base_model.model.${p}.lora_B.weight`] = { shape: [outF, rank], data: r(outF * rank, 0.08) };
  }
  writeFolder(dir, { peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: null, lora_dropout: 0, bias: 'none', ...cfg }, 'adapter_config.json', 'adapter_model.safetensors', t);
}

/** Every linear layer of writeTinyLlama's model (paths → [in, out]), lm_head included when `head`. */
export function llamaModules(size: Partial<typeof LLAMA> = {}, head = false): Record<string, [number, number]> {
  const L = { ...LLAMA, ...size };
  const { hidden: H, heads, kvHeads, ff } = L;
  const hd = H / heads;
  const m: Record<string, [number, number]> = {};
  for (let i = 0; i < L.layers; i++) {
    const p = `model.layers.${i}`;
    m[`${p}.self_attn.q_proj`] = [H, heads * hd];
    m[`${p}.self_attn.k_proj`] = [H, kvHeads * hd];
    m[`${p}.self_attn.v_proj`] = [H, kvHeads * hd];
    m[`${p}.self_attn.o_proj`] = [heads * hd, H];
    m[`${p}.mlp.gate_proj`] = [H, ff];
    m[`${p}.mlp.up_proj`] = [H, ff];
    m[`${p}.mlp.down_proj`] = [ff, H];
  }
  if (head) m.lm_head = [H, L.vocab];
  return m;
}

/** The entries of `modules` whose last path part is one of `names`. */
export function only(modules: Record<string, [number, number]>, names: string[]): Record<string, [number, number]> {
  return Object.fromEntries(Object.entries(modules).filter(([p]) => names.includes(p.split('.').pop()!)));
}

export function gpt2Modules(): Record<string, [number, number]> {
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

/** A random GPT-2 (Conv1D weights [in, out], tied head) with `vocab` tokens. */
export function writeTinyGpt2(dir: string, vocab: number, eos?: number) {
  const r = rng(9);
  const H = 32;
  const P = 64;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const w = (name: string, shape: number[], std: number) => (t[name] = { shape, data: r(shape.reduce((a, b) => a * b, 1), std) });
  const ln = (name: string) => {
    t[`${name}.weight`] = { shape: [H], data: Float32Array.from(r(H, 0.1), (x) => 1 + x) };
    w(`${name}.bias`, [H], 0.05);
  };
  w('transformer.wte.weight', [vocab, H], 0.5);
  w('transformer.wpe.weight', [P, H], 0.1);
  for (let i = 0; i < 2; i++) {
    const p = `transformer.h.${i}`;
    ln(`${p}.ln_1`);
    ln(`${p}.ln_2`);
    w(`${p}.attn.c_attn.weight`, [H, 3 * H], 0.2);
    w(`${p}.attn.c_attn.bias`, [3 * H], 0.05);
    w(`${p}.attn.c_proj.weight`, [H, H], 0.2);
    w(`${p}.attn.c_proj.bias`, [H], 0.05);
    w(`${p}.mlp.c_fc.weight`, [H, 4 * H], 0.2);
    w(`${p}.mlp.c_fc.bias`, [4 * H], 0.05);
    w(`${p}.mlp.c_proj.weight`, [4 * H, H], 0.1);
    w(`${p}.mlp.c_proj.bias`, [H], 0.05);
  }
  ln('transformer.ln_f');
  const config = { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: vocab, n_positions: P, n_embd: H, n_layer: 2, n_head: 4, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true, bos_token_id: eos ?? null, eos_token_id: eos ?? null };
  writeFolder(dir, config, 'config.json', 'model.safetensors', t);
}

/**
 * A byte-level BPE tokenizer.json as GPT-2's (the 256 byte symbols, then one token per merge, then
 * <|endoftext|>), with merges for a few common English pieces.
 */
export function byteLevelBpeTokenizer(): { json: string; vocabSize: number } {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const vocab: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(printable(b) ? b : 256 + extra++)] = b;
  const merges = [['Ġ', 't'], ['h', 'e'], ['t', 'he'], ['Ġt', 'he'], ['Ġ', 'a'], ['i', 'n'], ['Ġ', 's'], ['e', 'r'], ['o', 'n'], ['Ġ', 'w'], ['r', 'e'], ['Ġw', 'in'], ['Ġa', 'n'], ['Ġan', 'd'], ['i', 's'], ['Ġ', 'is']];
  for (const [a, b] of merges) vocab[a + b] ??= Object.keys(vocab).length;
  const eot = Object.keys(vocab).length;
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: eot, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: merges.map((m) => m.join(' ')) },
  };
  return { json: JSON.stringify(json), vocabSize: eot + 1 };
}
