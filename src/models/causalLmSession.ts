// The TrainingSession (src/engine/session.ts contract) for kind 'causal-lm': LoRA on a local Hugging Face
// Llama / GPT-2 folder, fine-tuned on a text dataset with the engine's generic optimizer, schedule and loop.
// The adapter it exports is PEFT's layout (base_model.model.<path>.lora_A.weight, adapter_config.json).
//
// Pure: it works from the model's parsed config, its weights and the dataset text already in memory.
// Reading them from disk is src/runs/causalLmSession.ts (`createCausalLmSession(config, configDir)`).
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLmModel, ExperimentConfig } from '../formats/experimentTypes';
import type { MetricPoint, RunParamSummary } from '../protocol/runFormat';
import { InteropError } from '../formats/adapters/interopError';
import { matchTargetModules, type PeftLoraConfig } from '../formats/peftConfig';
import { createOptimizer } from '../engine/optim';
import { makeSchedule } from '../engine/schedule';
import { trainLoop } from '../engine/trainLoop';
import { Rng } from '../engine/rng';
import { loraScale } from '../shared/loraScale';
import { PEFT_DEFAULT_TARGETS } from '../engine/memoryEstimate';
import { peftAdapterConfig } from '../shared/peftAdapterConfig';
import type { NamedTensors } from '../engine/namedTensors';
import { buildCausalLm } from './buildCausalLm';
import { causalLmTrainLoss, idsTensor, type CausalLm } from './causalLm';
import { initTrainableAdapter, type LoraTarget, type TrainableAdapter } from './loraTrainable';
import { bytesTokenizer, datasetDocuments, hfTokenizer, makeWindows, type TokenWindows } from './textData';

export interface CausalLmSessionCheckpoint {
  step: number;
  tensors: NamedTensors;
  state: Record<string, unknown>;
}

/** Structurally the engine's TrainingSession. */
export interface CausalLmSession {
  readonly config: ExperimentConfig;
  readonly totalSteps: number;
  readonly step: number;
  readonly params: RunParamSummary;
  run(opts?: { signal?: AbortSignal }): AsyncIterable<MetricPoint>;
  checkpoint(): CausalLmSessionCheckpoint;
  restore(c: CausalLmSessionCheckpoint): void;
  exportAdapter(): { config: Record<string, unknown>; tensors: NamedTensors; notes?: string[] };
  reference(): NamedTensors;
  dispose(): void;
  /** Extra, for callers that know the kind: the model, windows and what the adapter targets. */
  readonly details: { targets: LoraTarget[]; trainWindows: number; evalWindows: number; modelPath: string; tokenizer: 'bytes' | 'tokenizer' };
  /** Extra: the adapted model's logits [b, s, vocab] for rows of token ids, with the adapter as it is now. */
  logits(rows: number[][]): { shape: number[]; data: Float32Array };
}

/** What a causal-lm session needs, already read: the model folder's contents and the dataset text. */
import type { CausalLmInputs } from '../formats/weightSource';

export type { CausalLmInputs };

/** The causal-lm part of an experiment config; throws when the config is of another kind. */
export function causalLmSettings(config: ExperimentConfig): CausalLmModel {
  if (config.model.kind !== 'causal-lm') throw new InteropError('bad-config', `a causal-lm session needs kind "causal-lm", got "${config.kind}"`);
  return config.model;
}

const OPT_PREFIX = 'optimizer/';

export { PEFT_DEFAULT_TARGETS };

