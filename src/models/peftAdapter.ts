// A PEFT LoRA/DoRA adapter attached to a CausalLm: adapter_config.json semantics decide which layers
// are adapted and with what r/α/scale; adapter_model.safetensors supplies A, B (and DoRA's magnitude).
// Tensors that are not LoRA factors (modules_to_save copies, trained biases) replace base weights.
import * as tf from '@tensorflow/tfjs-core';
import { InteropError } from '../formats/adapters/interopError';
import { matchTargetModules, moduleHyper, normalizePeftKey, resolvePatternSemantics, type ParsedPeftConfig, type PatternSemantics, type PeftLoraConfig } from '../formats/peftConfig';
import type { HfModelConfig } from '../formats/hfConfig';
import type { CausalLm } from './causalLm';
import { buildCausalLm } from './buildCausalLm';
import { initHandling, residualWeight } from './loraInit';
import type { LoraLookup, LoraModule } from './linear';
import { overlayWeights, shapeText, type HostTensor, type WeightSource } from './weights';

export interface AttachedAdapter {
  config: PeftLoraConfig;
  /** Notes from the config plus mismatches found against the weights. */
  notes: string[];
  modules: Map<string, LoraModule>;
  /** Embedding LoRA modules, already in the model's tables (W + ΔW). */
  embeddings: EmbeddingLora[];
  lookup: LoraLookup;
  dispose(): void;
}

const LORA_PART = /\.(lora_A|lora_B|lora_magnitude_vector|lora_embedding_A|lora_embedding_B)(\.weight)?$/;

/** Adapter tensors that are whole-module replacements, keyed by the base weight name they replace. */
export function adapterOverrides(adapter: WeightSource): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const key of adapter.names()) {
    const k = normalizePeftKey(key);
    if (!LORA_PART.test(k)) out[k] = adapter.get(key)!;
  }
  return out;
}

/** Index adapter tensors by normalized key ("model.layers.0.self_attn.q_proj.lora_A.weight"). */
function indexLora(adapter: WeightSource): Map<string, { key: string; t: HostTensor }> {
  const m = new Map<string, { key: string; t: HostTensor }>();
  for (const key of adapter.names()) {
    const k = normalizePeftKey(key).replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector');
    if (LORA_PART.test(k)) m.set(k, { key, t: adapter.get(key)! });
  }
  return m;
}

/**
 * How the config's rank_pattern / alpha_pattern keys apply to this adapter (they changed meaning in PEFT
 * 0.15): decided from the ranks of the targeted modules' tensors, which are what PEFT loads.
 */
function patternSemantics(config: PeftLoraConfig, lora: Map<string, { key: string; t: HostTensor }>, source: string): { semantics: PatternSemantics; notes: string[] } {
  const ranks = new Map<string, number>();
  for (const [k, { t }] of lora) {
    const m = /^(.*)\.(lora_A\.weight|lora_embedding_A)$/.exec(k);
    if (m && t.shape.length >= 1) ranks.set(m[1], t.shape[0]);
  }
  if (ranks.size === 0 || config.targetModules === null) return resolvePatternSemantics(config, [], source);
  const targeted = new Set(matchTargetModules({ ...config, targetModules: config.targetModules === 'all-linear' ? [...new Set([...ranks.keys()].map((p) => p.split('.').pop()!))] : config.targetModules }, [...ranks.keys()]));
  return resolvePatternSemantics(config, [...ranks].filter(([p]) => targeted.has(p)), source.replace(/adapter_model\.safetensors$/, 'adapter_config.json'));
}

/**
 * Which of the model's linear layers the config targets, with their r / α / scale.
 * Throws (as PEFT does) when the targets match nothing.
 */
