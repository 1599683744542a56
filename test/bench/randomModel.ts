// Random Hugging Face checkpoints of a given shape (GPT-2 or Llama names and layouts), written from a
// seed: the memory probe and the real-size benchmarks train them. Values are N(0, 0.02) for weights,
// 1 for norm weights and 0 for biases (the initializer_range of both families), so losses stay finite.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HfModelConfig } from '../../src/formats/hfConfig';
import { encodeBf16 } from '../../src/formats/dtype';
import { parseHfConfig } from '../../src/formats/hfConfig';
import type { HostTensor } from '../../src/models/weights';
import { Rng } from '../../src/engine/rng';

/** GPT-2 124M's config.json (n_embd 768, 12 layers, vocab 50257), with overrides. */
export function gpt2ConfigJson(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true, ...over };
}

/**
 * Llama-3.2-1B's config.json (hidden 2048, 16 layers, 32/8 heads, FFN 8192, vocab 128256, tied, θ 500000), with
 * overrides. max_position_embeddings is 2048, not 131072: transformers 4.39 allocates a bool causal mask of
 * max_position_embeddings² (17 GB at 131072), and the benchmarks use 512 positions.
 */
export function llama1bConfigJson(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
    num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, hidden_act: 'silu', max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    rope_theta: 500000, rope_scaling: null, attention_bias: false, mlp_bias: false, tie_word_embeddings: true, torch_dtype: 'bfloat16', ...over,
  };
}

/** Every tensor's name and shape, in checkpoint order. */
export function checkpointShapes(c: HfModelConfig): [string, number[]][] {
  const out: [string, number[]][] = [];
  const H = c.hiddenSize;
  if (c.modelType === 'gpt2') {
    out.push(['transformer.wte.weight', [c.vocabSize, H]], ['transformer.wpe.weight', [c.maxPositions, H]]);
    for (let i = 0; i < c.numLayers; i++) {
      const p = `transformer.h.${i}`;
      out.push(
        [`${p}.ln_1.weight`, [H]], [`${p}.ln_1.bias`, [H]],
        [`${p}.attn.c_attn.weight`, [H, 3 * H]], [`${p}.attn.c_attn.bias`, [3 * H]],
        [`${p}.attn.c_proj.weight`, [H, H]], [`${p}.attn.c_proj.bias`, [H]],
        [`${p}.ln_2.weight`, [H]], [`${p}.ln_2.bias`, [H]],
        [`${p}.mlp.c_fc.weight`, [H, c.intermediateSize]], [`${p}.mlp.c_fc.bias`, [c.intermediateSize]],
        [`${p}.mlp.c_proj.weight`, [c.intermediateSize, H]], [`${p}.mlp.c_proj.bias`, [H]],
      );
    }
    out.push(['transformer.ln_f.weight', [H]], ['transformer.ln_f.bias', [H]]);
    return out;
  }
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  out.push(['model.embed_tokens.weight', [c.vocabSize, H]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.input_layernorm.weight`, [H]],
      [`${p}.self_attn.q_proj.weight`, [q, H]], [`${p}.self_attn.k_proj.weight`, [kv, H]], [`${p}.self_attn.v_proj.weight`, [kv, H]], [`${p}.self_attn.o_proj.weight`, [H, q]],
      [`${p}.post_attention_layernorm.weight`, [H]],
      [`${p}.mlp.gate_proj.weight`, [c.intermediateSize, H]], [`${p}.mlp.up_proj.weight`, [c.intermediateSize, H]], [`${p}.mlp.down_proj.weight`, [H, c.intermediateSize]],
    );
  }
  out.push(['model.norm.weight', [H]]);
  if (!c.tieWordEmbeddings) out.push(['lm_head.weight', [c.vocabSize, H]]);
  return out;
}

/** The checkpoint's tensors as float32, from `seed`. */
export function randomCheckpoint(c: HfModelConfig, seed: number): Record<string, HostTensor> {
  const rng = new Rng(seed);
  const rec: Record<string, HostTensor> = {};
  for (const [name, shape] of checkpointShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (/(ln_\d|ln_f|layernorm|norm)\.weight$/.test(name)) data.fill(1);
    else if (!name.endsWith('.bias')) for (let i = 0; i < n; i++) data[i] = 0.02 * (rng.uniform() * 2 - 1) * 1.7320508;
    rec[name] = { shape, data };
  }
  return rec;
}

export function parseConfigJson(raw: Record<string, unknown>): HfModelConfig {
  return parseHfConfig(JSON.stringify(raw), 'config.json');
}

/**
 * Writes `<dir>/config.json` and `<dir>/model.safetensors` of a random model in `dtype`, one tensor at
 * a time (a 1B-parameter model never exists whole in memory as float32). Returns the file's size.
 */
export function writeRandomModelFolder(dir: string, raw: Record<string, unknown>, dtype: 'F32' | 'BF16', seed: number): number {
  const c = parseConfigJson(raw);
  const shapes = checkpointShapes(c).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const size = dtype === 'F32' ? 4 : 2;
  // transformers reads a safetensors checkpoint only with format "pt" in its metadata.
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * size;
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((8 + text.length) % 8)) % 8);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, torch_dtype: dtype === 'F32' ? 'float32' : 'bfloat16' }));
  const file = path.join(dir, 'model.safetensors');
  const fd = fs.openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(text.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(text, 'utf8'));
    const rng = new Rng(seed);
    for (const [name, shape] of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const norm = /(ln_\d|ln_f|layernorm|norm)\.weight$/.test(name);
      const bias = name.endsWith('.bias');
      // In slices, so that a 0.5 GB embedding needs no 0.5 GB buffer.
      for (let s = 0; s < n; s += 1 << 22) {
        const m = Math.min(1 << 22, n - s);
        const v = new Float32Array(m);
        if (norm) v.fill(1);
        else if (!bias) for (let i = 0; i < m; i++) v[i] = 0.02 * (rng.uniform() * 2 - 1) * 1.7320508;
        const out = dtype === 'F32' ? new Uint8Array(v.buffer) : new Uint8Array(encodeBf16(v).buffer);
        fs.writeSync(fd, out);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}
