// How much memory a causal-lm LoRA run needs, computed from the model's config.json and the experiment
// alone, before any weight is read or any tensor allocated, so a run that cannot fit is refused at start
// with numbers and what to change (never a wasm Aborted() or a kernel argument error mid-step).
// Pure arithmetic (no tfjs, no I/O): the training run, the config hover and the dashboard's Parameters
// view all compute it here, so they say the same numbers. Which backend runs the step is an input
// (nativeKernels, frozenOutsideHeap); the caller says what it knows or assumes.
//
// What is counted, in bytes:
// - frozen weights, as float32 in the tensor heap (tfjs holds them so), plus the transposed copy of a
//   tied output layer, plus (without the native kernels) the transposed copies the pure wasm products
//   cache for dx = dy·W; and, outside the heap, the weight files' bytes and their float32 widening.
// - LoRA parameters with their gradient and the optimizer's slots (Adam: m and v).
// - activations: the tensors the forward pass keeps for the backward pass (what each op saves for its
//   gradient), counted per token and layer from the ops the model runs (src/models/gpt2.ts, llama.ts).
//   With gradient checkpointing a block keeps only its input; its activations exist for one block at
//   a time, when the backward pass recomputes it.
// - the loss: with the chunked cross-entropy a few chunk-rows × vocab buffers; with a LoRA-adapted
//   output layer the plain form's B×T×V logits, softmax and gradient.
import type { HfModelConfig } from '../formats/hfConfig';
import type { ExperimentConfig, OptimizerName } from '../formats/experimentTypes';
import { matchTargetModules, type PeftLoraConfig } from '../formats/peftConfig';

/** Floats in one rows × vocab buffer of the chunked cross-entropy (its row chunk is this / vocab). */
export const LOSS_CHUNK_ELEMENTS = 2 ** 24;

/** The most a WebAssembly memory can hold (emscripten's heap maximum in the tfjs wasm build). */
export const WASM_HEAP_BYTES = 4294901760;

/** Rows per chunk of the chunked cross-entropy for a vocabulary of `vocab`. */
export function lossChunkRows(vocab: number): number {
  return Math.max(1, Math.floor(LOSS_CHUNK_ELEMENTS / vocab));
}

/** One linear layer of the model, by PEFT module path. */
export interface LinearShapeOf {
  path: string;
  inFeatures: number;
  outFeatures: number;
}

/** The linear layers src/models builds for this config, by PEFT module path (lm_head last). */
export function linearShapesOf(c: HfModelConfig): LinearShapeOf[] {
  const out: LinearShapeOf[] = [];
  const H = c.hiddenSize;
  for (let i = 0; i < c.numLayers; i++) {
    if (c.modelType === 'llama') {
      const p = `model.layers.${i}`;
      const q = c.numHeads * c.headDim;
      const kv = c.numKvHeads * c.headDim;
      out.push(
        { path: `${p}.self_attn.q_proj`, inFeatures: H, outFeatures: q },
        { path: `${p}.self_attn.k_proj`, inFeatures: H, outFeatures: kv },
        { path: `${p}.self_attn.v_proj`, inFeatures: H, outFeatures: kv },
        { path: `${p}.self_attn.o_proj`, inFeatures: q, outFeatures: H },
        { path: `${p}.mlp.gate_proj`, inFeatures: H, outFeatures: c.intermediateSize },
        { path: `${p}.mlp.up_proj`, inFeatures: H, outFeatures: c.intermediateSize },
        { path: `${p}.mlp.down_proj`, inFeatures: c.intermediateSize, outFeatures: H },
      );
    } else {
      const p = `transformer.h.${i}`;
      out.push(
        { path: `${p}.attn.c_attn`, inFeatures: H, outFeatures: 3 * H },
        { path: `${p}.attn.c_proj`, inFeatures: H, outFeatures: H },
        { path: `${p}.mlp.c_fc`, inFeatures: H, outFeatures: c.intermediateSize },
        { path: `${p}.mlp.c_proj`, inFeatures: c.intermediateSize, outFeatures: H },
      );
    }
  }
  out.push({ path: 'lm_head', inFeatures: H, outFeatures: c.vocabSize });
  return out;
}

/** Parameters of the base model as src/models loads it (tied output layer counted once). */
export function baseParamCount(c: HfModelConfig): number {
  const H = c.hiddenSize;
  let n = c.vocabSize * H; // embedding
  let biases = 0;
  for (const l of linearShapesOf(c)) if (l.path !== 'lm_head') n += l.inFeatures * l.outFeatures;
  if (c.modelType === 'llama') {
    n += (2 * c.numLayers + 1) * H; // RMSNorm weights
    if (c.attentionBias) biases += c.numLayers * (c.numHeads + 2 * c.numKvHeads) * c.headDim;
    if (c.mlpBias) biases += c.numLayers * (2 * c.intermediateSize + H);
    if (!c.tieWordEmbeddings) n += c.vocabSize * H;
  } else {
    n += c.maxPositions * H + (4 * c.numLayers + 2) * H; // positions, LayerNorm weights and biases
    biases += c.numLayers * (3 * H + H + c.intermediateSize + H);
    if (!c.tieWordEmbeddings) n += c.vocabSize * H;
  }
  return n + biases;
}

