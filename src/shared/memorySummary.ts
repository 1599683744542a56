// A causal-lm run's memory estimate as the config hover and the dashboard's Parameters view show it:
// the parts in bytes (computed by src/formats/memoryEstimate.ts), the limits they are judged against,
// and what the estimate assumes about the backend. Data and wording only, so that the extension host
// and the webview name the parts alike.
import { formatBytes } from './format';

export interface MemorySummary {
  batchSize: number;
  seqLen: number;
  gradientCheckpointing: boolean;
  /** 'sgd', 'adam' or 'adamw': its slots are counted with the LoRA parameters. */
  optimizer: string;
  /** Frozen weights in the tensor heap. */
  frozenWeights: number;
  /** LoRA parameters, their gradients and the optimizer's slots. */
  lora: number;
  /** What the forward pass keeps for the backward pass. */
  activations: number;
  /** The cross-entropy over the vocabulary. */
  loss: number;
  /** Whether the loss is computed in row chunks (false: the B×T×V logits of an adapted lm_head). */
  chunkedLoss: boolean;
  /** Everything in the tensor heap: the four parts and the wasm module's own data. */
  heap: number;
  /** The weight files and their float32 widening, held outside the heap. */
  host: number;
  /** heap + host + the runtime. */
  total: number;
  /** The tensor heap's bound where one applies (the wasm memory): its size, the share a run may plan to use, and what it is. */
  heapLimit?: { bytes: number; usableShare: number; what: string };
  /** The machine's memory. */
  machineBytes?: number;
  /** What the estimate assumes about the backend, said with the numbers. */
  assumption: string;
  /** Present when the run would be refused at start: what to change, most effective first. */
  remedies?: string[];
}

export interface MemoryPart {
  key: 'frozenWeights' | 'lora' | 'activations' | 'loss';
  label: string;
  bytes: number;
}

const OPTIMIZER_STATE: Record<string, string> = { adamw: 'AdamW m, v', adam: 'Adam m, v', sgd: 'SGD momentum' };

/** The four parts of the tensor heap, labelled as both views show them. */
export function memoryParts(s: MemorySummary): MemoryPart[] {
  return [
    { key: 'frozenWeights', label: 'frozen weights (in the heap)', bytes: s.frozenWeights },
    { key: 'lora', label: `LoRA + optimizer (A, B, gradients, ${OPTIMIZER_STATE[s.optimizer] ?? s.optimizer})`, bytes: s.lora },
    { key: 'activations', label: s.gradientCheckpointing ? 'activations (gradient checkpointing)' : 'activations', bytes: s.activations },
    { key: 'loss', label: s.chunkedLoss ? 'loss (chunked cross-entropy)' : 'loss (B×T×V logits: lm_head is adapted)', bytes: s.loss },
  ];
}

/** "batch 8 × seqLen 512, AdamW, gradient checkpointing off". */
export function memoryShapeText(s: MemorySummary): string {
  const opt = s.optimizer === 'adamw' ? 'AdamW' : s.optimizer === 'adam' ? 'Adam' : s.optimizer.toUpperCase();
  return `batch ${s.batchSize} × seqLen ${s.seqLen}, ${opt}, gradient checkpointing ${s.gradientCheckpointing ? 'on' : 'off'}`;
}

/** "of the wasm heap's 4 GiB (90 % usable: 3.6 GiB)", or '' where no heap bound applies. */
export function heapLimitText(s: MemorySummary): string {
  const l = s.heapLimit;
  if (!l) return '';
  return `of ${l.what}'s ${formatBytes(l.bytes)} (${Math.round(l.usableShare * 100)} % usable: ${formatBytes(l.usableShare * l.bytes)})`;
}

/** The reason a refused run would not fit ("the tensor heap needs …, more than …"); '' when it fits. */
export function memoryOverText(s: MemorySummary): string {
  if (!s.remedies) return '';
  const why: string[] = [];
  const l = s.heapLimit;
  if (l && s.heap > l.usableShare * l.bytes) why.push(`the tensor heap needs ${formatBytes(s.heap)}, more than the ${formatBytes(l.usableShare * l.bytes)} usable of ${l.what}'s ${formatBytes(l.bytes)}`);
  if (s.machineBytes !== undefined && s.total > s.machineBytes) why.push(`it needs ${formatBytes(s.total)} in all, more than this machine's ${formatBytes(s.machineBytes)}`);
  return why.join('; ');
}

/** What to change so that a refused run fits: "set training.gradientCheckpointing to true (…); or lower …". */
export function memoryRemediesText(s: MemorySummary): string {
  return (s.remedies ?? []).join('; or ');
}