export function resolveTargets(model: CausalLm, config: PeftLoraConfig, semantics?: PatternSemantics): { path: string; r: number; alpha: number; scale: number }[] {
  const paths = matchTargetModules(config, [...model.linears.keys()]);
  if (paths.length === 0) {
    throw new InteropError(
      'bad-config',
      `adapter_config.json: target_modules ${JSON.stringify(config.targetModules)} match no linear layer of this ${model.config.declaredType} model ` +
        `(its layers end in ${[...new Set([...model.linears.keys()].map((p) => p.split('.').pop()))].join(', ')})` +
        (config.baseModelNameOrPath ? `; the adapter was made for ${config.baseModelNameOrPath}` : ''),
    );
  }
  return paths.map((path) => ({ path, ...moduleHyper(config, path, semantics) }));
}

// ---------------------------------------------------------------------------------------------
// LoRA on embedding tables (PEFT's lora.Embedding): lora_embedding_A [r, num_embeddings] and
// lora_embedding_B [embedding_dim, r], saved without ".weight". PEFT's forward adds
// embed(ids, Aᵀ)·Bᵀ·s to embed(ids, W), which is a lookup in W + ΔW with ΔW = s·(B·A)ᵀ
// [num_embeddings, embedding_dim] (get_delta_weight). So the model is built with W + ΔW in place of
// the table; where lm_head is tied to that table, PEFT's unmerged lm_head still uses the base W, and
// the attached adapter subtracts ΔWᵀ on lm_head again (merging, as PEFT's in-place merge on a tied
// weight, changes both).

/** An embedding table PEFT can adapt, by module path: its weight's name and shape [rows, dim]. */
export interface EmbeddingTable {
  path: string;
  weightName: string;
  rows: number;
  dim: number;
}

/** The model's nn.Embedding tables (Llama: embed_tokens; GPT-2: wte and the learned positions wpe). */
export function embeddingTables(config: HfModelConfig): EmbeddingTable[] {
  if (config.modelType === 'llama') return [{ path: 'model.embed_tokens', weightName: 'model.embed_tokens.weight', rows: config.vocabSize, dim: config.hiddenSize }];
  return [
    { path: 'transformer.wte', weightName: 'transformer.wte.weight', rows: config.vocabSize, dim: config.hiddenSize },
    { path: 'transformer.wpe', weightName: 'transformer.wpe.weight', rows: config.maxPositions, dim: config.hiddenSize },
  ];
}

/** One embedding LoRA module of an adapter. */
export interface EmbeddingLora {
  path: string;
  /** The base tensor it adds to, as the overrides name it. */
  weightName: string;
  r: number;
  alpha: number;
  scale: number;
  A: HostTensor; // [r, rows]   lora_embedding_A
  B: HostTensor; // [dim, r]    lora_embedding_B
}

/** ΔW = s·(B·A)ᵀ, [rows, dim] row-major: ΔW[i, j] = s·Σ_k A[k, i]·B[j, k]. */
export function embeddingDelta(e: EmbeddingLora): HostTensor {
  const [r, rows] = e.A.shape;
  const dim = e.B.shape[0];
  const out = new Float32Array(rows * dim);
  const a = e.A.data;
  const b = e.B.data;
  for (let k = 0; k < r; k++) {
    for (let i = 0; i < rows; i++) {
      const av = a[k * rows + i] * e.scale;
      if (av === 0) continue;
      const o = i * dim;
      for (let j = 0; j < dim; j++) out[o + j] += av * b[j * r + k];
    }
  }
  return { shape: [rows, dim], data: out };
}

/** Which embedding tables the config targets ('all-linear' never does, as in PEFT). */
function embeddingTargets(config: PeftLoraConfig, tables: EmbeddingTable[]): EmbeddingTable[] {
  if (config.targetModules === 'all-linear' || config.targetModules === null) return [];
  const hit = new Set(matchTargetModules(config, tables.map((t) => t.path)));
  return tables.filter((t) => hit.has(t.path));
}

/**
 * The embedding LoRA modules of a PEFT adapter that its config targets, checked against the model's
 * tables. Throws on a missing factor, a wrong shape, or DoRA on an embedding (not supported here).
 */
