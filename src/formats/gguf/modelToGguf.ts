// A Hugging Face Llama / GPT-2 checkpoint as a llama.cpp model GGUF (what convert_hf_to_gguf.py
// writes for these families): the hyperparameters under "<arch>.*", the tensors under llama.cpp's
// names (Llama q/k rows in llama.cpp's rope order, GPT-2 Conv1D weights as [out, in]), 2-D weights
// in the chosen float type and 1-D tensors in F32, and the vocabulary when tokenizer.json is a
// byte-level BPE one. Pure.
import type { HfModelConfig } from '../hfConfig';
import { InteropError } from '../adapters/interopError';
import { gguf, type GgufFile, type GgufTensor, type GgufTensorType, type GgufValue } from './gguf';
import { GGUF_FILE_TYPE } from './loraToGguf';
import { ggufTensorName, hfTensorName, isBufferTensor, llamaCppArch, permuteRopeRows, ropeHeadsFor, type LlamaCppArch } from './llamaCppNames';

/** The weights of a checkpoint, as src/models reads them (float32 values). */
export interface CheckpointWeights {
  names(): string[];
  get(name: string): { shape: number[]; data: Float32Array } | undefined;
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}

/** Llama 3.1's rope_scaling as llama.cpp takes it: a per-frequency divisor, rope_freqs.weight. */
function llama3RopeFactors(config: Extract<HfModelConfig, { modelType: 'llama' }>): Float32Array {
  const s = config.ropeLlama3!;
  const dim = config.headDim;
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(config.ropeTheta, (2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

function hyperparameters(arch: LlamaCppArch, config: HfModelConfig): [string, GgufValue][] {
  const k = (key: string, v: GgufValue): [string, GgufValue] => [`${arch}.${key}`, v];
  if (config.modelType === 'gpt2') {
    return [
      k('context_length', gguf.u32(config.maxPositions)),
      k('embedding_length', gguf.u32(config.hiddenSize)),
      k('feed_forward_length', gguf.u32(config.intermediateSize)),
      k('block_count', gguf.u32(config.numLayers)),
      k('attention.head_count', gguf.u32(config.numHeads)),
      k('attention.layer_norm_epsilon', gguf.f32(config.layerNormEps)),
      k('vocab_size', gguf.u32(config.vocabSize)),
    ];
  }
  const out: [string, GgufValue][] = [
    k('context_length', gguf.u32(config.maxPositions)),
    k('embedding_length', gguf.u32(config.hiddenSize)),
    k('feed_forward_length', gguf.u32(config.intermediateSize)),
    k('block_count', gguf.u32(config.numLayers)),
    k('attention.head_count', gguf.u32(config.numHeads)),
    k('attention.head_count_kv', gguf.u32(config.numKvHeads)),
    k('attention.layer_norm_rms_epsilon', gguf.f32(config.rmsNormEps)),
    k('rope.freq_base', gguf.f32(config.ropeTheta)),
    k('rope.dimension_count', gguf.u32(config.headDim)),
    k('attention.key_length', gguf.u32(config.headDim)),
    k('attention.value_length', gguf.u32(config.headDim)),
    k('vocab_size', gguf.u32(config.vocabSize)),
  ];
  if (config.ropeLinearFactor !== 1) out.push(k('rope.scaling.type', gguf.str('linear')), k('rope.scaling.factor', gguf.f32(config.ropeLinearFactor)));
  return out;
}

/** GPT-2's byte-level BPE alphabet: the printable character standing for each byte 0…255. */
function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  return out;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: unknown;
}

/**
 * The vocabulary keys. A byte-level BPE tokenizer.json (GPT-2, Llama 3) becomes llama.cpp's "gpt2"
 * tokenizer; anything else (or none) gives placeholder tokens, so llama.cpp runs on token ids but
 * cannot tokenize text (said in the notes).
 */
function vocabulary(arch: LlamaCppArch, config: HfModelConfig, tokenizerJson: string | undefined, notes: string[]): [string, GgufValue][] {
  const vocabSize = config.vocabSize;
  // llama.cpp loaders (and node-llama-cpp, Ollama, LM Studio) need a vocabulary that tokenizes even
  // to run token ids ("none" fails there): placeholders, with GPT-2's 256 byte symbols first where
  // the vocabulary has room, so any text still maps to some ids.
  const none = (why: string): [string, GgufValue][] => {
    notes.push(`${why}: the GGUF gets placeholder tokens ("[TOKEN_300]"), so llama.cpp runs token ids but cannot turn text into the model's tokens. For the real vocabulary use llama.cpp's convert_hf_to_gguf.py`);
    const tokens = Array.from({ length: vocabSize }, (_, i) => `[TOKEN_${i}]`);
    if (vocabSize < 256) {
      return [
        ['tokenizer.ggml.model', gguf.str('llama')],
        ['tokenizer.ggml.tokens', gguf.strings(tokens)],
        ['tokenizer.ggml.scores', gguf.f32s(new Float32Array(vocabSize))],
        ['tokenizer.ggml.token_type', gguf.i32s(new Int32Array(vocabSize).fill(1))],
      ];
    }
    byteSymbols().forEach((c, i) => (tokens[i] = c));
    return [
      ['tokenizer.ggml.model', gguf.str('gpt2')],
      ['tokenizer.ggml.pre', gguf.str('default')],
      ['tokenizer.ggml.tokens', gguf.strings(tokens)],
      ['tokenizer.ggml.token_type', gguf.i32s(new Int32Array(vocabSize).fill(1))],
      ['tokenizer.ggml.merges', gguf.strings([])],
    ];
  };
  if (tokenizerJson === undefined) return none('no tokenizer.json');
  let tok: TokenizerJson;
  try {
    tok = JSON.parse(tokenizerJson) as TokenizerJson;
  } catch {
    return none('tokenizer.json is not valid JSON');
  }
  const model = tok.model;
  if (model?.type !== 'BPE' || model.byte_fallback || !model.vocab || !Array.isArray(model.merges)) return none(`tokenizer.json's ${model?.type ?? 'unknown'} model${model?.byte_fallback ? ' with byte_fallback (SentencePiece style)' : ''} is not a byte-level BPE`);
  const tokens: string[] = new Array<string>(vocabSize);
  const types = new Int32Array(vocabSize).fill(1);
  for (const [t, id] of Object.entries(model.vocab)) if (id >= 0 && id < vocabSize) tokens[id] = t;
  for (const a of tok.added_tokens ?? []) {
    if (a.id < 0 || a.id >= vocabSize) continue;
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4; // control, user-defined
  }
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = 5; // unused
    }
  }
  const pre = JSON.stringify(tok.pre_tokenizer ?? null);
  // llama.cpp picks its pre-tokenizer regex by name; these two are the ones recognisable from tokenizer.json alone.
  const preName = pre.includes("(?i:'s|'t|'re|'ve|'m|'ll|'d)") ? 'llama-bpe' : arch === 'gpt2' ? 'gpt-2' : 'default';
  if (preName === 'default') notes.push('tokenizer.json: pre-tokenizer not recognised; llama.cpp\'s default pre-tokenizer is used, which may split text differently');
  return [
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str(preName)],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.token_type', gguf.i32s(types)],
    ['tokenizer.ggml.merges', gguf.strings(model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)))],
    // config.json's special ids (llama.cpp stops generating at eos).
    ...(['bos', 'eos', 'pad'] as const).flatMap((k): [string, GgufValue][] => {
      const id = config.raw[`${k}_token_id`];
      return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < vocabSize ? [[`tokenizer.ggml.${k}_token_id`, gguf.u32(id)]] : [];
    }),
  ];
}

