// Text of the parameter-count hovers. Pure functions (markdown strings), unit-tested in plain Node; the
// vscode HoverProviders in paramHover.ts only find what is under the cursor and call these. Every hover
// names its convention: the seed's (the adapted layer's bias trains with A and B; percent of the full
// layer) or PEFT's (bias frozen; percent of ALL parameters, base + LoRA, as print_trainable_parameters).
import type { ScalingMode } from '../formats/experimentTypes';
import { formatCount, formatPercent, formatReduction, linearParamCount } from '../shared/paramCount';
import { loraScale } from '../shared/loraScale';
import { formatBytes } from '../shared/format';
import { heapLimitText, memoryOverText, memoryParts, memoryRemediesText, memoryShapeText, type MemorySummary } from '../shared/memorySummary';
import { leafName, matchTargets, type LinearLayer, type ModelShape } from './modelShapes';

const SEED_CONVENTION = "Convention: the reference LoRA code's — the layer's bias trains with A and B; % is of the full layer's parameters.";
const PEFT_CONVENTION = "Convention: PEFT's — bias frozen (`bias: \"none\"`); trainable % is of all parameters (base + LoRA), as `print_trainable_parameters()` prints it.";

/** "about 114×" — rounded for reading; the exact factor is given next to it. */
function about(x: number): string {
  if (!Number.isFinite(x)) return 'infinitely';
  return x >= 10 ? `about ${Math.round(x)}×` : `about ${x.toFixed(1)}×`;
}

function fmtNum(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4)));
}

export function scaleText(alpha: number, r: number, scaling: ScalingMode): string {
  const s = fmtNum(loraScale(alpha, r, scaling));
  switch (scaling) {
    case 'standard':
      return `effective scale s = α/r = ${fmtNum(alpha)}/${r} = ${s}`;
    case 'rslora':
      return `effective scale s = α/√r = ${fmtNum(alpha)}/√${r} = ${s} (rsLoRA)`;
    case 'none':
      return 'effective scale s = 1 (scaling "none": the reference LoRA code has no α)';
    default: {
      const never: never = scaling;
      return never;
    }
  }
}

/** `nn.Linear(d, k)`: what it holds, and what LoRA at a few ranks would train instead. */
export function linearHoverText(d: number, k: number, hasBias = true, ranks: number[] = [4, 8, 16]): string {
  const full = linearParamCount({ inFeatures: d, outFeatures: k, hasBias }, 1).full;
  const lines = [
    `**nn.Linear(${d}, ${k})** — ${formatCount(full)} parameters (W ${k}×${d}${hasBias ? ` + b ${k}` : ''})`,
    '',
    '| LoRA r | trainable (A r×d + B k×r) | % of layer | fewer |',
    '|---:|---:|---:|---:|',
  ];
  for (const r of ranks) {
    const c = linearParamCount({ inFeatures: d, outFeatures: k, hasBias }, r, false);
    lines.push(`| ${r} | ${formatCount(c.lora)} | ${formatPercent(c.percent)} | ${formatReduction(c.reduction)} |`);
  }
  lines.push('', "Convention: PEFT's — bias frozen; % is of this layer's parameters.");
  return lines.join('\n');
}

/** The seed's `LoRALinear(d, k, r)`: the worked example reads 1,049,600 vs 9,216, 0.88 %, about 114× fewer. */
export function loraLinearHoverText(d: number, k: number, r: number, alpha?: number, scaling: ScalingMode = 'none'): string {
  const c = linearParamCount({ inFeatures: d, outFeatures: k, hasBias: true }, r, true);
  const lines = [
    `**LoRALinear(${d}, ${k}, r=${r})** — full fine-tune ${formatCount(c.full)} vs LoRA ${formatCount(c.lora)} trainable: ${formatPercent(c.percent)}, ${about(c.reduction)} fewer (${formatReduction(c.reduction)})`,
    '',
    `- full: W ${k}×${d} + b ${k} = ${formatCount(c.full)}`,
    `- LoRA: A ${r}×${d} + B ${k}×${r} + b ${k} = ${formatCount(c.lora)}`,
    `- ${alpha === undefined ? scaleText(1, r, scaling) : scaleText(alpha, r, scaling)}`,
    '',
    SEED_CONVENTION,
  ];
  return lines.join('\n');
}