export function embeddingLoras(modelConfig: HfModelConfig, parsed: ParsedPeftConfig, adapter: WeightSource, source = 'adapter_model.safetensors'): EmbeddingLora[] {
  const { config } = parsed;
  const lora = indexLora(adapter);
  const { semantics } = patternSemantics(config, lora, source);
  const out: EmbeddingLora[] = [];
  for (const t of embeddingTargets(config, embeddingTables(modelConfig))) {
    const a = lora.get(`${t.path}.lora_embedding_A`);
    const b = lora.get(`${t.path}.lora_embedding_B`);
    // A targeted table without embedding factors: the adapter may hold plain lora_A/B for it (not PEFT's layout).
    if (!a && !b) continue;
    if (!a || !b) {
      throw new InteropError('missing-tensor', `${source}: tensor "base_model.model.${t.path}.${a ? 'lora_embedding_B' : 'lora_embedding_A'}" is missing; adapter_config.json targets ${t.path}`, source);
    }
    const { r, alpha, scale } = moduleHyper(config, t.path, semantics);
    const want = (hit: { key: string; t: HostTensor }, shape: number[]) => {
      if (hit.t.shape.join() !== shape.join()) {
        throw new InteropError('shape-mismatch', `${source}: tensor "${hit.key}" has shape ${shapeText(hit.t.shape)} but ${t.path} (${t.rows} embeddings of ${t.dim}, r ${r}) needs ${shapeText(shape)}`, source);
      }
    };
    want(a, [r, t.rows]);
    want(b, [t.dim, r]);
    if (config.useDora) throw new InteropError('bad-config', `${source}: DoRA on the embedding ${t.path} is not supported (use_dora with lora_embedding_A/B)`, source);
    out.push({ path: t.path, weightName: t.weightName, r, alpha, scale, A: a.t, B: b.t });
  }
  return out;
}

/**
 * The model config with the adapter's vocabulary: PEFT saves the token table (and an untied lm_head) when
 * the vocabulary was resized for fine-tuning, and PEFT's user resizes the base before loading. Throws
 * when the copies disagree with each other, or the adapter resizes the table but not the untied head.
 */
export function adaptedModelConfig(baseConfig: HfModelConfig, base: WeightSource, overrides: Record<string, HostTensor>, source = 'adapter_model.safetensors'): { config: HfModelConfig; notes: string[] } {
  const table = embeddingTables(baseConfig)[0];
  const strip = (n: string) => n.replace(/^transformer\./, '');
  const find = (name: string) => Object.entries(overrides).find(([k]) => strip(k) === strip(name));
  const emb = find(table.weightName);
  const head = find('lm_head.weight');
  const notes: string[] = [];
  let modelConfig = baseConfig;
  if (baseConfig.tieWordEmbeddings && head) {
    // modules_to_save on a tied lm_head trains a copy of it: PEFT's output layer is then no longer the token table.
    const tableNow = emb?.[1] ?? base.get(table.weightName) ?? base.get(strip(table.weightName));
    const same = tableNow !== undefined && tableNow.shape.join() === head[1].shape.join() && tableNow.data.every((v, i) => v === head[1].data[i]);
    if (!same) {
      modelConfig = { ...baseConfig, tieWordEmbeddings: false };
      notes.push(`the adapter saves its own lm_head ("${head[0]}"), which differs from ${table.path}: the output layer is untied from the token table, as in PEFT`);
    }
  }
  const rowsOf = (hit: [string, HostTensor] | undefined, dimAxis: number) => {
    if (!hit) return undefined;
    const [k, t] = hit;
    if (t.shape.length !== 2 || t.shape[dimAxis] !== modelConfig.hiddenSize) {
      throw new InteropError('shape-mismatch', `${source}: tensor "${k}" has shape ${shapeText(t.shape)}; the model's hidden size is ${modelConfig.hiddenSize}, so it should be [vocab, ${modelConfig.hiddenSize}]`, source);
    }
    return t.shape[0];
  };
  const embRows = rowsOf(emb, 1);
  const untiedHead = !modelConfig.tieWordEmbeddings && (head !== undefined || base.get('lm_head.weight') !== undefined);
  const headRows = untiedHead ? rowsOf(head, 1) : undefined;
  const rows = embRows ?? headRows;
  if (rows === undefined || rows === modelConfig.vocabSize) {
    if (headRows !== undefined && embRows === undefined && headRows !== modelConfig.vocabSize) {
      throw new InteropError('shape-mismatch', `${source}: "${head![0]}" has ${headRows} rows but the base model's vocabulary (config.json vocab_size) is ${modelConfig.vocabSize}, and the adapter has no resized token table`, source);
    }
    return { config: modelConfig, notes };
  }
  if (untiedHead && (headRows ?? modelConfig.vocabSize) !== rows) {
    throw new InteropError(
      'shape-mismatch',
      `${source}: the adapter's token table "${emb![0]}" has ${rows} rows (the base has ${modelConfig.vocabSize}) but ${head ? `its lm_head has ${headRows}` : 'it has no lm_head.weight for the untied output layer'}; the resized vocabulary cannot be rebuilt`,
      source,
    );
  }
  return {
    config: { ...modelConfig, vocabSize: rows },
    notes: [...notes, `the adapter carries a resized vocabulary: ${rows} tokens instead of the base model's ${modelConfig.vocabSize} (its saved ${table.path}${untiedHead ? ' and lm_head' : ''} replace the base's)`],
  };
}

