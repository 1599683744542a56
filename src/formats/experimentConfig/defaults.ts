// Defaults: what a user writes (every section optional but `kind`) resolved to a full
// ExperimentConfig, per experiment kind.
import { FormatError } from '../errors';
import { showValue } from '../jsonText';
import { EXPERIMENT_KINDS } from './schema';
import type {
  AttentionAdaptationModel,
  CausalLmModel,
  ExperimentConfig,
  ExperimentKind,
  LoraSettings,
  LowRankRecoveryModel,
  ModelSettings,
  OptimizerSettings,
  ScheduleSettings,
  TrainingSettings,
} from '../experimentTypes';

// Defaults.

/** What a user writes: every section and field optional except `kind` (and causal-lm's model). */
export interface ExperimentFile {
  $schema?: string;
  name?: string;
  kind: ExperimentKind;
  model?: Record<string, unknown>;
  lora?: Partial<LoraSettings>;
  optimizer?: Partial<OptimizerSettings>;
  schedule?: Partial<ScheduleSettings>;
  training?: Partial<TrainingSettings>;
  outputDir?: string;
}

/** Per-kind defaults of fields whose default depends on the kind (the schema's descriptions say the same). */
export const KIND_DEFAULTS: Readonly<
  Record<
    ExperimentKind,
    {
      init: LoraSettings['init'];
      targetModules: string[];
      optimizer: OptimizerSettings['name'];
      lr: number;
      gradClip: number;
      schedule: ScheduleSettings['name'];
      steps: number;
      batchSize: number;
    }
  >
> = {
  'low-rank-recovery': { init: 'gaussian', targetModules: ['linear'], optimizer: 'adam', lr: 0.01, gradClip: 0, schedule: 'constant', steps: 300, batchSize: 64 },
  'attention-adaptation': { init: 'gaussian', targetModules: ['q', 'k', 'v'], optimizer: 'adam', lr: 0.01, gradClip: 0, schedule: 'constant', steps: 500, batchSize: 64 },
  // targetModules [] = "the model type's PEFT default" (Llama: q_proj, v_proj; GPT-2: c_attn), chosen when the model is loaded.
  'causal-lm': { init: 'kaiming-uniform', targetModules: [], optimizer: 'adamw', lr: 2e-4, gradClip: 1, schedule: 'cosine', steps: 200, batchSize: 8 },
};

function defaultName(fileName: string | undefined, kind: ExperimentKind): string {
  if (!fileName) return kind;
  const base = fileName.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.lora\.(json|jsonc|ya?ml)$/i, '').replace(/\.(json|jsonc|ya?ml)$/i, '');
  return stem || kind;
}

const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const numOr = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const intOr = (v: unknown, d: number): number => (typeof v === 'number' && Number.isInteger(v) ? v : d);
const strOr = (v: unknown, d: string): string => (typeof v === 'string' && v.length > 0 ? v : d);
function enumOr<T extends string>(v: unknown, allowed: readonly T[], d: T): T {
  return allowed.includes(v as T) ? (v as T) : d;
}

/**
 * Fills every default of an experiment file. Values of the wrong type are replaced by defaults (so
 * this can run on a file that failed validation, for best-effort checks); `parseExperimentConfig`
 * only returns a config when there was no error. Throws FormatError when `kind` is not known.
 */
