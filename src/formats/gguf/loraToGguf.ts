// A LoRA adapter as llama.cpp's adapter GGUF (the layout convert_lora_to_gguf.py writes and
// llama_adapter_lora_init reads): general.type "adapter", adapter.type "lora", one adapter.lora.alpha
// for the file, and per adapted weight "<gguf name>.weight.lora_a" (A [r, in]) and ".lora_b"
// (B [out, r]). llama.cpp scales each pair by alpha / r with r read from lora_b, so where modules
// differ in scale (rsLoRA, rank_pattern, alpha_pattern) the difference is folded into B. Pure.
import type { HfModelConfig } from '../hfConfig';
import { InteropError } from '../adapters/interopError';
import { lowRankRelError } from '../adapters/lowRankError';
import { decodeTensorData, encodeTensorData, gguf, type GgufFile, type GgufTensor, type GgufTensorType, type GgufValue } from './gguf';
import { ggufModuleName, permuteRopeRows, ropeHeadsFor, unpermuteRopeRows, type LlamaCppArch } from './llamaCppNames';

/** One LoRA module as LoRA Lab applies it: ΔW = scale · B · A. */
export interface LoraFactors {
  /** The model's module path ("model.layers.0.self_attn.q_proj", "h.0.attn.c_attn"). */
  path: string;
  rank: number;
  scale: number;
  A: { shape: number[]; data: Float32Array }; // [r, in]
  B: { shape: number[]; data: Float32Array }; // [out, r]
  /** DoRA: the per-output-feature magnitude m (W' = m·(W + ΔW)/‖W + ΔW‖ row-wise). */
  magnitude?: Float32Array;
}

/**
 * LoRA on an embedding table (PEFT's lora.Embedding): ΔW = scale·(B·A)ᵀ in the table's layout
 * [rows, dim], A [r, rows], B [dim, r]. `tiedToHead`: the model's lm_head is this table.
 */
export interface EmbeddingFactors {
  path: string;
  rank: number;
  scale: number;
  A: { shape: number[]; data: Float32Array }; // [r, rows]
  B: { shape: number[]; data: Float32Array }; // [dim, r]
  tiedToHead: boolean;
}

/** What the conversion did to one module, for the report printed before writing. */
export interface ConvertedModule {
  module: string;
  /** Its name in the converted file. */
  target: string;
  rank: number;
  /** ‖ΔW_converted − ΔW‖_F / ‖ΔW‖_F, ΔW_converted rebuilt from the bytes to be written as the reader applies them. */
  relError: number;
  /** ‖ΔW‖_F. */
  norm: number;
}

export const GGUF_FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, BF16: 32 };

/** The alpha to write: the first module's α·(its scale / (α/r)), i.e. scale·r; B absorbs the rest. */
function fileAlpha(modules: { rank: number; scale: number }[]): number {
  const first = modules[0];
  const a = Math.fround(first.scale * first.rank);
  return a !== 0 && Number.isFinite(a) ? a : Math.fround(first.rank);
}

