// THE CONTRACT between the engine and its drivers: a TrainingSession wraps a model with its LoRA adapter,
// an optimizer and a schedule; it streams MetricPoints, checkpoints and restores exactly, and exports the
// adapter in PEFT's layout. Every kind implements it: the built-in experiments here (buildBuiltinSession),
// causal-lm in src/models/causalLmSession.ts (buildCausalLmSession). Both are pure; src/runs/openSession.ts
// is the one place a session of any kind is opened (it reads what a kind needs from disk), and
// src/runs/trainRun.ts drives it.
//
// Built-in checkpoint layout (tensors): "param/<name>" for every trainable variable, "optim/<slot>/<name>"
// for the optimizer's slots. `state`: { formatVersion, kind, seed, step, optimizerName, optimizerStep }
// (wall-clock time is the run store's business).
// Data order and dropout masks are pure functions of (seed, step), so step is the whole data cursor.
import * as tf from '@tensorflow/tfjs-core';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { MetricPoint, RunParamSummary } from './reports';
import { EngineError, invalidArgument } from './errors';
import { buildAttentionAdaptation } from './experiments/attentionAdaptation';
import { buildLowRankRecovery } from './experiments/lowRankRecovery';
import type { ExperimentTask } from './experiments/types';
import type { LoRALinear } from './lora';
import { assignPlain, checkPlain, toPlain, type NamedTensors } from './namedTensors';
import { createOptimizer, type Optimizer } from './optim';
import { makeSchedule } from './schedule';
import { trainLoop } from './trainLoop';
import { peftAdapterConfig } from '../shared/peftAdapterConfig';

export type { NamedTensors } from './namedTensors';

/** What checkpoint() captures and restore() takes back; each kind chooses its tensor names and state. */
export interface SessionCheckpoint {
  step: number;
  tensors: NamedTensors;
  state: Record<string, unknown>;
}

/**
 * A PEFT adapter: `config` = adapter_config.json fields; `tensors` keyed
 * "base_model.model.<module path>.lora_A.weight" [r, in] / ".lora_B.weight" [out, r].
 */
export interface AdapterExport {
  config: Record<string, unknown>;
  tensors: NamedTensors;
  /** How the config says what training did, worth telling the user (e.g. scaling "none" as lora_alpha = r). */
  notes?: string[];
}

export interface TrainingSession {
  readonly config: ExperimentConfig;
  readonly totalSteps: number;
  /** Steps done so far (0 for a fresh session; the checkpoint's step after restore). */
  readonly step: number;
  readonly params: RunParamSummary;
  /**
   * Trains from `step` to totalSteps. Yields a point at multiples of training.logEvery, evalEvery and
   * checkpointEvery and at the last step; while suspended at a yield, `step` = point.step and checkpoint()
   * captures exactly that state. An aborted signal ends the iteration cleanly after the current step (one
   * final point for the last finished step; no point when aborted before the first). A NaN/Inf loss throws NonFiniteLossError with the variables
   * left at the last good step. elapsedMs counts from the start of this call.
   */
  run(opts?: { signal?: AbortSignal }): AsyncIterable<MetricPoint>;
  /** Params + optimizer state + step (the data cursor). */
  checkpoint(): SessionCheckpoint;
  /** Continue EXACTLY the same loss curve as the run that wrote `c`. */
  restore(c: SessionCheckpoint): void;
  exportAdapter(): AdapterExport;
  /** Ground truth of the experiment, e.g. { true_delta_w: U·V, base_weight: W }. */
  reference(): NamedTensors;
  dispose(): void;
}

/** Built-in sessions also expose ΔW = s·B·A per adapted module (PyTorch layout [out, in]). */
export interface BuiltinTrainingSession extends TrainingSession {
  deltaWeights(): NamedTensors;
  /** The adapted layers, by module path (for tests and inspection). */
  readonly modules: Readonly<Record<string, LoRALinear>>;
}

const CHECKPOINT_FORMAT = 1;

class BuiltinSession implements BuiltinTrainingSession {
  private currentStep = 0;
  private readonly optimizer: Optimizer;
  private disposed = false;
  private running = false;

  constructor(
    readonly config: ExperimentConfig,
    private readonly task: ExperimentTask<unknown>,
  ) {
    this.optimizer = createOptimizer(config.optimizer);
  }

  get totalSteps(): number {
    return this.config.training.steps;
  }
  get step(): number {
    return this.currentStep;
  }
  get params(): RunParamSummary {
    return this.task.params;
  }
  get modules(): Readonly<Record<string, LoRALinear>> {
    return this.task.modules;
  }

  run(opts: { signal?: AbortSignal } = {}): AsyncIterable<MetricPoint> {
    this.assertAlive();
    const t = this.config.training;
    const loop = trainLoop(this.task, {
      optimizer: this.optimizer,
      lrAt: makeSchedule({ ...this.config.schedule, lr: this.config.optimizer.lr, totalSteps: this.totalSteps }),
      totalSteps: this.totalSteps,
      startStep: this.currentStep,
      gradClip: this.config.optimizer.gradClip,
      evalEvery: t.evalEvery,
      yieldEvery: [t.logEvery, t.checkpointEvery].filter((n) => n > 0),
      signal: opts.signal,
      onStep: (s) => {
        this.currentStep = s;
      },
    });
    // Two loops over the same variables would interleave their updates: the second one to start is refused.
    const guarded = async function* (self: BuiltinSession): AsyncGenerator<MetricPoint, void, undefined> {
      if (self.running) throw invalidArgument('this TrainingSession is already running; finish or abort the current run() first');
      self.running = true;
      try {
        yield* loop;
      } finally {
        self.running = false;
      }
    };
    return guarded(this);
  }

