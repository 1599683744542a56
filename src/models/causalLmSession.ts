// The TrainingSession (src/engine/session.ts) for kind 'causal-lm': LoRA on a local Hugging Face Llama /
// GPT-2 folder, fine-tuned on a text dataset with the engine's generic optimizer, schedule and loop. The
// adapter it exports is PEFT's layout (base_model.model.<path>.lora_A.weight, adapter_config.json).
//
// Pure: buildCausalLmSession works from the model's parsed config, its weights and the dataset text
// already in memory. Reading them from disk (and refusing a run that cannot fit) is
// src/runs/openSession.ts, the one place a session of any kind is opened.
//
// Checkpoint layout (tensors): the adapter's PEFT keys for every trainable tensor, "optimizer/<slot>" for
// the optimizer's slots. `state`: { optimizerStep, elapsedMs } (elapsed time continues across a resume).
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLmModel, ExperimentConfig } from '../formats/experimentTypes';
import type { MetricPoint, RunParamSummary } from '../protocol/runFormat';
import { InteropError } from '../formats/adapters/interopError';
import { matchTargetModules, type PeftLoraConfig } from '../formats/peftConfig';
import type { CausalLmInputs } from '../formats/weightSource';
import { createOptimizer, type Optimizer } from '../engine/optim';
import { makeSchedule } from '../engine/schedule';
import { trainLoop, type TrainTask } from '../engine/trainLoop';
import { Rng } from '../engine/rng';
import { loraScale } from '../shared/loraScale';
import { PEFT_DEFAULT_TARGETS } from '../engine/memoryEstimate';
import { peftAdapterConfig } from '../shared/peftAdapterConfig';
import type { NamedTensors } from '../engine/namedTensors';
import type { AdapterExport, SessionCheckpoint, TrainingSession } from '../engine/session';
import { buildCausalLm } from './buildCausalLm';
import { causalLmTrainLoss, idsTensor, type CausalLm } from './causalLm';
import { initTrainableAdapter, type LoraTarget, type TrainableAdapter } from './loraTrainable';
import { bytesTokenizer, datasetDocuments, hfTokenizer, makeWindows, type TokenWindows } from './textData';

/** What a causal-lm session needs, already read: the model folder's contents and the dataset text. */
export type { CausalLmInputs };

/** The causal-lm part of an experiment config; throws when the config is of another kind. */
export function causalLmSettings(config: ExperimentConfig): CausalLmModel {
  if (config.model.kind !== 'causal-lm') throw new InteropError('bad-config', `a causal-lm session needs kind "causal-lm", got "${config.kind}"`);
  return config.model;
}

/** What the adapter targets and what the data made, for callers that know the kind (export, tests). */
export interface CausalLmDetails {
  targets: LoraTarget[];
  trainWindows: number;
  evalWindows: number;
  modelPath: string;
  tokenizer: 'bytes' | 'tokenizer';
}

const OPT_PREFIX = 'optimizer/';

/** The model, its adapter and the token windows, checked and built by buildCausalLmSession. */
interface CausalLmParts {
  model: CausalLm;
  adapter: TrainableAdapter;
  windows: TokenWindows;
  /** The adapted linear layers' module paths, in the model's order. */
  paths: string[];
  details: CausalLmDetails;
}

export class CausalLmSession implements TrainingSession {
  readonly totalSteps: number;
  readonly params: RunParamSummary;
  readonly details: CausalLmDetails;
  private currentStep = 0;
  private elapsedMs = 0;
  private readonly model: CausalLm;
  private readonly adapter: TrainableAdapter;
  private readonly windows: TokenWindows;
  private readonly paths: string[];
  private readonly optimizer: Optimizer;
  private readonly lrAt: (updateIndex: number) => number;
  private readonly task: TrainTask<tf.Tensor2D>;

  constructor(
    readonly config: ExperimentConfig,
    parts: CausalLmParts,
  ) {
    ({ model: this.model, adapter: this.adapter, windows: this.windows, paths: this.paths, details: this.details } = parts);
    this.optimizer = createOptimizer(config.optimizer);
    const t = config.training;
    this.totalSteps = t.steps;
    this.lrAt = makeSchedule({ ...config.schedule, lr: config.optimizer.lr, totalSteps: t.steps });
    const seed = t.seed;
    this.task = {
      variables: this.adapter.variables,
      nextBatch: (u: number): tf.Tensor2D => {
        const rng = Rng.derive(seed, 'data', u);
        const rows: Int32Array[] = [];
        for (let i = 0; i < t.batchSize; i++) rows.push(this.windows.train[rng.int(this.windows.train.length)]);
        return this.batchOf(rows);
      },
      disposeBatch: (b: tf.Tensor2D) => b.dispose(),
      lossFn: (batch: tf.Tensor2D, training: boolean, u: number) =>
        causalLmTrainLoss(this.model, batch, this.dropoutLookup(training, u), { checkpoint: training && t.gradientCheckpointing === true }),
      evalLoss: this.windows.eval.length === 0 ? undefined : () => this.evalLoss(),
    };
    const trainable = this.adapter.paramCount;
    this.params = {
      totalParams: this.model.paramCount,
      trainableParams: trainable,
      trainablePercentPeft: (100 * trainable) / (this.model.paramCount + trainable),
    };
  }

