// How llama.cpp names and lays out the tensors of the model families LoRA Lab runs (its gguf-py
// tensor map and convert_hf_to_gguf.py's per-model changes, restated): the architecture string, the
// GGUF name of each Hugging Face tensor, Llama's q/k row order for its rotary embedding, and GPT-2's
// Conv1D weights stored as [out, in]. Pure.
import type { HfModelConfig } from '../hfConfig';
import { InteropError } from '../adapters/interopError';

export type LlamaCppArch = 'llama' | 'qwen2' | 'gpt2';

/**
 * llama.cpp's architecture for a config, or an error saying what llama.cpp would compute differently.
 * mistral checkpoints are Llama's layout (convert_hf_to_gguf.py writes them as "llama").
 */
export function llamaCppArch(config: HfModelConfig, source = 'config.json'): LlamaCppArch {
  if (config.modelType === 'gpt2') {
    if (config.activation !== 'gelu_new' && config.activation !== 'gelu_pytorch_tanh') {
      throw new InteropError('unsupported-model', `${source}: activation_function "${config.activation}" has no llama.cpp GPT-2 equivalent (llama.cpp uses the tanh GELU, "gelu_new")`, source);
    }
    if (config.scaleAttnByInverseLayerIdx || !config.scaleAttnWeights) {
      throw new InteropError('unsupported-model', `${source}: scale_attn_by_inverse_layer_idx / scale_attn_weights: false change GPT-2's attention in a way llama.cpp does not implement`, source);
    }
    return 'gpt2';
  }
  if (config.hiddenAct !== 'silu') {
    throw new InteropError('unsupported-model', `${source}: hidden_act "${config.hiddenAct}": llama.cpp's ${config.declaredType} uses SiLU only`, source);
  }
  if (config.declaredType === 'qwen2') return 'qwen2';
  return 'llama';
}

const LLAMA_LAYER: Record<string, string> = {
  'input_layernorm': 'attn_norm',
  'post_attention_layernorm': 'ffn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};
const LLAMA_TOP: Record<string, string> = { 'model.embed_tokens': 'token_embd', 'model.norm': 'output_norm', lm_head: 'output' };

const GPT2_LAYER: Record<string, string> = {
  ln_1: 'attn_norm',
  'attn.c_attn': 'attn_qkv',
  'attn.c_proj': 'attn_output',
  ln_2: 'ffn_norm',
  'mlp.c_fc': 'ffn_up',
  'mlp.c_proj': 'ffn_down',
};
const GPT2_TOP: Record<string, string> = { wte: 'token_embd', wpe: 'position_embd', ln_f: 'output_norm', lm_head: 'output' };
const GPT2_CONV1D = new Set(['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']);

/** A module path ("model.layers.3.self_attn.q_proj", "h.0.attn.c_attn") as llama.cpp names it ("blk.3.attn_q"). */
export function ggufModuleName(arch: LlamaCppArch, path: string): string | undefined {
  if (arch === 'gpt2') {
    const p = path.replace(/^transformer\./, '');
    const m = /^h\.(\d+)\.(.+)$/.exec(p);
    if (m) return GPT2_LAYER[m[2]] ? `blk.${m[1]}.${GPT2_LAYER[m[2]]}` : undefined;
    return GPT2_TOP[p];
  }
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(path);
  if (m) return LLAMA_LAYER[m[2]] ? `blk.${m[1]}.${LLAMA_LAYER[m[2]]}` : undefined;
  return LLAMA_TOP[path];
}

/** The Hugging Face name for a llama.cpp tensor name (for messages): "blk.0.attn_q.weight" -> "model.layers.0.self_attn.q_proj.weight". */
export function hfTensorName(arch: LlamaCppArch, name: string): string | undefined {
  const m = /^(?:blk\.(\d+)\.)?([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const find = (table: Record<string, string>) => Object.keys(table).find((k) => table[k] === m[2]);
  if (m[1] === undefined) {
    const top = find(arch === 'gpt2' ? GPT2_TOP : LLAMA_TOP);
    return top && `${arch === 'gpt2' && top !== 'lm_head' ? 'transformer.' : ''}${top}.${m[3]}`;
  }
  const sub = find(arch === 'gpt2' ? GPT2_LAYER : LLAMA_LAYER);
  return sub && (arch === 'gpt2' ? `transformer.h.${m[1]}.${sub}.${m[3]}` : `model.layers.${m[1]}.${sub}.${m[3]}`);
}

/** Tensors a checkpoint may hold that are buffers, not weights (llama.cpp recomputes them). */
export function isBufferTensor(arch: LlamaCppArch, name: string): boolean {
  if (arch === 'gpt2') return /\.attn\.(bias|masked_bias)$/.test(name);
  return /\.rotary_emb\.inv_freq$/.test(name);
}

/** A checkpoint tensor's GGUF name and whether its 2-D layout must be transposed to [out, in] (GPT-2 Conv1D). */
export function ggufTensorName(arch: LlamaCppArch, name: string): { name: string; transpose: boolean } | undefined {
  const m = /^(.*)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const mod = ggufModuleName(arch, m[1]);
  if (!mod) return undefined;
  const sub = m[1].replace(/^transformer\./, '').replace(/^h\.\d+\./, '');
  return { name: `${mod}.${m[2]}`, transpose: arch === 'gpt2' && m[2] === 'weight' && GPT2_CONV1D.has(sub) };
}

/**
 * llama.cpp's Llama rotates adjacent pairs of each head's features; Hugging Face's Llama rotates the
 * first half against the second. convert_hf_to_gguf.py reorders q_proj and k_proj rows (weight,
 * bias, and a LoRA's B) to match: within a head, row t·hd/2 + j moves to 2j + t. The head count for k
 * is the key/value head count. Undefined: no reordering for this module.
 */
export function ropeHeadsFor(arch: LlamaCppArch, config: HfModelConfig, path: string): number | undefined {
  if (arch !== 'llama' || config.modelType !== 'llama') return undefined;
  if (/\.self_attn\.q_proj$/.test(path)) return config.numHeads;
  if (/\.self_attn\.k_proj$/.test(path)) return config.numKvHeads;
  return undefined;
}

/** Reorder the rows of a [rows, cols] row-major matrix (or a vector: cols 1) into llama.cpp's rope order. */
export function permuteRopeRows(data: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  return ropeRows(data, rows, cols, nHead, false);
}

/** The inverse of permuteRopeRows. */
export function unpermuteRopeRows(data: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  return ropeRows(data, rows, cols, nHead, true);
}

function ropeRows(data: Float32Array, rows: number, cols: number, nHead: number, inverse: boolean): Float32Array {
  const hd = rows / nHead;
  if (!Number.isInteger(hd) || hd % 2 !== 0) throw new InteropError('shape-mismatch', `${rows} rows do not split into ${nHead} heads of an even size`);
  const half = hd / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++)
    for (let t = 0; t < 2; t++)
      for (let j = 0; j < half; j++) {
        const hf = h * hd + t * half + j; // Hugging Face row
        const gg = h * hd + 2 * j + t; // llama.cpp row
        const [from, to] = inverse ? [gg, hf] : [hf, gg];
        out.set(data.subarray(from * cols, from * cols + cols), to * cols);
      }
  return out;
}