export function causalLmSessionFrom(config: ExperimentConfig, inputs: CausalLmInputs): CausalLmSession {
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
  const seed = config.training.seed;
  const initRng = Rng.derive(seed, 'init');
  const adapter: TrainableAdapter = initTrainableAdapter(model, targets, {
    init: lora.init,
    dora: useDora,
    trainBias: lora.trainBias,
    uniform: () => initRng.uniform(),
    normal: () => initRng.normal(),
  });
  const optimizer = createOptimizer(config.optimizer);
  const t = config.training;
  const lrAt = makeSchedule({ ...config.schedule, lr: config.optimizer.lr, totalSteps: t.steps });
  let step = 0;
  let elapsedMs = 0;

  const batchOf = (rows: Int32Array[]): tf.Tensor2D => {
    const flat = new Int32Array(rows.length * windows.seqLen);
    rows.forEach((r, i) => flat.set(r, i * windows.seqLen));
    return tf.tensor2d(flat, [rows.length, windows.seqLen], 'int32');
  };
  const dropoutLookup = (training: boolean, u: number) => {
    if (!training || lora.dropout <= 0) return adapter.lookup;
    return (p: string) => {
      const mod = adapter.lookup(p);
      if (!mod) return undefined;
      // PEFT applies dropout to the LoRA input only; seeded per (update, module) so a resume replays it.
      const s = new Rng(seed ^ u).nextUint32() ^ paths.indexOf(p);
      return { ...mod, inputDropout: (x: tf.Tensor2D) => tf.dropout(x, lora.dropout, undefined, s) as tf.Tensor2D };
    };
  };

  const task = {
    variables: adapter.variables,
    nextBatch(u: number): tf.Tensor2D {
      const rng = Rng.derive(seed, 'data', u);
      const rows: Int32Array[] = [];
      for (let i = 0; i < t.batchSize; i++) rows.push(windows.train[rng.int(windows.train.length)]);
      return batchOf(rows);
    },
    disposeBatch: (b: tf.Tensor2D) => b.dispose(),
    lossFn: (batch: tf.Tensor2D, training: boolean, u: number) => causalLmTrainLoss(model, batch, dropoutLookup(training, u), { checkpoint: training && t.gradientCheckpointing === true }),
    evalLoss: windows.eval.length === 0 ? undefined : () => evalLoss(),
  };

  function evalLoss(): number {
    const n = Math.min(windows.eval.length, Math.max(1, t.evalBatches) * t.batchSize);
    let total = 0;
    for (let i = 0; i < n; i += t.batchSize) {
      const rows = windows.eval.slice(i, Math.min(n, i + t.batchSize));
      const v = tf.tidy(() => {
        const b = batchOf(rows);
        return causalLmTrainLoss(model, b, adapter.lookup).dataSync()[0];
      });
      total += v * rows.length;
    }
    return total / n;
  }

  const trainable = adapter.paramCount;
  const params: RunParamSummary = {
    totalParams: model.paramCount,
    trainableParams: trainable,
    trainablePercentPeft: (100 * trainable) / (model.paramCount + trainable),
  };

  return {
    config,
    totalSteps: t.steps,
    get step() {
      return step;
    },
    params,
    details: { targets, trainWindows: windows.train.length, evalWindows: windows.eval.length, modelPath: inputs.modelPath, tokenizer: tokenizer.kind },
    async *run(opts = {}) {
      for await (const p of trainLoop(task, {
        optimizer,
        lrAt,
        totalSteps: t.steps,
        startStep: step,
        gradClip: config.optimizer.gradClip,
        evalEvery: t.evalEvery,
        yieldEvery: [t.logEvery, t.checkpointEvery].filter((n) => n > 0),
        signal: opts.signal,
        elapsedOffsetMs: elapsedMs,
        onStep: (s) => {
          step = s;
        },
      })) {
        elapsedMs = p.elapsedMs;
        yield p;
      }
    },
    checkpoint() {
      const tensors: NamedTensors = { ...adapter.exportTensors() };
      const os = optimizer.getState();
      for (const [k, v] of Object.entries(os.tensors)) tensors[OPT_PREFIX + k] = v;
      return { step, tensors, state: { optimizerStep: os.step, elapsedMs } };
    },
    restore(c) {
      for (const [k, v] of Object.entries(adapter.variables)) {
        const src = c.tensors[k];
        if (!src) throw new InteropError('missing-tensor', `checkpoint at step ${c.step} has no tensor "${k}"`);
        if (src.shape.join() !== v.shape.join()) throw new InteropError('shape-mismatch', `checkpoint tensor "${k}" has shape [${src.shape}], the adapter needs [${v.shape}]`);
        tf.tidy(() => v.assign(tf.tensor(src.data, v.shape, 'float32')));
      }
      const slots: NamedTensors = {};
      for (const [k, v] of Object.entries(c.tensors)) if (k.startsWith(OPT_PREFIX)) slots[k.slice(OPT_PREFIX.length)] = v;
      optimizer.setState({ step: Number(c.state.optimizerStep ?? c.step), tensors: slots }, adapter.variables);
      step = c.step;
      elapsedMs = Number(c.state.elapsedMs ?? 0);
    },
    exportAdapter() {
      const { config: peftConfig, notes } = peftAdapterConfig({
        r: lora.r,
        alpha: lora.alpha,
        scaling: lora.scaling,
        dropout: lora.dropout,
        targetModules: paths.map((p) => p.split('.').pop()!),
        useDora,
        fanInFanOut: paths.some((p) => model.linears.get(p)?.conv1d === true),
        // Only layers that have a bias (GPT-2) train one; Llama's projections have none.
        bias: lora.trainBias && [...adapter.modules.values()].some((m) => m.bias) ? 'lora_only' : 'none',
        baseModelNameOrPath: inputs.modelPath,
        taskType: 'CAUSAL_LM',
      });
      // A trained bias belongs to the LoRA-wrapped layer's base_layer: the key PEFT 0.13 loads (".bias" would be
      // an unexpected key it drops); later PEFT versions read it too.
      const tensors: NamedTensors = {};
      for (const [k, v] of Object.entries(adapter.exportTensors())) tensors[k.replace(/\.bias$/, '.base_layer.bias')] = v;
      return { config: peftConfig, notes, tensors };
    },
    reference: () => ({}),
    logits(rows) {
      const out = tf.tidy(() => model.forward(idsTensor(rows, model.config.vocabSize), adapter.lookup));
      const data = out.dataSync() as Float32Array;
      out.dispose();
      return { shape: [...out.shape], data };
    },
    dispose() {
      adapter.dispose();
      optimizer.dispose();
      model.dispose();
    },
  };
}