/**
 * The base tensors an adapter replaces: modules_to_save copies, trained biases, saved embedding/lm_head
 * copies (resized vocabularies), and W + ΔW of adapted embeddings; with the model config they imply.
 */
export function peftWeightOverrides(
  modelConfig: HfModelConfig,
  base: WeightSource,
  parsed: ParsedPeftConfig,
  adapter: WeightSource,
  source = 'adapter_model.safetensors',
): { overrides: Record<string, HostTensor>; embeddings: EmbeddingLora[]; modelConfig: HfModelConfig; notes: string[] } {
  const overrides = adapterOverrides(adapter);
  const adapted = adaptedModelConfig(modelConfig, base, overrides, source);
  const embeddings = embeddingLoras(adapted.config, parsed, adapter, source);
  for (const e of embeddings) {
    const w = overrides[e.weightName] ?? base.get(e.weightName) ?? base.get(e.weightName.replace(/^transformer\./, ''));
    if (!w) throw new InteropError('missing-tensor', `the base model has no "${e.weightName}" for the adapter's embedding LoRA on ${e.path}`);
    const d = embeddingDelta(e);
    if (w.shape.join() !== d.shape.join()) throw new InteropError('shape-mismatch', `base tensor "${e.weightName}" has shape ${shapeText(w.shape)}, the embedding LoRA on ${e.path} gives ${shapeText(d.shape)}`);
    const sum = new Float32Array(w.data.length);
    for (let i = 0; i < sum.length; i++) sum[i] = w.data[i] + d.data[i];
    overrides[e.weightName] = { shape: [...w.shape], data: sum };
  }
  return { overrides, embeddings, modelConfig: adapted.config, notes: adapted.notes };
}

/** The base checkpoint's name for an override (GPT-2 checkpoints come with or without "transformer."), if it has one. */
export function baseNameOf(base: WeightSource, name: string): string | undefined {
  if (base.get(name)) return name;
  const stripped = name.replace(/^transformer\./, '');
  if (base.get(stripped)) return stripped;
  if (base.get(`transformer.${name}`)) return `transformer.${name}`;
  return undefined;
}

/**
 * Build the base model with a PEFT adapter on it: the overrides (modules_to_save, biases, adapted
 * embedding tables) go into the weights, the LoRA/DoRA modules attach to the linear layers.
 */