export function loraToGguf(
  arch: LlamaCppArch,
  config: HfModelConfig,
  modules: LoraFactors[],
  opts: { type?: GgufTensorType; name?: string; embeddings?: EmbeddingFactors[] } = {},
): { file: GgufFile; modules: ConvertedModule[]; alpha: number } {
  const type = opts.type ?? 'F32';
  const embeddings = opts.embeddings ?? [];
  if (modules.length + embeddings.length === 0) throw new InteropError('bad-input', 'the adapter has no LoRA modules to convert');
  const dora = modules.find((m) => m.magnitude);
  if (dora) {
    throw new InteropError(
      'bad-config',
      `${dora.path}: a DoRA adapter (use_dora, lora_magnitude_vector) cannot become a llama.cpp GGUF adapter: llama.cpp has no DoRA, and dropping the magnitude would change every adapted layer. Merge it instead (lora-lab merge) and convert the merged model`,
    );
  }
  const alpha = fileAlpha([...modules, ...embeddings]);
  const tensors: GgufTensor[] = [];
  const report: ConvertedModule[] = [];
  for (const m of [...modules].sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }))) {
    const target = ggufModuleName(arch, m.path);
    if (!target) {
      throw new InteropError('unsupported-model', `${m.path}: llama.cpp's ${arch} has no tensor for this module, so a GGUF adapter cannot carry its LoRA`);
    }
    if (target === 'output' && config.tieWordEmbeddings) {
      throw new InteropError('unsupported-model', `${m.path}: the model ties lm_head to the token embedding, so llama.cpp has no output tensor of its own to put this LoRA on; merge the adapter (lora-lab merge) and convert the merged model`);
    }
    const [r, inF] = m.A.shape;
    const [out, rB] = m.B.shape;
    if (r !== m.rank || rB !== m.rank) throw new InteropError('shape-mismatch', `${m.path}: lora_A ${JSON.stringify(m.A.shape)} and lora_B ${JSON.stringify(m.B.shape)} do not share rank ${m.rank}`);
    // llama.cpp applies alpha / r; this module needs `scale`.
    const fold = (m.scale * r) / alpha;
    let B: Float32Array = Float32Array.from(m.B.data, (v) => v * fold);
    const heads = ropeHeadsFor(arch, config, m.path);
    if (heads !== undefined) B = permuteRopeRows(B, out, r, heads);
    const ta: GgufTensor = { name: `${target}.weight.lora_a`, type, shape: [r, inF], data: m.A.data };
    const tb: GgufTensor = { name: `${target}.weight.lora_b`, type, shape: [out, r], data: B };
    tensors.push(ta, tb);
    // Read back what a loader will see: the encoded values, B in Hugging Face row order, alpha / r.
    const gotA = decodeTensorData(encodeTensorData(ta), type);
    let gotB: Float32Array = decodeTensorData(encodeTensorData(tb), type);
    if (heads !== undefined) gotB = unpermuteRopeRows(gotB, out, r, heads);
    const err = lowRankRelError({ U: m.B.data, D: m.A.data, scale: m.scale }, { U: gotB, D: gotA, scale: alpha / r }, out, r, inF);
    report.push({ module: m.path, target: `${target}.weight`, rank: r, ...err });
  }
  for (const e of embeddings) {
    const target = ggufModuleName(arch, e.path);
    // llama.cpp adds an embedding LoRA to the token lookup only (get_rows of lora_a, then lora_b).
    if (target !== 'token_embd') throw new InteropError('unsupported-model', `${e.path}: llama.cpp applies LoRA to the token embedding only, not to this table`);
    if (e.tiedToHead) {
      throw new InteropError(
        'unsupported-model',
        `${e.path}: the model ties lm_head to this table; llama.cpp would run the embedding LoRA through the output layer too, which the adapter does not do. Merge the adapter (lora-lab merge) and convert the merged model`,
      );
    }
    const [r, rows] = e.A.shape;
    const [dim] = e.B.shape;
    // llama.cpp: ΔE[token] = (alpha / r)·lora_b·lora_a[token], lora_a [rows, r] (= Aᵀ), lora_b [dim, r] (= B).
    const fold = (e.scale * r) / alpha;
    const a = new Float32Array(rows * r);
    for (let k = 0; k < r; k++) for (let i = 0; i < rows; i++) a[i * r + k] = e.A.data[k * rows + i];
    const b = Float32Array.from(e.B.data, (v) => v * fold);
    const ta: GgufTensor = { name: `${target}.weight.lora_a`, type, shape: [rows, r], data: a };
    const tb: GgufTensor = { name: `${target}.weight.lora_b`, type, shape: [dim, r], data: b };
    tensors.push(ta, tb);
    // ΔW [rows, dim] = U·D with U = lora_a [rows, r] and D = lora_bᵀ [r, dim].
    const bt = (x: Float32Array) => {
      const out = new Float32Array(r * dim);
      for (let j = 0; j < dim; j++) for (let k = 0; k < r; k++) out[k * dim + j] = x[j * r + k];
      return out;
    };
    const gotA = decodeTensorData(encodeTensorData(ta), type);
    const gotB = decodeTensorData(encodeTensorData(tb), type);
    const err = lowRankRelError({ U: a, D: bt(e.B.data), scale: e.scale }, { U: gotA, D: bt(gotB), scale: alpha / r }, rows, r, dim);
    report.push({ module: e.path, target: `${target}.weight`, rank: r, ...err });
  }
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', gguf.str(arch)],
    ['general.type', gguf.str('adapter')],
    ['general.name', gguf.str(opts.name ?? 'LoRA adapter')],
    ['general.file_type', gguf.u32(GGUF_FILE_TYPE[type])],
    ['adapter.type', gguf.str('lora')],
    ['adapter.lora.alpha', gguf.f32(alpha)],
  ]);
  return { file: { metadata, tensors }, modules: report, alpha };
}