export interface MemoryEstimateInput {
  model: HfModelConfig;
  batchSize: number;
  seqLen: number;
  /** The adapted layers (shapes and ranks). */
  targets: { path: string; inFeatures: number; outFeatures: number; r: number }[];
  dora?: boolean;
  /** LoRA dropout > 0 keeps a dropped copy of each adapted layer's input. */
  dropout?: boolean;
  optimizer: OptimizerName;
  gradientCheckpointing: boolean;
  /** Frozen products on the native kernels (no cached transposed copies of frozen weights). */
  nativeKernels: boolean;
  /** Bytes of the weight files as stored; default: the parameters as float32. */
  storedWeightBytes?: number;
  /**
   * Frozen linear and embedding weights stay outside the heap as stored (src/engine/kernels/frozenWeights.ts):
   * the heap then holds only norms, biases and positions, and the host the file's bytes, not widened.
   */
  frozenOutsideHeap?: boolean;
}

export interface MemoryEstimate {
  /** Frozen weights in the tensor heap. */
  frozenWeights: number;
  /** LoRA parameters + gradients + optimizer slots. */
  lora: number;
  /** Activations kept for the backward pass (with checkpointing: the blocks' inputs and one recomputed block). */
  activations: number;
  /** The loss over the vocabulary (chunked, or the plain B×T×V form). */
  loss: number;
  /** Everything in the tensor heap (the wasm memory on the wasm backend). */
  heap: number;
  /** The weight files and their float32 widening, held by the host outside the heap. */
  host: number;
  /** heap + host + the runtime. */
  total: number;
  /** Whether the chunked loss applies (false when the output layer is LoRA-adapted). */
  chunkedLoss: boolean;
}

/** The share of a bounded heap a run may plan to use (the rest is the refusal's margin). */
export const HEAP_USABLE = 0.9;
/** Node, V8 and the tfjs modules themselves, outside any tensor. */
const RUNTIME_BYTES = 256 * 2 ** 20;
/** The wasm module's own data and allocator slack. */
const HEAP_BASE_BYTES = 64 * 2 ** 20;

/**
 * Floats one transformer block keeps per token for the backward pass (see the header). The op counts
 * are scaled (×1.5 GPT-2, ×1.25 Llama) to the wasm heap peaks that test/bench/memoryProbe.ts measures:
 * tfjs also keeps reshaped views' sources, broadcast operands and the gradients in flight.
 */
function blockFloatsPerToken(c: HfModelConfig, s: number, adapted: { outFeatures: number; inFeatures: number; r: number }[], dropout: boolean, dora: boolean, fusedSoftmax: boolean): number {
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  let f: number;
  if (c.modelType === 'llama') {
    const kv = c.numKvHeads * c.headDim;
    // norms 2H, q 1 + rope 5 (heads, ·cos, rotate, ·sin, +), attention out + transpose, o, residuals 2
    // gate, sigmoid, ·, up, · ; scores: product, ÷√d, + mask, softmax (the native kernels' one op:
    // product and softmax)
    f = 1.6 * (14 * H + 8 * kv + 5 * I + (fusedSoftmax ? 2 : 4) * c.numHeads * s);
  } else {
    // ln 2H, c_attn 3H + bias 3H, split 3H, heads 3H, attention out + transpose, proj + bias, residuals
    // c_fc + bias 2I, GELU out + σ 2I; scores: product, ÷√d, + mask, softmax
    const scoreOps = (fusedSoftmax ? 2 : 3 + (c.scaleAttnWeights ? 1 : 0)) + (c.scaleAttnByInverseLayerIdx ? 1 : 0);
    f = 1.5 * (22 * H + 4 * I + scoreOps * c.numHeads * s);
  }
  for (const t of adapted) {
    // x·Aᵀ (r), ·Bᵀ, ·scale, + base (3 out); dropout: the dropped input and its mask; DoRA: ~3 more out
    f += t.r + 3 * t.outFeatures + (dropout ? 2 * t.inFeatures : 0) + (dora ? 3 * t.outFeatures : 0);
  }
  return f;
}