export interface ModelHoverInput {
  shape: ModelShape;
  r: number;
  alpha: number;
  scaling: ScalingMode;
  targets: string[];
  /** The seed's convention (bias of adapted layers trains) or PEFT's (frozen). */
  trainBias: boolean;
  convention: 'seed' | 'peft';
  /** Per-module ranks (PEFT rank_pattern), by full module name; default r. */
  rankOf?: (layer: LinearLayer) => number;
  /** Explicit adapted layers (PEFT semantics computed elsewhere); default: suffix match of `targets`. */
  adapted?: LinearLayer[];
  /** A layer the cursor is on: its line comes first. */
  focus?: string;
  /** Extra trainable base parameters (PEFT modules_to_save). */
  extraTrainable?: number;
  /** What the cursor is on, for the title ("r", "target modules", …). */
  title?: string;
  /** DoRA (PEFT `use_dora`, experiment `lora.useDora`): each adapted layer also trains `lora_magnitude_vector` [out]. */
  useDora?: boolean;
  /** A causal-lm experiment's memory estimate, as memoryHoverText writes it (a list item with sub-items). */
  memory?: string;
}

export interface ModelCounts {
  adapted: LinearLayer[];
  /** A and B of every adapted layer, plus DoRA's magnitudes when on (doraParams is that part). */
  loraParams: number;
  /** DoRA's trainable magnitude vectors: one value per output feature of each adapted layer (0 without DoRA). */
  doraParams: number;
  biasParams: number;
  extraTrainable: number;
  trainable: number;
  adaptedFull: number;
  totalParams: number;
  /** trainable / (total + lora), PEFT's figure. */
  percentOfAll: number;
}

export function modelCounts(input: ModelHoverInput): ModelCounts {
  const adapted = input.adapted ?? matchTargets(input.shape, input.targets);
  let loraParams = 0;
  let doraParams = 0;
  let biasParams = 0;
  let adaptedFull = 0;
  for (const l of adapted) {
    const r = input.rankOf?.(l) ?? input.r;
    loraParams += r * l.inFeatures + l.outFeatures * r;
    if (input.useDora) doraParams += l.outFeatures;
    adaptedFull += l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0);
    if (input.trainBias && l.hasBias) biasParams += l.outFeatures;
  }
  const extraTrainable = (input.extraTrainable ?? 0) + (input.shape.alwaysTrainable?.(input.targets) ?? 0);
  loraParams += doraParams;
  const trainable = loraParams + biasParams + extraTrainable;
  const totalParams = input.shape.totalParams;
  return { adapted, loraParams, doraParams, biasParams, extraTrainable, trainable, adaptedFull, totalParams, percentOfAll: (100 * trainable) / (totalParams + loraParams) };
}

function layerLine(l: LinearLayer, r: number, trainBias: boolean, useDora: boolean): string {
  const c = linearParamCount({ inFeatures: l.inFeatures, outFeatures: l.outFeatures, hasBias: l.hasBias }, r, trainBias);
  // DoRA's magnitude vector (shape [out]) trains with A and B.
  const lora = c.lora + (useDora ? l.outFeatures : 0);
  const dora = useDora ? ` (incl. DoRA magnitude ${formatCount(l.outFeatures)})` : '';
  return `\`${l.name}\` (${l.inFeatures}→${l.outFeatures}${l.hasBias ? ', bias' : ''}): full ${formatCount(c.full)} vs LoRA ${formatCount(lora)}${dora} — ${formatPercent((100 * lora) / c.full)}, ${about(c.full / lora)} fewer`;
}