export function loadPeftModel(
  modelConfig: HfModelConfig,
  base: WeightSource,
  parsed: ParsedPeftConfig,
  adapter: WeightSource,
  opts: { baseSource?: string; adapterSource?: string } = {},
): { model: CausalLm; adapter: AttachedAdapter; overrides: Record<string, HostTensor> } {
  const { overrides, embeddings, modelConfig: adaptedConfig, notes } = peftWeightOverrides(modelConfig, base, parsed, adapter, opts.adapterSource);
  const init = initHandling(parsed.config, opts.adapterSource?.replace(/adapter_model\.safetensors$/, 'adapter_config.json'));
  const build = (residualApplied: boolean) => {
    const model = buildCausalLm(adaptedConfig, overlayWeights(base, overrides), opts.baseSource);
    try {
      return { model, attached: attachPeftAdapter(model, parsed, adapter, opts.adapterSource, embeddings, { residualApplied }) };
    } catch (e) {
      model.dispose();
      throw e;
    }
  };
  let built = build(init.kind === 'residual');
  if (init.kind === 'residual') {
    // PEFT re-runs PiSSA / OLoRA on the base when it loads the adapter: the base of each adapted layer becomes W − s·B₀A₀.
    const { model, attached } = built;
    try {
      for (const [path, m] of attached.modules) {
        const layer = model.linears.get(path)!;
        if (layer.conv1d) {
          throw new InteropError('bad-config', `${opts.adapterSource ?? 'adapter'}: init_lora_weights "${init.method}" on the Conv1D layer ${path} (GPT-2): PEFT versions decompose its stored [in, out] weight differently; convert the adapter to plain LoRA in PEFT (save_pretrained with path_initial_model_for_weight_conversion)`);
        }
        const w = overlayWeights(base, overrides).get(layer.weightName)!;
        overrides[layer.weightName] = residualWeight(init.method, w, m.r, m.scale, path);
      }
    } finally {
      attached.dispose();
      model.dispose();
    }
    notes.push(`init_lora_weights "${init.method}": the base weights of the ${built.attached.modules.size} adapted layer(s) were replaced by the residual W − s·B₀A₀ of ${init.method === 'pissa' ? "PiSSA's SVD" : "OLoRA's QR"}, as PEFT does when it loads an unconverted adapter`);
    built = build(true);
  }
  const stray = Object.keys(overrides).filter((k) => baseNameOf(base, k) === undefined && !(k === 'lm_head.weight' && !adaptedConfig.tieWordEmbeddings));
  if (stray.length > 0) notes.push(`${stray.length} tensor(s) of the adapter replace no tensor of the base model and were ignored, e.g. "${stray[0]}"`);
  built.attached.notes.unshift(...notes);
  return { model: built.model, adapter: built.attached, overrides };
}

/**
 * Attach the adapter's LoRA/DoRA modules to the model's linear layers. `embeddings`: the embedding
 * LoRA modules already added to the model's tables (from `peftWeightOverrides`); when the adapter
 * has embedding LoRA and they were not applied, this throws (use `loadPeftModel`).
 */
