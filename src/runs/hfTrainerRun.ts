// Any Hugging Face `Trainer` output folder read as a LoRA Lab run: trainer_state.json's log_history
// (loss, eval_loss, learning_rate, grad_norm, step) becomes the metrics, and each checkpoint-N/ with a
// PEFT adapter is a checkpoint whose ΔW the dashboard draws. The Trainer writes trainer_state.json into
// every checkpoint-N/ while it trains and at the top of the folder only when the script calls
// save_state(), so the newest of them is the run's state. Read-only: nothing is written to the folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { MetricPoint, RunInfo, RunStatus } from '../protocol/runFormat';
import { RunError } from './runErrors';

const STATE_FILE = 'trainer_state.json';
const CHECKPOINT_DIR = /^checkpoint-(\d+)$/;
const ADAPTER_FILES = ['adapter_model.safetensors'];
/** A Trainer folder short of max_steps whose state changed within this long is taken to be training. */
const LIVE_MS = 10 * 60_000;

interface TrainerState {
  global_step?: number;
  max_steps?: number;
  epoch?: number;
  train_batch_size?: number;
  log_history?: Record<string, unknown>[];
}

export interface TrainerRun {
  dir: string;
  info: RunInfo;
  config: ExperimentConfig;
  metrics: MetricPoint[];
  /** Steps of checkpoint-N/ folders that hold a PEFT adapter, ascending. */
  checkpoints: number[];
  /** The trainer_state.json the run was read from. */
  stateFile: string;
}

