// Parameter counts for LoRA vs full fine-tuning, and the LoRA scale. Pure (no tfjs, no DOM, no node): the
// extension host uses it for hovers and the CLI `params` command, the dashboard webview for its
// Parameters tab, so both show the same numbers.
//
// Two conventions:
// - the reference LoRA code's: the bias of an adapted layer trains too. Full fine-tune k·d + k vs LoRA r·d + k·r + k.
// - PEFT's (`bias: "none"`): only A and B train; the percentage is of ALL parameters (base + LoRA), as
//   `print_trainable_parameters()` reports it.

// The scale rule, re-exported for the engine's callers.
export { loraScale } from './loraScale';

export interface LinearShape {
  /** d: input features. */
  inFeatures: number;
  /** k: output features. */
  outFeatures: number;
  /** Whether the layer has a bias (nn.Linear's default). */
  hasBias?: boolean;
}

export interface LinearParamCount {
  /** k·d (+ k): what full fine-tuning trains. */
  full: number;
  /** r·d + k·r (+ k when the bias trains). */
  lora: number;
  /** lora / full. */
  ratio: number;
  /** full / lora: "113.9× fewer". */
  reduction: number;
  /** 100 · lora / full. */
  percent: number;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} should be a positive integer, got ${v}`);
}

/** The comparison of the reference LoRA code for one linear layer; `trainBias` defaults to the reference LoRA code's convention (true). */
export function linearParamCount(shape: LinearShape, r: number, trainBias = true): LinearParamCount {
  const { inFeatures: d, outFeatures: k } = shape;
  checkPositiveInt('inFeatures', d);
  checkPositiveInt('outFeatures', k);
  checkPositiveInt('r', r);
  const hasBias = shape.hasBias ?? true;
  const full = k * d + (hasBias ? k : 0);
  const lora = r * d + k * r + (trainBias && hasBias ? k : 0);
  return { full, lora, ratio: lora / full, reduction: full / lora, percent: (100 * lora) / full };
}

export interface AdaptedModule extends LinearShape {
  /** Module path, e.g. "model.layers.0.self_attn.q_proj". */
  name: string;
  r: number;
}

export interface ModelParamCount {
  /** Every parameter of the base model (frozen or not). */
  baseParams: number;
  /** LoRA A and B parameters over all adapted modules. */
  loraParams: number;
  /** What trains: LoRA params, plus adapted biases (reference LoRA code convention) and any extra trainable base params. */
  trainableParams: number;
  /** PEFT's total: base + LoRA. */
  allParams: number;
  /** 100 · trainable / all (PEFT's `trainable%`). */
  trainablePercent: number;
  /** Full fine-tuning of the adapted modules only (k·d + k each) vs what trains there. */
  adaptedFull: number;
  reduction: number;
}

export interface ModelParamOptions {
  /** The reference LoRA code's convention: biases of adapted modules train. PEFT default: false. */
  trainBias?: boolean;
  /** Base parameters that train besides LoRA (e.g. the reference attention's W_O, PEFT's modules_to_save). */
  extraTrainable?: number;
}

/** Sums over adapted modules. `baseParams` is the whole base model's count (adapted or not). */
export function modelParamCount(baseParams: number, modules: AdaptedModule[], opts: ModelParamOptions = {}): ModelParamCount {
  const trainBias = opts.trainBias ?? false;
  let loraParams = 0;
  let biasParams = 0;
  let adaptedFull = 0;
  for (const m of modules) {
    const c = linearParamCount(m, m.r, false);
    loraParams += c.lora;
    adaptedFull += c.full;
    if (trainBias && (m.hasBias ?? true)) biasParams += m.outFeatures;
  }
  const trainableParams = loraParams + biasParams + (opts.extraTrainable ?? 0);
  const allParams = baseParams + loraParams;
  return {
    baseParams,
    loraParams,
    trainableParams,
    allParams,
    trainablePercent: allParams > 0 ? (100 * trainableParams) / allParams : 0,
    adaptedFull,
    reduction: trainableParams > 0 ? adaptedFull / trainableParams : Infinity,
  };
}

/** "1,049,600": digits grouped by commas regardless of the host locale. */
export function formatCount(n: number): string {
  const sign = n < 0 ? '-' : '';
  const s = String(Math.round(Math.abs(n)));
  return sign + s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** "0.88 %": two decimals, a space before the sign (the reference LoRA code's style). */
export function formatPercent(p: number, digits = 2): string {
  return `${p.toFixed(digits)} %`;
}

/** "113.9×": one decimal. */
export function formatReduction(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${x.toFixed(digits)}×` : '∞×';
}