export function attachPeftAdapter(
  model: CausalLm,
  parsed: ParsedPeftConfig,
  adapter: WeightSource,
  source = 'adapter_model.safetensors',
  embeddings?: EmbeddingLora[],
  opts: { residualApplied?: boolean } = {},
): AttachedAdapter {
  const { config } = parsed;
  const init = initHandling(config, source.replace(/adapter_model\.safetensors$/, 'adapter_config.json'));
  if (init.kind === 'residual' && !opts.residualApplied) {
    throw new InteropError('bad-config', `${source}: init_lora_weights "${init.method}" needs the base weights replaced by PEFT's residual W − s·B₀A₀; it is applied when the model is built (loadPeftModel)`, source);
  }
  const lora = indexLora(adapter);
  const resolved = patternSemantics(config, lora, source);
  const notes = [...parsed.notes, ...resolved.notes, ...(init.kind === 'plain' && init.note ? [init.note] : [])];
  const modules = new Map<string, LoraModule>();
  const created: tf.Tensor[] = [];
  const used = new Set<string>();
  const applied = embeddings ?? embeddingLoras(model.config, parsed, adapter, source);
  if (!embeddings && applied.length > 0) {
    throw new InteropError('bad-config', `${source}: the adapter has LoRA on the embedding ${applied[0].path} (lora_embedding_A/B); it is applied when the model is built (loadPeftModel / peftWeightOverrides)`, source);
  }
  for (const e of applied) {
    used.add(`${e.path}.lora_embedding_A`);
    used.add(`${e.path}.lora_embedding_B`);
  }
  let lmHeadFix: LoraModule | undefined;
  try {
    for (const { path, r, alpha, scale } of resolveTargets(model, config, resolved.semantics)) {
      const layer = model.linears.get(path)!;
      const take = (part: string, shape: number[]): tf.Tensor | undefined => {
        const hit = lora.get(`${path}.${part}`);
        if (!hit) return undefined;
        used.add(`${path}.${part}`);
        if (hit.t.shape.length !== shape.length || hit.t.shape.some((d, i) => d !== shape[i])) {
          throw new InteropError('shape-mismatch', `${source}: tensor "${hit.key}" has shape ${shapeText(hit.t.shape)} but ${path} (in ${layer.inFeatures}, out ${layer.outFeatures}, r ${r}) needs ${shapeText(shape)}`, source);
        }
        const t = tf.tensor(hit.t.data, shape, 'float32');
        created.push(t);
        return t;
      };
      const A = take('lora_A.weight', [r, layer.inFeatures]);
      const B = take('lora_B.weight', [layer.outFeatures, r]);
      if (!A || !B) {
        throw new InteropError('missing-tensor', `${source}: tensor "base_model.model.${path}.${A ? 'lora_B' : 'lora_A'}.weight" is missing; adapter_config.json targets ${path}`, source);
      }
      let magnitude: tf.Tensor1D | undefined;
      if (config.useDora) {
        magnitude = take('lora_magnitude_vector', [layer.outFeatures]) as tf.Tensor1D | undefined;
        if (!magnitude) throw new InteropError('missing-tensor', `${source}: use_dora is set but "base_model.model.${path}.lora_magnitude_vector" is missing`, source);
      }
      modules.set(path, { path, r, alpha, scale, A: A as tf.Tensor2D, B: B as tf.Tensor2D, magnitude });
    }
    // lm_head tied to an adapted token table computes with W + ΔW; PEFT's unmerged lm_head uses W.
    const head = model.linears.get('lm_head');
    const tiedTo = head && applied.find((e) => head.weightName.replace(/^transformer\./, '') === e.weightName.replace(/^transformer\./, ''));
    if (head && tiedTo) {
      if (modules.has('lm_head')) throw new InteropError('bad-config', `${source}: LoRA on both ${tiedTo.path} and the lm_head tied to it is not supported`, source);
      // -ΔWᵀ as a LoRA module on lm_head ([vocab, dim] = -s·Aᵀ·Bᵀ): A' = Bᵀ [r, dim], B' = Aᵀ [rows, r], scale -s.
      const Ap = tf.tidy(() => tf.transpose(tf.tensor2d(tiedTo.B.data, tiedTo.B.shape as [number, number]))) as tf.Tensor2D;
      const Bp = tf.tidy(() => tf.transpose(tf.tensor2d(tiedTo.A.data, tiedTo.A.shape as [number, number]))) as tf.Tensor2D;
      created.push(Ap, Bp);
      lmHeadFix = { path: 'lm_head', r: tiedTo.r, alpha: tiedTo.alpha, scale: -tiedTo.scale, A: Ap, B: Bp };
      notes.push(`lm_head is tied to ${tiedTo.path}: the adapted table feeds the input only, as in PEFT before merging (a merge changes both)`);
    }
  } catch (e) {
    for (const t of created) t.dispose();
    throw e;
  }
  const unused = [...lora.keys()].filter((k) => !used.has(k));
  if (unused.length > 0) {
    notes.push(`${unused.length} LoRA tensor(s) in the weights are not targeted by adapter_config.json and were ignored, e.g. "${unused[0]}"`);
  }
  return {
    config,
    notes,
    modules,
    embeddings: applied,
    lookup: lmHeadFix ? (p) => (p === 'lm_head' ? lmHeadFix : modules.get(p)) : (p) => modules.get(p),
    dispose: () => created.forEach((t) => t.dispose()),
  };
}
