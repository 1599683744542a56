// Trainable-parameter arithmetic for the Parameters view, from the same helpers as the hovers and
// `lora-lab params` (src/shared/paramCount.ts), in both conventions:
// - "bias trained" (the reference LoRA code's LoRALinear): full k·d + k vs LoRA r·d + k·r + k;
// - "bias frozen" (PEFT's `bias: "none"`): full k·d (+ k) vs LoRA r·(d + k); the percentage of ALL
//   parameters (base + LoRA) as PEFT's print_trainable_parameters() reports it.
// Adam keeps two extra float32 copies (m, v) of every trainable parameter.
import type { ModuleSummary } from '../../src/protocol/webview';
import { linearParamCount, modelParamCount } from '../../src/shared/paramCount';

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

/** linearParamCount wants positive integers; a LyCORIS module's rank may be 0 (full-rank LoKr factors). */
export function countable(m: ModuleSummary): boolean {
  return [m.inFeatures, m.outFeatures, m.r].every((v) => Number.isInteger(v) && v >= 1);
}

export function moduleRow(m: ModuleSummary): ParamRow | undefined {
  if (!countable(m)) return undefined;
  const shape = { inFeatures: m.inFeatures, outFeatures: m.outFeatures, hasBias: m.hasBias };
  const frozen = linearParamCount(shape, m.r, false);
  const trained = linearParamCount(shape, m.r, true);
  return {
    name: m.name,
    shape: `${m.outFeatures}×${m.inFeatures}`,
    r: m.r,
    full: frozen.full,
    loraBiasFrozen: frozen.lora,
    loraBiasTrained: trained.lora,
    percent: frozen.percent,
    reduction: frozen.reduction,
    percentBiasTrained: trained.percent,
    reductionBiasTrained: trained.reduction,
  };
}

export interface ModelParams {
  /** All base-model parameters (what a full fine-tune trains); the adapted layers' sum when unknown. */
  total: number;
  totalKnown: boolean;
  adaptedFull: number;
  loraBiasFrozen: number;
  loraBiasTrained: number;
  /**
   * PEFT's figure: 100·lora / (base + lora), over the whole base model when it is known, else over
   * the adapted layers only (`totalKnown` false: say so).
   */
  percentPeft: number;
  /** The reference LoRA code's figure over the adapted layers: 100·lora(bias trained) / full(adapted layers). */
  percentReference: number;
  reduction: number;
  /** Bytes of Adam state (m and v, float32) that LoRA does not need compared with full fine-tuning. */
  adamBytesSaved: number;
  adamBytesFull: number;
  adamBytesLora: number;
}

export function modelParams(modules: readonly ModuleSummary[], totalParams?: number): ModelParams {
  const adapted = modules.filter(countable).map((m) => ({ name: m.name, inFeatures: m.inFeatures, outFeatures: m.outFeatures, hasBias: m.hasBias, r: m.r }));
  const totalKnown = typeof totalParams === 'number' && totalParams > 0;
  const frozenLayers = modelParamCount(0, adapted, { trainBias: false });
  const adaptedFull = frozenLayers.adaptedFull;
  const total = totalKnown ? (totalParams as number) : adaptedFull;
  const peft = modelParamCount(total, adapted, { trainBias: false });
  const reference = modelParamCount(total, adapted, { trainBias: true });
  const adamBytesFull = 2 * 4 * total;
  const adamBytesLora = 2 * 4 * peft.trainableParams;
  return {
    total,
    totalKnown,
    adaptedFull,
    loraBiasFrozen: peft.trainableParams,
    loraBiasTrained: reference.trainableParams,
    percentPeft: peft.trainablePercent,
    percentReference: adaptedFull > 0 ? (100 * reference.trainableParams) / adaptedFull : 0,
    reduction: peft.trainableParams > 0 ? total / peft.trainableParams : 0,
    adamBytesSaved: adamBytesFull - adamBytesLora,
    adamBytesFull,
    adamBytesLora,
  };
}
