// Writes the tiny model folders used by the causal-lm example (examples/models/tiny-gpt2, tiny-llama):
// randomly initialised like transformers does (normal(0, 0.02) weights, unit norms, zero biases), from a
// fixed seed through the engine's Rng, saved with our own safetensors writer. Re-running gives the same
// bytes. Run: npx tsx examples/models/generate.ts
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/engine/rng';
import { serializeSafetensors, type TensorToWrite } from '../../src/formats/safetensors';
import { encodeBf16 } from '../../src/formats/dtype';

const here = __dirname;
const GAIN = 8;

function normal(rng: Rng, shape: number[], std = 0.02): Float32Array {
  return rng.normalArray(shape.reduce((a, b) => a * b, 1), std);
}
const ones = (n: number) => new Float32Array(n).fill(1);
const zeros = (n: number) => new Float32Array(n);

function write(dir: string, config: object, tensors: Record<string, TensorToWrite>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }));
}

function gpt2(): void {
  const rng = Rng.derive(1234, 'tiny-gpt2');
  const H = 64, L = 2, V = 256, P = 128;
  const f32 = (shape: number[], data: Float32Array): TensorToWrite => ({ dtype: 'F32', shape, data });
  const t: Record<string, TensorToWrite> = {
    'transformer.wte.weight': f32([V, H], normal(rng, [V, H])),
    'transformer.wpe.weight': f32([P, H], normal(rng, [P, H], 0.01)),
    // A final-norm gain well above 1 stands in for pretraining: it lets the frozen tied head reach
    // logits of a useful size, so a LoRA on the blocks alone can fit text (with gain 1 and 0.02-scale
    // embeddings the logits stay within about ±1 and the loss cannot fall far below ln 256).
    'transformer.ln_f.weight': f32([H], ones(H).fill(GAIN)),
    'transformer.ln_f.bias': f32([H], zeros(H)),
  };
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}`;
    t[`${p}.ln_1.weight`] = f32([H], ones(H));
    t[`${p}.ln_1.bias`] = f32([H], zeros(H));
    t[`${p}.ln_2.weight`] = f32([H], ones(H));
    t[`${p}.ln_2.bias`] = f32([H], zeros(H));
    t[`${p}.attn.c_attn.weight`] = f32([H, 3 * H], normal(rng, [H, 3 * H]));
    t[`${p}.attn.c_attn.bias`] = f32([3 * H], zeros(3 * H));
    // GPT-2 scales residual projections by 1/√(2·n_layer).
    t[`${p}.attn.c_proj.weight`] = f32([H, H], normal(rng, [H, H], 0.02 / Math.sqrt(2 * L)));
    t[`${p}.attn.c_proj.bias`] = f32([H], zeros(H));
    t[`${p}.mlp.c_fc.weight`] = f32([H, 4 * H], normal(rng, [H, 4 * H]));
    t[`${p}.mlp.c_fc.bias`] = f32([4 * H], zeros(4 * H));
    t[`${p}.mlp.c_proj.weight`] = f32([4 * H, H], normal(rng, [4 * H, H], 0.02 / Math.sqrt(2 * L)));
    t[`${p}.mlp.c_proj.bias`] = f32([H], zeros(H));
  }
  write(path.join(here, 'tiny-gpt2'), {
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: V, n_positions: P, n_embd: H, n_layer: L, n_head: 4,
    n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, initializer_range: 0.02,
    scale_attn_weights: true, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0, torch_dtype: 'float32',
  }, t);
}

function llama(): void {
  const rng = Rng.derive(1234, 'tiny-llama');
  const H = 64, L = 2, V = 256, I = 128, nh = 4, nkv = 2, hd = H / nh;
  // Stored as BF16 so the example also exercises the bf16 path (most Llama checkpoints are bf16).
  const bf = (shape: number[], data: Float32Array): TensorToWrite => ({ dtype: 'BF16', shape, data: encodeBf16(data) });
  const t: Record<string, TensorToWrite> = {
    'model.embed_tokens.weight': bf([V, H], normal(rng, [V, H])),
    'model.norm.weight': bf([H], ones(H).fill(GAIN)),
    'lm_head.weight': bf([V, H], normal(rng, [V, H])),
  };
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    t[`${p}.input_layernorm.weight`] = bf([H], ones(H));
    t[`${p}.post_attention_layernorm.weight`] = bf([H], ones(H));
    t[`${p}.self_attn.q_proj.weight`] = bf([nh * hd, H], normal(rng, [nh * hd, H]));
    t[`${p}.self_attn.k_proj.weight`] = bf([nkv * hd, H], normal(rng, [nkv * hd, H]));
    t[`${p}.self_attn.v_proj.weight`] = bf([nkv * hd, H], normal(rng, [nkv * hd, H]));
    t[`${p}.self_attn.o_proj.weight`] = bf([H, nh * hd], normal(rng, [H, nh * hd]));
    t[`${p}.mlp.gate_proj.weight`] = bf([I, H], normal(rng, [I, H]));
    t[`${p}.mlp.up_proj.weight`] = bf([I, H], normal(rng, [I, H]));
    t[`${p}.mlp.down_proj.weight`] = bf([H, I], normal(rng, [H, I]));
  }
  write(path.join(here, 'tiny-llama'), {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: V, hidden_size: H, intermediate_size: I,
    num_hidden_layers: L, num_attention_heads: nh, num_key_value_heads: nkv, hidden_act: 'silu', max_position_embeddings: 128,
    rms_norm_eps: 1e-5, rope_theta: 10000.0, rope_scaling: null, attention_bias: false, tie_word_embeddings: false,
    initializer_range: 0.02, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
  }, t);
}

gpt2();
llama();
console.log('wrote examples/models/tiny-gpt2 and examples/models/tiny-llama');