/** The memory a LoRA training step of this shape needs (see the header for what is counted). */
export function estimateTrainingMemory(x: MemoryEstimateInput): MemoryEstimate {
  const c = x.model;
  const H = c.hiddenSize;
  const V = c.vocabSize;
  const N = x.batchSize * x.seqLen; // tokens per step
  const params = baseParamCount(c);
  const shapes = linearShapesOf(c);
  const tiedExtra = c.tieWordEmbeddings || c.modelType === 'llama' ? V * H : 0; // the output layer's transposed copy
  let frozen = (params + tiedExtra) * 4;
  let outside = 0; // elements of the weights kept outside the heap
  if (x.frozenOutsideHeap) {
    outside = V * H; // the embedding
    for (const l of shapes) if (l.path !== 'lm_head' || !c.tieWordEmbeddings) outside += l.inFeatures * l.outFeatures;
    frozen = (params - outside) * 4;
  } else if (!x.nativeKernels) {
    // The pure wasm products cache Wᵀ of each frozen weight used in dx = dy·W, and XNNPACK keeps a
    // packed copy of each right operand it has seen.
    for (const l of shapes) frozen += 2 * l.inFeatures * l.outFeatures * 4;
  }
  const loraParams = x.targets.reduce((a, t) => a + t.r * (t.inFeatures + t.outFeatures) + (x.dora ? t.outFeatures : 0), 0);
  const slots = x.optimizer === 'sgd' ? 1 : 2;
  const lora = loraParams * 4 * (2 + slots);

  const byLayer = new Map<number, typeof x.targets>();
  for (const t of x.targets) {
    const m = /\.(?:h|layers)\.(\d+)\./.exec(t.path);
    if (!m) continue;
    const i = Number(m[1]);
    byLayer.set(i, [...(byLayer.get(i) ?? []), t]);
  }
  const perLayer: number[] = [];
  for (let i = 0; i < c.numLayers; i++) perLayer.push(blockFloatsPerToken(c, x.seqLen, byLayer.get(i) ?? [], x.dropout === true, x.dora === true, x.nativeKernels) * N * 4);
  const largestBlock = Math.max(0, ...perLayer);
  const embed = 3 * H * N * 4; // lookup, positions, their sum
  // Without the native kernels, norms and GELU run as several tfjs ops, each keeping its own inputs.
  const opsFactor = x.nativeKernels ? 1 : 1.7;
  const activations = x.gradientCheckpointing
    ? embed + c.numLayers * H * N * 4 + 1.3 * opsFactor * largestBlock // inputs kept; one block recomputed, with its gradients in flight
    : embed + opsFactor * perLayer.reduce((a, b) => a + b, 0);

  const headAdapted = x.targets.some((t) => t.path === 'lm_head');
  const rows = Math.min(N, lossChunkRows(V));
  // chunked: the final norm's output, its gradient made chunk by chunk in the forward pass and the one
  // the backward pass returns, and ~5 live rows × V buffers in a chunk
  const loss = headAdapted ? 8 * N * V * 4 : 3 * N * H * 4 + 5 * rows * V * 4;
  const heap = HEAP_BASE_BYTES + frozen + lora + activations + loss;
  const stored = x.storedWeightBytes ?? params * 4;
  const host = stored + (params - outside) * 4; // the file's bytes, and the widened copies of what goes into the heap
  return { frozenWeights: frozen, lora, activations, loss, heap, host, total: heap + host + RUNTIME_BYTES, chunkedLoss: !headAdapted };
}