  checkpoint(): SessionCheckpoint {
    this.assertAlive();
    const tensors: NamedTensors = {};
    for (const [name, v] of Object.entries(this.task.variables)) tensors[`param/${name}`] = toPlain(v);
    const opt = this.optimizer.getState();
    for (const [k, t] of Object.entries(opt.tensors)) tensors[`optim/${k}`] = t;
    return {
      step: this.currentStep,
      tensors,
      state: {
        formatVersion: CHECKPOINT_FORMAT,
        kind: this.config.kind,
        seed: this.config.training.seed,
        step: this.currentStep,
        optimizerName: this.optimizer.name,
        optimizerStep: opt.step,
      },
    };
  }

  restore(c: SessionCheckpoint): void {
    this.assertAlive();
    if (this.running) throw invalidArgument('cannot restore a checkpoint while run() is in progress');
    const s = c.state ?? {};
    const mismatch = (what: string, expected: unknown, got: unknown) =>
      new EngineError('checkpoint-mismatch', `checkpoint ${what} is ${JSON.stringify(got)}, but this session's is ${JSON.stringify(expected)}`);
    if (s.formatVersion !== undefined && s.formatVersion !== CHECKPOINT_FORMAT) throw mismatch('format version', CHECKPOINT_FORMAT, s.formatVersion);
    if (s.kind !== undefined && s.kind !== this.config.kind) throw mismatch('kind', this.config.kind, s.kind);
    if (s.seed !== undefined && s.seed !== this.config.training.seed) throw mismatch('seed', this.config.training.seed, s.seed);
    if (s.optimizerName !== undefined && s.optimizerName !== this.optimizer.name) throw mismatch('optimizer', this.optimizer.name, s.optimizerName);
    if (!Number.isInteger(c.step) || c.step < 0 || c.step > this.totalSteps) throw invalidArgument(`checkpoint step should be in [0, ${this.totalSteps}], got ${c.step}`);
    // Check every parameter first, then let the optimizer check and take its state, then assign: a checkpoint
    // that does not fit leaves the session exactly as it was.
    for (const [name, v] of Object.entries(this.task.variables)) checkPlain(v.shape, c.tensors, `param/${name}`);
    const slots: NamedTensors = {};
    for (const [k, t] of Object.entries(c.tensors)) if (k.startsWith('optim/')) slots[k.slice('optim/'.length)] = t;
    const optimizerStep = typeof s.optimizerStep === 'number' ? s.optimizerStep : c.step;
    this.optimizer.setState({ step: optimizerStep, tensors: slots }, this.task.variables);
    for (const [name, v] of Object.entries(this.task.variables)) assignPlain(v, c.tensors, `param/${name}`);
    this.currentStep = c.step;
  }

  exportAdapter(): AdapterExport {
    this.assertAlive();
    const L = this.config.lora;
    const tensors: NamedTensors = {};
    const targets: string[] = [];
    for (const [path, mod] of Object.entries(this.task.modules)) {
      const stem = `base_model.model.${path}`;
      tensors[`${stem}.lora_A.weight`] = toPlain(mod.A); // [r, in]
      tensors[`${stem}.lora_B.weight`] = toPlain(mod.B); // [out, r]
      if (mod.trainBias && mod.bias) tensors[`${stem}.bias`] = toPlain(mod.bias);
      targets.push(path.split('.').pop()!);
    }
    const extra = this.task.extraTrainable();
    const modulesToSave = new Set<string>();
    for (const [path, t] of Object.entries(extra)) {
      tensors[`base_model.model.${path}`] = toPlain(t);
      modulesToSave.add(path.split('.').slice(-2, -1)[0]);
    }
    tf.dispose(Object.values(extra));
    const { config, notes } = peftAdapterConfig({
      r: L.r,
      alpha: L.alpha,
      scaling: L.scaling,
      dropout: L.dropout,
      targetModules: targets,
      // From what actually trained: the reference code's single-head attention ignores lora.trainBias.
      bias: Object.values(this.task.modules).some((m) => m.trainBias) ? 'lora_only' : 'none',
      initLoraWeights: L.init === 'gaussian' ? 'gaussian' : true,
      modulesToSave: [...modulesToSave],
    });
    return {
      config,
      notes,
      tensors,
    };
  }

  deltaWeights(): NamedTensors {
    this.assertAlive();
    const out: NamedTensors = {};
    for (const [path, mod] of Object.entries(this.task.modules)) {
      const dW = mod.deltaW();
      out[path] = toPlain(dW);
      dW.dispose();
    }
    return out;
  }

  reference(): NamedTensors {
    this.assertAlive();
    return this.task.reference();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.optimizer.dispose();
    this.task.dispose();
  }

  private assertAlive(): void {
    if (this.disposed) throw invalidArgument('this TrainingSession was disposed');
  }
}

/** Builds a session for a built-in experiment kind. The tfjs backend must be initialised first (initBackend). */
export async function buildBuiltinSession(config: ExperimentConfig): Promise<BuiltinTrainingSession> {
  await tf.ready();
  let task: ExperimentTask<unknown>;
  switch (config.kind) {
    case 'low-rank-recovery':
      task = buildLowRankRecovery(config) as ExperimentTask<unknown>;
      break;
    case 'attention-adaptation':
      task = buildAttentionAdaptation(config) as ExperimentTask<unknown>;
      break;
    case 'causal-lm':
      throw new EngineError('unsupported-kind', 'kind "causal-lm" is built by src/models (buildCausalLmSession) and opened by src/runs (openSession), not by the engine');
    default: {
      const never: never = config.kind;
      throw new EngineError('unsupported-kind', `kind: unknown experiment kind "${String(never)}"`);
    }
  }
  return new BuiltinSession(config, task);
}
