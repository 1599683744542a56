// The linear layers LoRA can adapt in each model we know, and the model's total parameter count: what the
// parameter-count hovers need. Pure (no vscode, no fs): configs in, shapes out.
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { HfModelConfig } from '../formats/hfConfig';

export interface LinearLayer {
  /** Module path, e.g. "model.layers.0.self_attn.q_proj"; its last part is what target modules match. */
  name: string;
  inFeatures: number;
  outFeatures: number;
  hasBias: boolean;
}

export interface ModelShape {
  /** Human name for the hover title, e.g. "Llama (config.json)". */
  label: string;
  /** Every parameter of the base model. */
  totalParams: number;
  linears: LinearLayer[];
  /** Base parameters that train besides LoRA whatever the targets (the seed attention's W_O). */
  alwaysTrainable?: (targets: string[]) => number;
}

/** Short module name, as target modules match it ("q_proj" for "model.layers.0.self_attn.q_proj"). */
export function leafName(path: string): string {
  const i = path.lastIndexOf('.');
  return i < 0 ? path : path.slice(i + 1);
}

/** The built-in experiments' models, from the resolved config (or undefined for causal-lm: see hfModelShape). */
export function experimentModelShape(config: ExperimentConfig): ModelShape | undefined {
  const m = config.model;
  switch (m.kind) {
    case 'low-rank-recovery': {
      // The seed's LoRALinear: one frozen W (k×d) with bias b; the layer is named "linear".
      const d = m.inFeatures;
      const k = m.outFeatures;
      return { label: `low-rank-recovery (${d}→${k} linear layer)`, totalParams: k * d + k, linears: [{ name: 'linear', inFeatures: d, outFeatures: k, hasBias: true }] };
    }
    case 'attention-adaptation': {
      // The seed's LoRAAttention: Q, K, V, O projections of E×E with bias. W_O is a plain trainable
      // Linear in the seed, so it trains fully unless LoRA is put on it ("o").
      const e = m.embedDim;
      const linears = ['q', 'k', 'v', 'o'].map((n) => ({ name: n, inFeatures: e, outFeatures: e, hasBias: true }));
      return {
        label: `attention-adaptation (E = ${e}, ${m.numHeads} head${m.numHeads === 1 ? '' : 's'})`,
        totalParams: 4 * (e * e + e),
        linears,
        alwaysTrainable: (targets) => (targets.includes('o') ? 0 : e * e + e),
      };
    }
    case 'causal-lm':
      return undefined;
    default: {
      const never: never = m;
      return never;
    }
  }
}

/** Llama / GPT-2 from a parsed config.json: transformers' module names and exact parameter totals. */
export function hfModelShape(cfg: HfModelConfig, source = 'config.json'): ModelShape {
  const h = cfg.hiddenSize;
  const linears: LinearLayer[] = [];
  let total = 0;
  if (cfg.modelType === 'llama') {
    const q = cfg.numHeads * cfg.headDim;
    const kv = cfg.numKvHeads * cfg.headDim;
    const ab = cfg.attentionBias;
    const mb = cfg.mlpBias;
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `model.layers.${i}`;
      linears.push(
        { name: `${p}.self_attn.q_proj`, inFeatures: h, outFeatures: q, hasBias: ab },
        { name: `${p}.self_attn.k_proj`, inFeatures: h, outFeatures: kv, hasBias: ab },
        { name: `${p}.self_attn.v_proj`, inFeatures: h, outFeatures: kv, hasBias: ab },
        { name: `${p}.self_attn.o_proj`, inFeatures: q, outFeatures: h, hasBias: ab },
        { name: `${p}.mlp.gate_proj`, inFeatures: h, outFeatures: cfg.intermediateSize, hasBias: mb },
        { name: `${p}.mlp.up_proj`, inFeatures: h, outFeatures: cfg.intermediateSize, hasBias: mb },
        { name: `${p}.mlp.down_proj`, inFeatures: cfg.intermediateSize, outFeatures: h, hasBias: mb },
      );
      total += 2 * h; // input_layernorm + post_attention_layernorm (RMSNorm weights)
    }
    total += cfg.vocabSize * h + h; // embed_tokens + final norm
    if (!cfg.tieWordEmbeddings) total += cfg.vocabSize * h; // lm_head
  } else {
    const inner = cfg.intermediateSize;
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `transformer.h.${i}`;
      // GPT-2's Conv1D stores [in, out]; the layer still maps in → out.
      linears.push(
        { name: `${p}.attn.c_attn`, inFeatures: h, outFeatures: 3 * h, hasBias: true },
        { name: `${p}.attn.c_proj`, inFeatures: h, outFeatures: h, hasBias: true },
        { name: `${p}.mlp.c_fc`, inFeatures: h, outFeatures: inner, hasBias: true },
        { name: `${p}.mlp.c_proj`, inFeatures: inner, outFeatures: h, hasBias: true },
      );
      total += 4 * h; // ln_1, ln_2 (weight + bias)
    }
    total += cfg.vocabSize * h + cfg.maxPositions * h + 2 * h; // wte, wpe, ln_f
    if (!cfg.tieWordEmbeddings) total += cfg.vocabSize * h;
  }
  for (const l of linears) total += l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0);
  const family = cfg.modelType === 'llama' ? (cfg.declaredType === 'llama' ? 'Llama' : `Llama-like (${cfg.declaredType})`) : 'GPT-2';
  return { label: `${family}, ${cfg.numLayers} layers, hidden ${h} (${source})`, totalParams: total, linears };
}

/** Layers whose short name is in `targets` (our configs' suffix match, as PEFT does for a list). */
export function matchTargets(shape: ModelShape, targets: string[]): LinearLayer[] {
  const set = new Set(targets);
  return shape.linears.filter((l) => set.has(leafName(l.name)) || targets.some((t) => l.name === t || l.name.endsWith(`.${t}`)));
}

/** A model defined in a Python file, as far as its literal nn.Linear layers tell (LoraConfig hovers). */
export function fileModelShape(linears: LinearLayer[]): ModelShape {
  const totalParams = linears.reduce((n, l) => n + l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0), 0);
  return { label: `the nn.Linear layers of this file (${linears.length})`, totalParams, linears };
}
