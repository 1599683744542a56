// The resolved experiment config: what `parseExperimentConfig` returns and what every run saves as
// `config.json`. All defaults are filled in; nothing here is optional unless the kind makes it so.
// The JSON Schema in schemas/experiment.schema.json describes the *file* (defaults omitted).

export type ExperimentKind = 'low-rank-recovery' | 'attention-adaptation' | 'causal-lm';

/** How A is initialised: the seed's N(0, 0.02), or PEFT's default Kaiming-uniform (a = √5). B is always 0. */
export type LoraInit = 'gaussian' | 'kaiming-uniform';

/** How α turns into the scale s on B·A: α/r (LoRA), α/√r (rsLoRA), or 1 (the seed's code has no α). */
import type { ScalingMode } from '../shared/loraScale';
export type { ScalingMode };

export type OptimizerName = 'sgd' | 'adam' | 'adamw';
export type ScheduleName = 'constant' | 'linear' | 'cosine';

export interface LoraSettings {
  r: number;
  alpha: number;
  scaling: ScalingMode;
  dropout: number;
  init: LoraInit;
  /** Module names (suffix match, as PEFT) the adapter goes on, e.g. ["q", "k", "v"] or ["q_proj", "v_proj"]. */
  targetModules: string[];
  /** Train the bias of adapted layers too (the seed's convention) or keep it frozen (PEFT's `bias: "none"`). */
  trainBias: boolean;
  /**
   * DoRA (weight-decomposed LoRA, PEFT `use_dora`): also train a magnitude per output row of each adapted
   * layer. causal-lm only. Always set by `parseExperimentConfig`; absent (= false) in configs saved before it.
   */
  useDora?: boolean;
}

export interface OptimizerSettings {
  name: OptimizerName;
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  momentum: number;
  /** Clip the global gradient norm to this value; 0 disables clipping. */
  gradClip: number;
}

export interface ScheduleSettings {
  name: ScheduleName;
  warmupSteps: number;
  /** For linear and cosine: the lr at the end, as a fraction of `optimizer.lr`. */
  minLrRatio: number;
}

export interface TrainingSettings {
  steps: number;
  batchSize: number;
  seed: number;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  /** How many of the newest checkpoints a run keeps (0 = all). They feed the dashboard's checkpoint scrubber and spectra over steps. */
  keepCheckpoints?: number;
  logEvery: number;
  /**
   * Keep only each transformer block's input in the forward pass and recompute the block in the backward
   * pass (causal-lm): activations then scale with one block, not all, for ~1/3 more compute. Always set by
   * `parseExperimentConfig`; absent (= false) in configs saved before it.
   */
  gradientCheckpointing?: boolean;
}

/** `low-rank-recovery`: a frozen random linear layer W (k×d) and a target W* = W + U·V with rank(U·V) = trueRank. */
export interface LowRankRecoveryModel {
  kind: 'low-rank-recovery';
  inFeatures: number; // d
  outFeatures: number; // k
  trueRank: number; // r*
  /** Scale of the true update U·V relative to W (Frobenius-norm ratio). */
  updateScale: number;
  /** Std of the Gaussian noise added to the targets (0 = noiseless). */
  noise: number;
}

/** `attention-adaptation`: the seed's LoRAAttention learns a teacher whose W_Q, W_K, W_V differ by low-rank updates. */
export interface AttentionAdaptationModel {
  kind: 'attention-adaptation';
  embedDim: number;
  numHeads: number;
  seqLen: number;
  /** Key/value sequence length; equal to seqLen for self-attention, different for cross-attention. */
  kvSeqLen: number;
  trueRank: number;
  updateScale: number;
}

/** `causal-lm`: a Hugging Face Llama or GPT-2 folder on disk, fine-tuned on a local text dataset. */
export interface CausalLmModel {
  kind: 'causal-lm';
  /** Folder with config.json + model.safetensors (or a sharded index); relative paths resolve against the config file. */
  modelPath: string;
  dataset: {
    /** A .txt file, or .jsonl with a `text` field. */
    path: string;
    seqLen: number;
    evalFraction: number;
    /** 'bytes' (vocab 256) or 'tokenizer' (tokenizer.json in the model folder). */
    tokenizer: 'bytes' | 'tokenizer';
  };
}

export type ModelSettings = LowRankRecoveryModel | AttentionAdaptationModel | CausalLmModel;

export interface ExperimentConfig {
  /** Free-form name, used in run ids and the dashboard legend. */
  name: string;
  kind: ExperimentKind;
  model: ModelSettings;
  lora: LoraSettings;
  optimizer: OptimizerSettings;
  schedule: ScheduleSettings;
  training: TrainingSettings;
  /** Where runs go, relative to the config file's folder. Default: "lora-runs". */
  outputDir: string;
}

/** One problem found while parsing a config file; `path` is a JSON path like `lora.r`. */
export interface ConfigIssue {
  severity: 'error' | 'warning';
  path: string;
  message: string;
  /** 0-based offsets into the text, for editor diagnostics; line/column are 1-based for humans. */
  offset: number;
  length: number;
  line: number;
  column: number;
}