  get step(): number {
    return this.currentStep;
  }

  async *run(opts: { signal?: AbortSignal } = {}): AsyncGenerator<MetricPoint, void, undefined> {
    const t = this.config.training;
    for await (const p of trainLoop(this.task, {
      optimizer: this.optimizer,
      lrAt: this.lrAt,
      totalSteps: t.steps,
      startStep: this.currentStep,
      gradClip: this.config.optimizer.gradClip,
      evalEvery: t.evalEvery,
      yieldEvery: [t.logEvery, t.checkpointEvery].filter((n) => n > 0),
      signal: opts.signal,
      elapsedOffsetMs: this.elapsedMs,
      onStep: (s) => {
        this.currentStep = s;
      },
    })) {
      this.elapsedMs = p.elapsedMs;
      yield p;
    }
  }

  checkpoint(): SessionCheckpoint {
    const tensors: NamedTensors = { ...this.adapter.exportTensors() };
    const os = this.optimizer.getState();
    for (const [k, v] of Object.entries(os.tensors)) tensors[OPT_PREFIX + k] = v;
    return { step: this.currentStep, tensors, state: { optimizerStep: os.step, elapsedMs: this.elapsedMs } };
  }

  restore(c: SessionCheckpoint): void {
    for (const [k, v] of Object.entries(this.adapter.variables)) {
      const src = c.tensors[k];
      if (!src) throw new InteropError('missing-tensor', `checkpoint at step ${c.step} has no tensor "${k}"`);
      if (src.shape.join() !== v.shape.join()) throw new InteropError('shape-mismatch', `checkpoint tensor "${k}" has shape [${src.shape}], the adapter needs [${v.shape}]`);
      tf.tidy(() => v.assign(tf.tensor(src.data, v.shape, 'float32')));
    }
    const slots: NamedTensors = {};
    for (const [k, v] of Object.entries(c.tensors)) if (k.startsWith(OPT_PREFIX)) slots[k.slice(OPT_PREFIX.length)] = v;
    this.optimizer.setState({ step: Number(c.state.optimizerStep ?? c.step), tensors: slots }, this.adapter.variables);
    this.currentStep = c.step;
    this.elapsedMs = Number(c.state.elapsedMs ?? 0);
  }

  exportAdapter(): AdapterExport {
    const lora = this.config.lora;
    const { config: peftConfig, notes } = peftAdapterConfig({
      r: lora.r,
      alpha: lora.alpha,
      scaling: lora.scaling,
      dropout: lora.dropout,
      targetModules: this.paths.map((p) => p.split('.').pop()!),
      useDora: lora.useDora === true,
      fanInFanOut: this.paths.some((p) => this.model.linears.get(p)?.conv1d === true),
      // Only layers that have a bias (GPT-2) train one; Llama's projections have none.
      bias: lora.trainBias && [...this.adapter.modules.values()].some((m) => m.bias) ? 'lora_only' : 'none',
      baseModelNameOrPath: this.details.modelPath,
      taskType: 'CAUSAL_LM',
    });
    // A trained bias belongs to the LoRA-wrapped layer's base_layer: the key PEFT 0.13 loads (".bias" would be
    // an unexpected key it drops); later PEFT versions read it too.
    const tensors: NamedTensors = {};
    for (const [k, v] of Object.entries(this.adapter.exportTensors())) tensors[k.replace(/\.bias$/, '.base_layer.bias')] = v;
    return { config: peftConfig, notes, tensors };
  }

  /** A language model has no ground truth to compare the adapter with. */
  reference(): NamedTensors {
    return {};
  }

  /** The adapted model's logits [b, s, vocab] for rows of token ids, with the adapter as it is now. */
  logits(rows: number[][]): { shape: number[]; data: Float32Array } {
    const out = tf.tidy(() => this.model.forward(idsTensor(rows, this.model.config.vocabSize), this.adapter.lookup));
    const data = out.dataSync() as Float32Array;
    out.dispose();
    return { shape: [...out.shape], data };
  }

  dispose(): void {
    this.adapter.dispose();
    this.optimizer.dispose();
    this.model.dispose();
  }

  private batchOf(rows: Int32Array[]): tf.Tensor2D {
    const seqLen = this.windows.seqLen;
    const flat = new Int32Array(rows.length * seqLen);
    rows.forEach((r, i) => flat.set(r, i * seqLen));
    return tf.tensor2d(flat, [rows.length, seqLen], 'int32');
  }