/** Whole-model summary with the focused layer first; used for experiment configs, PEFT, axolotl, mlx-lm and LoraConfig(...). */
export function modelHoverText(input: ModelHoverInput): string {
  const c = modelCounts(input);
  const lines: string[] = [];
  const over = input.title && !['r', 'alpha', 'lora'].includes(input.title) ? ` (${input.title})` : '';
  lines.push(`**LoRA r = ${input.r}, α = ${fmtNum(input.alpha)}${input.useDora ? ' + DoRA' : ''}**${over} — ${input.shape.label}`);
  lines.push('');
  lines.push(`- ${scaleText(input.alpha, input.r, input.scaling)}`);
  // The layer under the cursor, else the first adapted one as the per-layer example.
  const focusLayer = (input.focus ? input.shape.linears.find((l) => l.name === input.focus || leafName(l.name) === input.focus) : undefined) ?? c.adapted[0];
  if (focusLayer) lines.push(`- ${input.focus ? 'this layer' : 'per layer, e.g.'}: ${layerLine(focusLayer, input.rankOf?.(focusLayer) ?? input.r, input.trainBias, input.useDora === true)}`);
  if (c.adapted.length === 0) {
    lines.push(`- target modules ${JSON.stringify(input.targets)} match no linear layer of this model (layers: ${[...new Set(input.shape.linears.map((l) => leafName(l.name)))].join(', ')})`);
  } else {
    const kinds = [...new Set(c.adapted.map((l) => leafName(l.name)))];
    lines.push(`- adapted: ${c.adapted.length} layer${c.adapted.length === 1 ? '' : 's'} (${kinds.join(', ')}): full fine-tune of them ${formatCount(c.adaptedFull)} vs LoRA ${formatCount(c.loraParams)}${c.doraParams ? ` (A, B ${formatCount(c.loraParams - c.doraParams)} + DoRA magnitude ${formatCount(c.doraParams)})` : ''}${c.biasParams ? ` + biases ${formatCount(c.biasParams)}` : ''}`);
  }
  lines.push(`- whole model: ${formatCount(c.totalParams)} parameters; trainable ${formatCount(c.trainable)}${c.extraTrainable ? ` (incl. ${formatCount(c.extraTrainable)} base parameters trained in full)` : ''}`);
  lines.push(`- trainable %: ${formatPercent(c.percentOfAll)} of all parameters (base + LoRA), ${formatPercent((100 * c.trainable) / c.totalParams)} of the base; ${about(c.totalParams / Math.max(1, c.trainable))} fewer than full fine-tuning`);
  if (input.memory) lines.push(input.memory);
  lines.push('');
  lines.push(input.convention === 'seed' && input.trainBias ? SEED_CONVENTION.replace("% is of the full layer's parameters", '% of all is PEFT’s figure') : PEFT_CONVENTION);
  return lines.join('\n');
}

/** When the base model cannot be found: what we can still say. */
export function noModelHoverText(r: number, alpha: number, scaling: ScalingMode, why: string): string {
  return [`**LoRA · r = ${r}, α = ${fmtNum(alpha)}**`, '', `- ${scaleText(alpha, r, scaling)}`, `- parameter counts need the base model's config.json: ${why}`].join('\n');
}

/**
 * The memory estimate as a list item of the hover: the total, the heap's parts against the limit it is
 * judged by, what it assumes about the backend, and what to change when the run would be refused.
 */
export function memoryHoverText(s: MemorySummary): string {
  const machine = s.machineBytes !== undefined ? `, of this machine's ${formatBytes(s.machineBytes)}` : '';
  const limit = heapLimitText(s);
  const parts = memoryParts(s).map((p) => `${p.label} ${formatBytes(p.bytes)}`).join('; ');
  return [
    `- memory estimate (${memoryShapeText(s)}): **${formatBytes(s.total)}** in all${machine}`,
    `  - tensor heap ${formatBytes(s.heap)}${limit ? ` ${limit}` : ''}: ${parts}`,
    `  - weight files, held outside the heap: ${formatBytes(s.host)}`,
    `  - ${s.assumption}`,
    `  - ${s.remedies ? `**would not fit**: ${memoryOverText(s)}. To fit: ${memoryRemediesText(s)}.` : 'fits'}`,
  ].join('\n');
}