function checkpointSteps(dir: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => CHECKPOINT_DIR.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** trainer_state.json files of a folder: the top-level one and every checkpoint's. */
function stateFiles(dir: string): string[] {
  const files = [path.join(dir, STATE_FILE), ...checkpointSteps(dir).map((s) => path.join(dir, `checkpoint-${s}`, STATE_FILE))];
  return files.filter((f) => fs.existsSync(f));
}

/** A Trainer output folder that is not one of ours (ours have run.json, even when exported to transformers). */
export function isTrainerRunDir(p: string): boolean {
  return !fs.existsSync(path.join(p, 'run.json')) && stateFiles(p).length > 0;
}

/** The adapter file of checkpoint `step`, or of the folder itself (a final save_model) when step is undefined. */
export function trainerAdapterFile(dir: string, step?: number): string | undefined {
  const folder = step === undefined ? dir : path.join(dir, `checkpoint-${step}`);
  return ADAPTER_FILES.map((f) => path.join(folder, f)).find((f) => fs.existsSync(f));
}

/** A key that changes whenever the Trainer writes a new state or checkpoint (for live following). */
export function trainerRunKey(dir: string): string {
  return stateFiles(dir)
    .map((f) => `${f}:${fs.statSync(f).mtimeMs}`)
    .concat(fs.existsSync(path.join(dir, 'adapter_model.safetensors')) ? ['final'] : [])
    .join('|');
}

function readState(file: string): TrainerState {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as TrainerState;
  } catch (e) {
    throw new RunError('bad-run-file', `${file}: not a readable trainer_state.json (${(e as Error).message})`, { path: file, cause: e });
  }
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** log_history → one MetricPoint per logged step (train entries, with the eval loss of the same step). */
export function metricsFromLogHistory(history: Record<string, unknown>[]): MetricPoint[] {
  const byStep = new Map<number, MetricPoint>();
  const evals = new Map<number, number>();
  for (const e of history) {
    const step = num(e.step);
    if (step === undefined) continue;
    const loss = num(e.loss);
    if (loss !== undefined) byStep.set(step, { step, loss, lr: num(e.learning_rate) ?? NaN, gradNorm: num(e.grad_norm) ?? NaN, elapsedMs: 0 });
    const ev = num(e.eval_loss);
    if (ev !== undefined) evals.set(step, ev);
  }
  for (const [step, ev] of evals) {
    const p = byStep.get(step);
    if (p) p.evalLoss = ev;
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function adapterConfigOf(dir: string, steps: number[]): Record<string, unknown> | undefined {
  for (const folder of [dir, ...steps.slice().reverse().map((s) => path.join(dir, `checkpoint-${s}`))]) {
    const f = path.join(folder, 'adapter_config.json');
    if (fs.existsSync(f)) {
      try {
        return JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>;
      } catch {
        // an unreadable config: try the next checkpoint's
      }
    }
  }
  return undefined;
}

/** Reads a Trainer output folder as a run; throws RunError 'not-a-run' when it has no trainer_state.json. */
export function loadTrainerRun(dir: string): TrainerRun {
  const files = stateFiles(dir);
  if (files.length === 0) throw new RunError('not-a-run', `${dir} is not a Hugging Face Trainer folder (no ${STATE_FILE} in it or in a checkpoint-N/)`, { path: dir });
  // The newest state: the highest global_step, the top-level file on a tie (written after the last checkpoint).
  let best: { file: string; state: TrainerState } | undefined;
  for (const file of files) {
    const state = readState(file);
    if (!best || (state.global_step ?? 0) > (best.state.global_step ?? 0)) best = { file, state };
  }
  const { file, state } = best!;
  const all = checkpointSteps(dir);
  const checkpoints = all.filter((s) => trainerAdapterFile(dir, s) !== undefined);
  const ac = adapterConfigOf(dir, all) ?? {};
  const step = state.global_step ?? 0;
  const total = state.max_steps ?? step;
  const mtimeMs = fs.statSync(file).mtimeMs;
  const status: RunStatus = step >= total && total > 0 ? 'completed' : Date.now() - mtimeMs < LIVE_MS ? 'running' : 'interrupted';
  const metrics = metricsFromLogHistory(state.log_history ?? []);
  const r = num(ac.r) ?? 8;
  const alpha = num(ac.lora_alpha) ?? r;
  const targets = Array.isArray(ac.target_modules) ? (ac.target_modules as unknown[]).filter((t): t is string => typeof t === 'string') : [];
  const baseModel = typeof ac.base_model_name_or_path === 'string' ? ac.base_model_name_or_path : '';
  const at = new Date(mtimeMs).toISOString();
  const last = [...metrics].reverse();
  const info: RunInfo = {
    formatVersion: 1,
    runId: path.basename(path.resolve(dir)),
    name: path.basename(path.resolve(dir)),
    kind: 'causal-lm',
    status,
    createdAt: new Date(fs.statSync(dir).birthtimeMs || fs.statSync(dir).mtimeMs).toISOString(),
    updatedAt: at,
    ...(status === 'completed' ? { finishedAt: at } : {}),
    step,
    totalSteps: total,
    seed: 0,
    backend: { name: 'torch', notes: ['a Hugging Face Trainer run (trainer_state.json)'] },
    versions: { loraLab: '-', tfjs: '-', node: '-' },
    ...(last.find((p) => Number.isFinite(p.loss)) ? { lastLoss: last.find((p) => Number.isFinite(p.loss))!.loss } : {}),
    ...(last.find((p) => p.evalLoss !== undefined) ? { lastEvalLoss: last.find((p) => p.evalLoss !== undefined)!.evalLoss } : {}),
    ...(checkpoints.length ? { lastCheckpointStep: checkpoints[checkpoints.length - 1] } : {}),
    ...(baseModel && fs.existsSync(baseModel) ? { baseModel } : {}),
  };
  // The experiment as far as the folder tells it: the adapter's LoRA settings and the Trainer's steps and batch.
  const config: ExperimentConfig = {
    name: info.name,
    kind: 'causal-lm',
    model: { kind: 'causal-lm', modelPath: baseModel, dataset: { path: '', seqLen: 0, evalFraction: 0, tokenizer: 'tokenizer' } },
    lora: {
      r,
      alpha,
      scaling: ac.use_rslora === true ? 'rslora' : 'standard',
      dropout: num(ac.lora_dropout) ?? 0,
      init: 'kaiming-uniform',
      targetModules: targets,
      trainBias: ac.bias === 'lora_only' || ac.bias === 'all',
      useDora: ac.use_dora === true,
    },
    optimizer: { name: 'adamw', lr: metrics.reduce((m, p) => Math.max(m, Number.isFinite(p.lr) ? p.lr : 0), 0), weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: total, batchSize: state.train_batch_size ?? 0, seed: 0, evalEvery: 0, evalBatches: 0, checkpointEvery: 0, logEvery: 1 },
    outputDir: path.dirname(path.resolve(dir)),
  };
  return { dir: path.resolve(dir), info, config, metrics, checkpoints, stateFile: file };
}