/** The tensors llama.cpp loads for this config, by GGUF name: shape (row-major, [out, in]) and whether required. */
function expectedTensors(arch: LlamaCppArch, config: HfModelConfig): Map<string, { shape: number[]; required: boolean }> {
  const m = new Map<string, { shape: number[]; required: boolean }>();
  const add = (name: string, shape: number[], required = true) => m.set(name, { shape, required });
  const H = config.hiddenSize;
  const V = config.vocabSize;
  const ff = config.intermediateSize;
  add('token_embd.weight', [V, H]);
  add('output_norm.weight', [H]);
  add('output.weight', [V, H], false);
  if (config.modelType === 'gpt2') {
    add('position_embd.weight', [config.maxPositions, H]);
    add('output_norm.bias', [H]);
    for (let i = 0; i < config.numLayers; i++) {
      const b = (t: string, w: number[], bias: number) => {
        add(`blk.${i}.${t}.weight`, w);
        add(`blk.${i}.${t}.bias`, [bias]);
      };
      b('attn_norm', [H], H);
      b('attn_qkv', [3 * H, H], 3 * H);
      b('attn_output', [H, H], H);
      b('ffn_norm', [H], H);
      b('ffn_up', [ff, H], ff);
      b('ffn_down', [H, ff], H);
    }
    return m;
  }
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  // Biases exactly where the model uses them (Qwen2: q/k/v only), so llama.cpp adds what LoRA Lab adds.
  const attnBias = config.attentionBias;
  const oBias = config.attentionBias && config.declaredType !== 'qwen2';
  for (let i = 0; i < config.numLayers; i++) {
    const lin = (t: string, out: number, inF: number, bias: boolean) => {
      add(`blk.${i}.${t}.weight`, [out, inF]);
      if (bias) add(`blk.${i}.${t}.bias`, [out]);
    };
    add(`blk.${i}.attn_norm.weight`, [H]);
    add(`blk.${i}.ffn_norm.weight`, [H]);
    lin('attn_q', q, H, attnBias);
    lin('attn_k', kv, H, attnBias);
    lin('attn_v', kv, H, attnBias);
    lin('attn_output', H, q, oBias);
    lin('ffn_gate', ff, H, config.mlpBias);
    lin('ffn_up', ff, H, config.mlpBias);
    lin('ffn_down', H, ff, config.mlpBias);
  }
  return m;
}

