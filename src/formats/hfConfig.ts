// Hugging Face `config.json` for the two causal-LM families we run: Llama (and look-alikes that say
// model_type "llama"/"mistral"/"qwen2" with the same layout) and GPT-2. Pure: text in, typed config out.
// Field names and defaults follow transformers' LlamaConfig and GPT2Config.
import { describeJsonSyntaxError, showValue } from './jsonText';
import { InteropError } from './adapters/interopError';

export interface LlamaConfig {
  modelType: 'llama';
  /** The `model_type` string as written (llama, mistral, qwen2). */
  declaredType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** rope_scaling {type: "linear", factor} divides positions (1: none). */
  ropeLinearFactor: number;
  /** rope_scaling {rope_type: "llama3", …} (Llama 3.1/3.2): per-frequency scaling of inv_freq. Other types are refused. */
  ropeLlama3?: Llama3RopeScaling;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  hiddenAct: 'silu' | 'gelu' | 'gelu_new' | 'relu';
  /** The raw JSON, kept so a merged folder can write it back unchanged. */
  raw: Record<string, unknown>;
}

export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface Gpt2Config {
  modelType: 'gpt2';
  declaredType: string;
  vocabSize: number;
  hiddenSize: number; // n_embd
  intermediateSize: number; // n_inner or 4 * n_embd
  numLayers: number; // n_layer
  numHeads: number; // n_head
  headDim: number;
  maxPositions: number; // n_positions
  layerNormEps: number;
  activation: 'gelu_new' | 'gelu' | 'relu' | 'silu' | 'gelu_pytorch_tanh';
  scaleAttnWeights: boolean;
  scaleAttnByInverseLayerIdx: boolean;
  tieWordEmbeddings: boolean;
  raw: Record<string, unknown>;
}

export type HfModelConfig = LlamaConfig | Gpt2Config;

const LLAMA_LIKE = new Set(['llama', 'mistral', 'qwen2']);

function fail(source: string, message: string): never {
  throw new InteropError('bad-config', `${source}: ${message}`, source);
}

function int(raw: Record<string, unknown>, key: string, source: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    fail(source, `"${key}" should be a positive integer, got ${showValue(raw[key])}`);
  }
  return v;
}

function num(raw: Record<string, unknown>, key: string, source: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(source, `"${key}" should be a number, got ${showValue(raw[key])}`);
  return v;
}

function bool(raw: Record<string, unknown>, key: string, source: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'boolean') fail(source, `"${key}" should be true or false, got ${showValue(raw[key])}`);
  return v;
}

/** Parse a config.json text. Throws InteropError ('bad-config' | 'unsupported-model'). */
export function parseHfConfig(text: string, source = 'config.json'): HfModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    fail(source, describeJsonSyntaxError(text));
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(source, 'expected a JSON object');
  return hfConfigFromJson(raw as Record<string, unknown>, source);
}

export function hfConfigFromJson(raw: Record<string, unknown>, source = 'config.json'): HfModelConfig {
  const type = raw.model_type;
  if (type === undefined) {
    throw new InteropError('unsupported-model', `${source}: no "model_type"; LoRA Lab runs "llama" and "gpt2" models`, source);
  }
  if (typeof type !== 'string') fail(source, `"model_type" should be a string, got ${showValue(type)}`);
  if (LLAMA_LIKE.has(type)) return llama(raw, type, source);
  if (type === 'gpt2') return gpt2(raw, source);
  throw new InteropError(
    'unsupported-model',
    `${source}: model_type "${type}" is not supported; LoRA Lab runs "llama" (also mistral, qwen2 layouts) and "gpt2"`,
    source,
  );
}