  private dropoutLookup(training: boolean, u: number) {
    const { dropout } = this.config.lora;
    const lookup = this.adapter.lookup;
    if (!training || dropout <= 0) return lookup;
    const seed = this.config.training.seed;
    return (p: string) => {
      const mod = lookup(p);
      if (!mod) return undefined;
      // PEFT applies dropout to the LoRA input only; seeded per (update, module) so a resume replays it.
      const s = new Rng(seed ^ u).nextUint32() ^ this.paths.indexOf(p);
      return { ...mod, inputDropout: (x: tf.Tensor2D) => tf.dropout(x, dropout, undefined, s) as tf.Tensor2D };
    };
  }

  private evalLoss(): number {
    const t = this.config.training;
    const evalRows = this.windows.eval;
    const n = Math.min(evalRows.length, Math.max(1, t.evalBatches) * t.batchSize);
    let total = 0;
    for (let i = 0; i < n; i += t.batchSize) {
      const rows = evalRows.slice(i, Math.min(n, i + t.batchSize));
      const v = tf.tidy(() => {
        const b = this.batchOf(rows);
        return causalLmTrainLoss(this.model, b, this.adapter.lookup).dataSync()[0];
      });
      total += v * rows.length;
    }
    return total / n;
  }
}

/** Checks the experiment against the model and data, builds the model and initialises the adapter. */
export function buildCausalLmSession(config: ExperimentConfig, inputs: CausalLmInputs): CausalLmSession {
  const m = causalLmSettings(config);
  const { folder } = inputs;
  const tokenizer =
    m.dataset.tokenizer === 'bytes'
      ? bytesTokenizer()
      : folder.tokenizerJson
        ? hfTokenizer(folder.tokenizerJson, inputs.tokenizerConfigJson, `${inputs.modelPath}/tokenizer.json`)
        : (() => {
            throw new InteropError('bad-config', `dataset.tokenizer is "tokenizer" but ${inputs.modelPath} has no tokenizer.json`);
          })();
  // GPT-2's positions are a learned table: a longer window has no embedding (Llama's rotary ones extend).
  if (folder.config.modelType === 'gpt2' && m.dataset.seqLen > folder.config.maxPositions) {
    throw new InteropError('bad-config', `model.dataset.seqLen ${m.dataset.seqLen} is longer than the model's n_positions ${folder.config.maxPositions} (${inputs.modelPath}/config.json)`);
  }
  if (tokenizer.vocabSize > folder.config.vocabSize) {
    throw new InteropError('bad-config', `the ${tokenizer.kind} tokenizer produces ids up to ${tokenizer.vocabSize - 1} but the model's vocab_size is ${folder.config.vocabSize}`);
  }
  const windows: TokenWindows = makeWindows(datasetDocuments(inputs.datasetText, inputs.datasetPath), tokenizer, m.dataset.seqLen, m.dataset.evalFraction, inputs.datasetPath);

  const model: CausalLm = buildCausalLm(folder.config, folder.weights, folder.weightFiles.join(', '));
  const lora = config.lora;
  const useDora = lora.useDora === true;
  const scale = loraScale(lora.alpha, lora.r, lora.scaling);
  // An empty list means PEFT's default targets for the architecture.
  const targetModules = lora.targetModules.length > 0 ? lora.targetModules : PEFT_DEFAULT_TARGETS[folder.config.modelType];
  const peftLike: PeftLoraConfig = {
    r: lora.r, loraAlpha: lora.alpha, targetModules, excludeModules: null, rankPattern: {}, alphaPattern: {},
    useRslora: lora.scaling === 'rslora', fanInFanOut: false, useDora, bias: 'none', modulesToSave: null,
    layersToTransform: null, layersPattern: null, loraDropout: lora.dropout, initLoraWeights: true, baseModelNameOrPath: inputs.modelPath, taskType: 'CAUSAL_LM', raw: {},
  };
  const paths = matchTargetModules(peftLike, [...model.linears.keys()]);
  if (paths.length === 0) {
    model.dispose();
    throw new InteropError(
      'bad-config',
      `lora.targetModules ${JSON.stringify(targetModules)} match no linear layer of ${inputs.modelPath} ` +
        `(its layers end in ${[...new Set([...model.linears.keys()].map((p) => p.split('.').pop()))].join(', ')})`,
    );
  }
  const targets: LoraTarget[] = paths.map((path) => ({ path, r: lora.r, alpha: lora.alpha, scale }));
  const initRng = Rng.derive(config.training.seed, 'init');
  const adapter: TrainableAdapter = initTrainableAdapter(model, targets, {
    init: lora.init,
    dora: useDora,
    trainBias: lora.trainBias,
    uniform: () => initRng.uniform(),
    normal: () => initRng.normal(),
  });
  return new CausalLmSession(config, {
    model,
    adapter,
    windows,
    paths,
    details: { targets, trainWindows: windows.train.length, evalWindows: windows.eval.length, modelPath: inputs.modelPath, tokenizer: tokenizer.kind },
  });
}