/**
 * The model as a GGUF. Every weight needs a llama.cpp name (an unknown tensor is refused, naming it);
 * buffers (rotary inv_freq, GPT-2's attention masks) are left out, as is an lm_head tied to the embedding.
 */
export function modelToGguf(
  config: HfModelConfig,
  weights: CheckpointWeights,
  opts: { type?: GgufTensorType; name?: string; tokenizerJson?: string; source?: string } = {},
): { file: GgufFile; arch: LlamaCppArch; notes: string[] } {
  const type = opts.type ?? 'F16';
  const source = opts.source ?? 'model.safetensors';
  const arch = llamaCppArch(config);
  const notes: string[] = [];
  const tensors: GgufTensor[] = [];
  const expected = expectedTensors(arch, config);
  const seen = new Map<string, string>();
  for (const name of weights.names()) {
    if (isBufferTensor(arch, name)) continue;
    if (name === 'lm_head.weight' && config.tieWordEmbeddings) continue;
    const g = ggufTensorName(arch, name);
    if (!g) throw new InteropError('unsupported-model', `${source}: tensor "${name}" has no llama.cpp ${arch} name; this checkpoint has parts llama.cpp would not run`, source);
    const t = weights.get(name)!;
    const want = expected.get(g.name);
    const stored = g.transpose ? [t.shape[1], t.shape[0]] : t.shape;
    if (!want) throw new InteropError('unsupported-model', `${source}: tensor "${name}" (llama.cpp's ${g.name}) is not used by this ${config.declaredType} configuration (config.json), so llama.cpp must not get it either`, source);
    if (stored.join() !== want.shape.join()) {
      const need = g.transpose ? [want.shape[1], want.shape[0]] : want.shape;
      throw new InteropError('shape-mismatch', `${source}: tensor "${name}" has shape [${t.shape.join(', ')}] but config.json (${config.declaredType}) needs [${need.join(', ')}]`, source);
    }
    seen.set(g.name, name);
    let data = t.data;
    let shape = [...t.shape];
    if (g.transpose) {
      data = transpose2d(data, shape[0], shape[1]);
      shape = [shape[1], shape[0]];
    }
    const heads = ropeHeadsFor(arch, config, name.replace(/\.(weight|bias)$/, ''));
    if (heads !== undefined) data = permuteRopeRows(data, shape[0], shape.length === 2 ? shape[1] : 1, heads);
    tensors.push({ name: g.name, type: shape.length >= 2 ? type : 'F32', shape, data });
  }
  for (const [g, e] of expected) {
    if (e.required && !seen.has(g)) {
      throw new InteropError('missing-tensor', `${source}: tensor "${hfTensorName(arch, g) ?? g}" is missing (llama.cpp's ${g}, shape [${e.shape.join(', ')}]); the checkpoint is incomplete for its config.json`, source);
    }
  }
  if (config.modelType === 'llama' && config.ropeLlama3) tensors.push({ name: 'rope_freqs.weight', type: 'F32', shape: [config.headDim / 2], data: llama3RopeFactors(config) });
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', gguf.str(arch)],
    ['general.type', gguf.str('model')],
    ['general.name', gguf.str(opts.name ?? 'model')],
    ['general.file_type', gguf.u32(GGUF_FILE_TYPE[type])],
    ...hyperparameters(arch, config),
    ...vocabulary(arch, config, opts.tokenizerJson, notes),
  ]);
  return { file: { metadata, tensors }, arch, notes };
}
