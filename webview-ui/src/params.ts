// Trainable-parameter arithmetic for the Parameters view, in both conventions:
// - "bias trained" (the seed's LoRALinear): full k·d + k vs LoRA r·d + k·r + k;
// - "bias frozen" (PEFT's `bias: "none"`): full k·d (+ k) vs LoRA r·(d + k); the percentage of ALL
//   parameters (base + LoRA) as PEFT's print_trainable_parameters() reports it.
// Adam keeps two extra float32 copies (m, v) of every trainable parameter.
import type { ModuleSummary } from '../../src/protocol/webview';

export interface ParamRow {
  name: string;
  shape: string;
  r: number;
  full: number;
  loraBiasFrozen: number;
  loraBiasTrained: number;
  /** 100·lora/full (bias frozen). */
  percent: number;
  /** full / lora (bias frozen). */
  reduction: number;
  /** Same two for the bias-trained convention. */
  percentBiasTrained: number;
  reductionBiasTrained: number;
}

export function moduleRow(m: ModuleSummary): ParamRow {
  const d = m.inFeatures;
  const k = m.outFeatures;
  const bias = m.hasBias ? k : 0;
  const full = k * d + bias;
  const loraBiasFrozen = m.r * (d + k);
  const loraBiasTrained = loraBiasFrozen + bias;
  return {
    name: m.name,
    shape: `${k}×${d}`,
    r: m.r,
    full,
    loraBiasFrozen,
    loraBiasTrained,
    percent: (100 * loraBiasFrozen) / full,
    reduction: full / loraBiasFrozen,
    percentBiasTrained: (100 * loraBiasTrained) / full,
    reductionBiasTrained: full / loraBiasTrained,
  };
}

export interface ModelParams {
  /** All base-model parameters (what a full fine-tune trains); the adapted layers' sum when unknown. */
  total: number;
  totalKnown: boolean;
  adaptedFull: number;
  loraBiasFrozen: number;
  loraBiasTrained: number;
  /** PEFT's figure: 100·lora / (total + lora). */
  percentPeft: number;
  /** Seed's figure over the adapted layers: 100·lora(bias trained) / full(adapted layers). */
  percentSeed: number;
  reduction: number;
  /** Bytes of Adam state (m and v, float32) that LoRA does not need compared with full fine-tuning. */
  adamBytesSaved: number;
  adamBytesFull: number;
  adamBytesLora: number;
}

export function modelParams(modules: readonly ModuleSummary[], totalParams?: number): ModelParams {
  const rows = modules.map(moduleRow);
  const adaptedFull = rows.reduce((s, r) => s + r.full, 0);
  const loraBiasFrozen = rows.reduce((s, r) => s + r.loraBiasFrozen, 0);
  const loraBiasTrained = rows.reduce((s, r) => s + r.loraBiasTrained, 0);
  const totalKnown = typeof totalParams === 'number' && totalParams > 0;
  const total = totalKnown ? (totalParams as number) : adaptedFull;
  const adamBytesFull = 2 * 4 * total;
  const adamBytesLora = 2 * 4 * loraBiasFrozen;
  return {
    total,
    totalKnown,
    adaptedFull,
    loraBiasFrozen,
    loraBiasTrained,
    percentPeft: total + loraBiasFrozen > 0 ? (100 * loraBiasFrozen) / (total + loraBiasFrozen) : 0,
    percentSeed: adaptedFull > 0 ? (100 * loraBiasTrained) / adaptedFull : 0,
    reduction: loraBiasFrozen > 0 ? total / loraBiasFrozen : 0,
    adamBytesSaved: adamBytesFull - adamBytesLora,
    adamBytesFull,
    adamBytesLora,
  };
}