/** "1.23 GiB" / "456 MiB". */
export function formatBytes(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${Math.round(b / 2 ** 20)} MiB`;
}

/** One line: "memory estimate 3.10 GiB: frozen weights 475 MiB, LoRA + Adam 9 MiB, …". */
export function describeMemoryEstimate(e: MemoryEstimate): string {
  return (
    `memory estimate ${formatBytes(e.total)}: tensor heap ${formatBytes(e.heap)} (frozen weights ${formatBytes(e.frozenWeights)}, ` +
    `LoRA + optimizer ${formatBytes(e.lora)}, activations ${formatBytes(e.activations)}, loss ${formatBytes(e.loss)}${e.chunkedLoss ? ' chunked' : ''}), ` +
    `weight files on the host ${formatBytes(e.host)}`
  );
}

export interface MemoryLimits {
  /** The most the tensor heap can hold (the wasm memory's 4 GiB); undefined: no such bound. */
  heapBytes?: number;
  /** What bounds the heap, said in the refusal. */
  heapWhy?: string;
  /** The machine's memory. */
  totalBytes?: number;
}

/** What to change so that a run fits, most effective first, for the refusal message. */
function remedies(x: MemoryEstimateInput, e: MemoryEstimate): string[] {
  const out: string[] = [];
  if (!x.gradientCheckpointing && e.activations > e.heap / 4) out.push('set training.gradientCheckpointing to true (activations then scale with one block, not all)');
  if (x.batchSize > 1) out.push(`lower training.batchSize (now ${x.batchSize}; activations scale with it)`);
  if (x.seqLen > 64) out.push(`lower model.dataset.seqLen (now ${x.seqLen}; activations scale with it, attention scores with its square)`);
  if (!e.chunkedLoss) out.push('leave lm_head out of lora.targetModules (the loss is then computed in row chunks, never as B×T×V logits)');
  if (out.length === 0 || e.frozenWeights > (e.heap * 2) / 3) out.push('use a smaller model (the frozen weights alone take most of the heap)');
  return out;
}

/** Why an estimate does not fit, and what to change; the refusal and the hovers word it from this. */
export interface MemoryShortfall {
  /** Each limit exceeded, as a clause: "its tensors need 4.41 GiB but … holds at most 4.00 GiB (…)". */
  over: string[];
  /** What to change so that the run fits, most effective first. */
  remedies: string[];
}

/** Undefined when the estimate fits within `limits`; else the limits it exceeds and what to change. */
export function memoryShortfall(x: MemoryEstimateInput, e: MemoryEstimate, limits: MemoryLimits): MemoryShortfall | undefined {
  const over: string[] = [];
  // A margin under the heap's size: the allocator's fragmentation, and the estimate's own error.
  if (limits.heapBytes !== undefined && e.heap > HEAP_USABLE * limits.heapBytes) {
    over.push(`its tensors need ${formatBytes(e.heap)} but ${limits.heapWhy ?? 'the tensor heap'} holds at most ${formatBytes(limits.heapBytes)} (${Math.round(HEAP_USABLE * 100)} % of it usable)`);
  }
  if (limits.totalBytes !== undefined && e.total > limits.totalBytes) {
    over.push(`it needs ${formatBytes(e.total)} in all but this machine has ${formatBytes(limits.totalBytes)}`);
  }
  return over.length === 0 ? undefined : { over, remedies: remedies(x, e) };
}

/**
 * Undefined when the estimate fits; else the refusal: the estimate, the limit it exceeds and what to
 * change. `source` names the experiment (its file) in the message.
 */
export function memoryRefusal(x: MemoryEstimateInput, e: MemoryEstimate, limits: MemoryLimits, source: string): string | undefined {
  const s = memoryShortfall(x, e, limits);
  if (!s) return undefined;
  return (
    `${source}: this run cannot fit in memory: ${s.over.join('; ')} (batch ${x.batchSize} × seqLen ${x.seqLen}, ` +
    `gradient checkpointing ${x.gradientCheckpointing ? 'on' : 'off'}; ${describeMemoryEstimate(e)}). To fit: ${s.remedies.join('; or ')}.`
  );
}

/** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the families we run. */
export const PEFT_DEFAULT_TARGETS: Record<'llama' | 'gpt2', string[]> = { llama: ['q_proj', 'v_proj'], gpt2: ['c_attn'] };

/**
 * The estimate's input for a causal-lm experiment on a model config: the adapted layers as the session
 * picks them (PEFT's suffix matching, its defaults for an empty list).
 */
export function causalLmMemoryInput(
  config: ExperimentConfig,
  model: HfModelConfig,
  opts: { nativeKernels: boolean; storedWeightBytes?: number; frozenOutsideHeap?: boolean },
): MemoryEstimateInput {
  if (config.model.kind !== 'causal-lm') throw new RangeError(`causalLmMemoryInput: kind "${config.kind}" is not causal-lm`);
  const l = config.lora;
  const targetModules = l.targetModules.length > 0 ? l.targetModules : PEFT_DEFAULT_TARGETS[model.modelType];
  const shapes = linearShapesOf(model);
  const peftLike: PeftLoraConfig = {
    r: l.r, loraAlpha: l.alpha, targetModules, excludeModules: null, rankPattern: {}, alphaPattern: {},
    useRslora: l.scaling === 'rslora', fanInFanOut: false, useDora: l.useDora === true, bias: 'none', modulesToSave: null,
    layersToTransform: null, layersPattern: null, loraDropout: l.dropout, initLoraWeights: true, baseModelNameOrPath: null, taskType: 'CAUSAL_LM', raw: {},
  };
  const paths = new Set(matchTargetModules(peftLike, shapes.map((s) => s.path)));
  return {
    model,
    batchSize: config.training.batchSize,
    seqLen: config.model.dataset.seqLen,
    targets: shapes.filter((s) => paths.has(s.path)).map((s) => ({ ...s, r: l.r })),
    dora: l.useDora === true,
    dropout: l.dropout > 0,
    optimizer: config.optimizer.name,
    gradientCheckpointing: config.training.gradientCheckpointing === true,
    nativeKernels: opts.nativeKernels,
    storedWeightBytes: opts.storedWeightBytes,
    frozenOutsideHeap: opts.frozenOutsideHeap === true,
  };
}
