// A LoRA adapter as mlx-lm saves one (mlx_lm.lora / mlx_lm.tuner.utils.load_adapters read it back):
// adapters.safetensors with "<module>.lora_a" [in, r] and "<module>.lora_b" [r, out], ΔW =
// scale·(lora_a·lora_b)ᵀ, and adapter_config.json with fine_tune_type, num_layers (mlx-lm adapts the
// last num_layers blocks) and lora_parameters {rank, scale, dropout, keys}. A DoRA adapter becomes
// fine_tune_type "dora" with each module's magnitude as "<module>.m" (mlx-lm's DoRALinear computes
// m·(W + ΔW)x / ‖W + ΔW‖ row-wise, then the bias, as PEFT does). mlx-lm has one rank and
// one absolute scale per adapter: modules of a smaller rank are padded with zeros and per-module
// scales folded into lora_b, which leaves every ΔW unchanged. Pure.
import { encodeBf16, encodeF16 } from '../dtype';
import type { TensorToWrite } from '../safetensors';
import { InteropError } from './interopError';
import { lowRankRelError } from './lowRankError';
import type { ConvertedModule, LoraFactors } from '../gguf/loraToGguf';
import { decodeTensorData, type GgufTensorType } from '../gguf/gguf';

/**
 * mlx-lm's module path for a Hugging Face one: Llama's names are the same; GPT-2's blocks live under
 * model.h. mlx-lm also adapts model-level modules named in `keys`: Llama's lm_head, where it is its own
 * weight (mlx-lm has no lm_head module when it is tied to the embedding).
 */
export function mlxModulePath(modelType: 'llama' | 'gpt2', path: string, tiedHead = true): { key: string; layer?: number; sub: string } | undefined {
  if (path === 'lm_head') return modelType === 'llama' && !tiedHead ? { key: 'lm_head', sub: 'lm_head' } : undefined;
  if (modelType === 'gpt2') {
    const m = /^(?:transformer\.)?h\.(\d+)\.(.+)$/.exec(path);
    return m ? { key: `model.h.${m[1]}.${m[2]}`, layer: Number(m[1]), sub: m[2] } : undefined;
  }
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(path);
  return m ? { key: path, layer: Number(m[1]), sub: m[2] } : undefined;
}

function encode(values: Float32Array, type: GgufTensorType, shape: number[]): TensorToWrite {
  if (type === 'F32') return { dtype: 'F32', shape, data: values };
  return { dtype: type, shape, data: type === 'F16' ? encodeF16(values) : encodeBf16(values) };
}

function bytesOf(t: TensorToWrite): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export interface MlxAdapter {
  tensors: Record<string, TensorToWrite>;
  /** adapter_config.json's content. */
  config: Record<string, unknown>;
  modules: ConvertedModule[];
  rank: number;
  scale: number;
}

export function loraToMlx(
  modelType: 'llama' | 'gpt2',
  numLayers: number,
  modules: LoraFactors[],
  opts: { type?: GgufTensorType; base?: string; tiedHead?: boolean } = {},
): MlxAdapter {
  const type = opts.type ?? 'F32';
  if (modules.length === 0) throw new InteropError('bad-input', 'the adapter has no LoRA modules to convert');
  const placed = modules.map((m) => {
    const p = mlxModulePath(modelType, m.path, opts.tiedHead ?? true);
    if (!p) throw new InteropError('unsupported-model', `${m.path}: mlx-lm has no module of that name to adapt (it adapts the transformer blocks' linear layers, and an untied Llama lm_head)`);
    return { m, p };
  });
  const doraCount = modules.filter((m) => m.magnitude).length;
  if (doraCount > 0 && doraCount < modules.length) throw new InteropError('bad-config', 'the adapter mixes DoRA and plain LoRA modules; an mlx-lm adapter is one or the other');
  const rank = Math.max(...modules.map((m) => m.rank));
  const first = modules[0].scale;
  const scale = first !== 0 && Number.isFinite(first) ? first : 1;
  const tensors: Record<string, TensorToWrite> = {};
  const report: ConvertedModule[] = [];
  for (const { m, p } of placed.sort((a, b) => a.p.key.localeCompare(b.p.key, 'en', { numeric: true }))) {
    const r = m.rank;
    const [, inF] = m.A.shape;
    const [out] = m.B.shape;
    const fold = m.scale / scale;
    // lora_a = Aᵀ [in, R], lora_b = fold·Bᵀ [R, out]; columns/rows beyond r stay zero.
    const a = new Float32Array(inF * rank);
    for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) a[i * rank + k] = m.A.data[k * inF + i];
    const b = new Float32Array(rank * out);
    for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) b[k * out + o] = m.B.data[o * r + k] * fold;
    const ta = encode(a, type, [inF, rank]);
    const tb = encode(b, type, [rank, out]);
    tensors[`${p.key}.lora_a`] = ta;
    tensors[`${p.key}.lora_b`] = tb;
    if (m.magnitude) tensors[`${p.key}.m`] = encode(m.magnitude, type, [out]);
    // Read back as mlx-lm applies it: ΔW = scale·(a·b)ᵀ = scale·bᵀ·aᵀ, U = bᵀ [out, R], D = aᵀ [R, in].
    const ga = decodeTensorData(bytesOf(ta), type);
    const gb = decodeTensorData(bytesOf(tb), type);
    const U = new Float32Array(out * rank);
    const D = new Float32Array(rank * inF);
    const refU = new Float32Array(out * rank);
    const refD = new Float32Array(rank * inF);
    for (let o = 0; o < out; o++) for (let k = 0; k < rank; k++) U[o * rank + k] = gb[k * out + o];
    for (let k = 0; k < rank; k++) for (let i = 0; i < inF; i++) D[k * inF + i] = ga[i * rank + k];
    for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) refU[o * rank + k] = m.B.data[o * r + k];
    refD.set(m.A.data);
    const err = lowRankRelError({ U: refU, D: refD, scale: m.scale }, { U, D, scale }, out, rank, inF);
    report.push({ module: m.path, target: p.key, rank: r, ...err });
  }
  const layers = placed.flatMap((x) => (x.p.layer === undefined ? [] : [x.p.layer]));
  const firstLayer = layers.length ? Math.min(...layers) : numLayers;
  const keys = [...new Set(placed.map((x) => x.p.sub))].sort();
  const config: Record<string, unknown> = {
    fine_tune_type: doraCount > 0 ? 'dora' : 'lora',
    num_layers: numLayers - firstLayer,
    lora_parameters: { rank, scale, dropout: 0.0, keys },
  };
  if (opts.base) config.model = opts.base;
  return { tensors, config, modules: report, rank, scale };
}