export function resolveConfigDefaults(file: ExperimentFile | Record<string, unknown>, fileName?: string): ExperimentConfig {
  const f = file as Record<string, unknown>;
  const kind = f.kind as ExperimentKind;
  if (!EXPERIMENT_KINDS.includes(kind)) {
    throw new FormatError('invalid-config', `\`kind\` must be one of ${EXPERIMENT_KINDS.join(', ')}, got ${showValue(f.kind)}`, { source: fileName });
  }
  const kd = KIND_DEFAULTS[kind];
  const m = obj(f.model);
  const l = obj(f.lora);
  const o = obj(f.optimizer);
  const s = obj(f.schedule);
  const t = obj(f.training);

  let model: ModelSettings;
  if (kind === 'low-rank-recovery') {
    model = {
      kind,
      inFeatures: intOr(m.inFeatures, 64),
      outFeatures: intOr(m.outFeatures, 64),
      trueRank: intOr(m.trueRank, 4),
      updateScale: numOr(m.updateScale, 0.5),
      noise: numOr(m.noise, 0),
    } satisfies LowRankRecoveryModel;
  } else if (kind === 'attention-adaptation') {
    const seqLen = intOr(m.seqLen, 8);
    model = {
      kind,
      embedDim: intOr(m.embedDim, 32),
      numHeads: intOr(m.numHeads, 1),
      seqLen,
      kvSeqLen: intOr(m.kvSeqLen, seqLen),
      trueRank: intOr(m.trueRank, 2),
      updateScale: numOr(m.updateScale, 0.5),
    } satisfies AttentionAdaptationModel;
  } else {
    const d = obj(m.dataset);
    model = {
      kind,
      modelPath: strOr(m.modelPath, ''),
      dataset: {
        path: strOr(d.path, ''),
        seqLen: intOr(d.seqLen, 64),
        evalFraction: numOr(d.evalFraction, 0.1),
        tokenizer: enumOr(d.tokenizer, ['bytes', 'tokenizer'] as const, 'bytes'),
      },
    } satisfies CausalLmModel;
  }

  const r = intOr(l.r, 4);
  const lora: LoraSettings = {
    r,
    alpha: numOr(l.alpha, r),
    scaling: enumOr(l.scaling, ['standard', 'rslora', 'none'] as const, 'standard'),
    dropout: numOr(l.dropout, 0),
    init: enumOr(l.init, ['gaussian', 'kaiming-uniform'] as const, kd.init),
    targetModules: Array.isArray(l.targetModules) && l.targetModules.every((x) => typeof x === 'string') ? [...(l.targetModules as string[])] : [...kd.targetModules],
    trainBias: typeof l.trainBias === 'boolean' ? l.trainBias : false,
    useDora: typeof l.useDora === 'boolean' ? l.useDora : false,
  };

  const optName = enumOr(o.name, ['sgd', 'adam', 'adamw'] as const, kd.optimizer);
  const optimizer: OptimizerSettings = {
    name: optName,
    lr: numOr(o.lr, kd.lr),
    weightDecay: numOr(o.weightDecay, optName === 'adamw' ? 0.01 : 0),
    beta1: numOr(o.beta1, 0.9),
    beta2: numOr(o.beta2, 0.999),
    eps: numOr(o.eps, 1e-8),
    momentum: numOr(o.momentum, 0),
    gradClip: numOr(o.gradClip, kd.gradClip),
  };

  const schedule: ScheduleSettings = {
    name: enumOr(s.name, ['constant', 'linear', 'cosine'] as const, kd.schedule),
    warmupSteps: intOr(s.warmupSteps, 0),
    minLrRatio: numOr(s.minLrRatio, 0.1),
  };

  const steps = intOr(t.steps, kd.steps);
  const noEvalData = model.kind === 'causal-lm' && model.dataset.evalFraction === 0;
  const training: TrainingSettings = {
    steps,
    batchSize: intOr(t.batchSize, kd.batchSize),
    seed: intOr(t.seed, 0),
    evalEvery: intOr(t.evalEvery, noEvalData ? 0 : Math.max(1, Math.floor(steps / 10))),
    evalBatches: intOr(t.evalBatches, 4),
    checkpointEvery: intOr(t.checkpointEvery, Math.max(1, Math.floor(steps / 10))),
    keepCheckpoints: intOr(t.keepCheckpoints, 10),
    logEvery: intOr(t.logEvery, 1),
    gradientCheckpointing: typeof t.gradientCheckpointing === 'boolean' ? t.gradientCheckpointing : false,
  };

  return {
    name: strOr(f.name, defaultName(fileName, kind)),
    kind,
    model,
    lora,
    optimizer,
    schedule,
    training,
    outputDir: strOr(f.outputDir, 'lora-runs'),
  };
}