function llama(raw: Record<string, unknown>, declaredType: string, source: string): LlamaConfig {
  const hiddenSize = int(raw, 'hidden_size', source);
  const numHeads = int(raw, 'num_attention_heads', source);
  const numKvHeads = int(raw, 'num_key_value_heads', source, numHeads);
  const headDim = raw.head_dim === undefined || raw.head_dim === null ? hiddenSize / numHeads : int(raw, 'head_dim', source);
  if (!Number.isInteger(headDim)) fail(source, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  if (numHeads % numKvHeads !== 0) {
    fail(source, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  let ropeLinearFactor = 1;
  let ropeLlama3: Llama3RopeScaling | undefined;
  const rs = raw.rope_scaling;
  if (rs !== undefined && rs !== null) {
    if (typeof rs !== 'object' || Array.isArray(rs)) fail(source, `rope_scaling should be an object or null, got ${showValue(rs)}`);
    const r = rs as Record<string, unknown>;
    const t = r.rope_type ?? r.type;
    const positive = (key: string): number => {
      const v = r[key];
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(source, `rope_scaling.${key} should be a positive number, got ${showValue(v)}`);
      return v as number;
    };
    if (t === 'linear') ropeLinearFactor = positive('factor');
    else if (t === 'llama3') {
      ropeLlama3 = {
        factor: positive('factor'),
        lowFreqFactor: positive('low_freq_factor'),
        highFreqFactor: positive('high_freq_factor'),
        originalMaxPositions: positive('original_max_position_embeddings'),
      };
      if (ropeLlama3.highFreqFactor <= ropeLlama3.lowFreqFactor) {
        fail(source, `rope_scaling.high_freq_factor (${ropeLlama3.highFreqFactor}) should be greater than low_freq_factor (${ropeLlama3.lowFreqFactor})`);
      }
    } else if (t !== 'default') {
      throw new InteropError('unsupported-model', `${source}: rope_scaling ${showValue(rs)} is not supported (only "linear" and "llama3")`, source);
    }
  }
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'gelu' && act !== 'gelu_new' && act !== 'relu') {
    throw new InteropError('unsupported-model', `${source}: hidden_act "${String(act)}" is not supported`, source);
  }
  return {
    modelType: 'llama',
    declaredType,
    vocabSize: int(raw, 'vocab_size', source),
    hiddenSize,
    intermediateSize: int(raw, 'intermediate_size', source),
    numLayers: int(raw, 'num_hidden_layers', source),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(raw, 'rms_norm_eps', source, 1e-6),
    ropeTheta: num(raw, 'rope_theta', source, 10000),
    ropeLinearFactor,
    ...(ropeLlama3 ? { ropeLlama3 } : {}),
    maxPositions: int(raw, 'max_position_embeddings', source, 2048),
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', source, false),
    attentionBias: bool(raw, 'attention_bias', source, declaredType === 'qwen2'),
    mlpBias: bool(raw, 'mlp_bias', source, false),
    hiddenAct: act,
    raw,
  };
}

function gpt2(raw: Record<string, unknown>, source: string): Gpt2Config {
  const hiddenSize = int(raw, 'n_embd', source, 768);
  const numHeads = int(raw, 'n_head', source, 12);
  if (hiddenSize % numHeads !== 0) fail(source, `n_embd ${hiddenSize} is not divisible by n_head ${numHeads}`);
  const inner = raw.n_inner === null || raw.n_inner === undefined ? 4 * hiddenSize : int(raw, 'n_inner', source);
  const act = raw.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu' && act !== 'relu' && act !== 'silu' && act !== 'gelu_pytorch_tanh') {
    throw new InteropError('unsupported-model', `${source}: activation_function "${String(act)}" is not supported`, source);
  }
  return {
    modelType: 'gpt2',
    declaredType: 'gpt2',
    vocabSize: int(raw, 'vocab_size', source, 50257),
    hiddenSize,
    intermediateSize: inner,
    numLayers: int(raw, 'n_layer', source, 12),
    numHeads,
    headDim: hiddenSize / numHeads,
    maxPositions: int(raw, 'n_positions', source, 1024),
    layerNormEps: num(raw, 'layer_norm_epsilon', source, 1e-5),
    activation: act,
    scaleAttnWeights: bool(raw, 'scale_attn_weights', source, true),
    scaleAttnByInverseLayerIdx: bool(raw, 'scale_attn_by_inverse_layer_idx', source, false),
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', source, true),
    raw,
  };
}
