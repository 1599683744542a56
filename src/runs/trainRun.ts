// One training run from start (or resume) to a final status, writing the run folder as it goes. Both the
// CLI and the training worker drive this; they differ only in what they do with the events, which have
// the worker protocol's shape (src/protocol/worker.ts) so the worker can forward them as they are.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { version_core as tfjsVersion } from '@tensorflow/tfjs-core';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { BackendReport, MetricPoint, RunStatus } from '../protocol/runFormat';
import type { FromWorker } from '../protocol/worker';
import { parseExperimentConfig } from '../formats/experimentConfig';
import { createSession, type TrainingSession } from '../engine/session';
import { createCausalLmSession } from './causalLmSession';
import { RunFolder, hostBootTime } from './runStore';
import { RunError } from './runErrors';
import { runVersions } from './versions';
import { startBackend, type BackendName } from './backendSetup';

export { defaultWasmDir, type BackendName } from './backendSetup';

export interface TrainRunOptions {
  /** Experiment file (*.lora.json / *.lora.yaml) for a new run. */
  configPath?: string;
  /** Existing run folder to continue from its last checkpoint. */
  resumeRunDir?: string;
  /** Where new runs go; default: the config's outputDir, relative to the config file. */
  outDir?: string;
  /** Folder with the tfjs wasm binaries; default: dist/wasm next to the bundle, else the npm package. */
  wasmDir?: string;
  /** Backend to try first (falls back as initBackend does; the one in use is reported). */
  backend?: BackendName;
  /** Threads: the native kernels' (default: the cores, up to 8), else wasm threads (see src/runs/backendSetup.ts). */
  threads?: number;
  /** Abort = stop after the current step, write a checkpoint, end as 'cancelled'. */
  signal?: AbortSignal;
  onEvent?: (e: FromWorker) => void;
  /** Progress events are batched to at most one per this many ms (default 250, i.e. ≤ 4/s). */
  progressIntervalMs?: number;
  /** Checkpoints kept on disk (default 3). */
  keepCheckpoints?: number;
}

export interface TrainRunResult {
  runDir: string;
  status: RunStatus;
  step: number;
  totalSteps: number;
  backend: BackendReport;
  adapterDir?: string;
  error?: string;
  /** The newest checkpoint on disk (where --resume continues), if any. */
  lastCheckpointStep?: number;
  lastLoss?: number;
  lastEvalLoss?: number;
}

/** Read and validate an experiment file; every error is reported as `file:line:col: message`. */
export function loadExperimentConfig(configPath: string): { config: ExperimentConfig; warnings: string[] } {
  const file = path.resolve(configPath);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, expected a .lora.json or .lora.yaml file' : (e as Error).message;
    throw new RunError('config', `${configPath}: ${why}`, { path: file, cause: e });
  }
  const result = parseExperimentConfig(text, file);
  const fmt = (i: (typeof result.issues)[number]) => `${configPath}:${i.line}:${i.column}: ${i.severity}: ${i.message}${i.path && !i.message.includes(i.path) ? ` (${i.path})` : ''}`;
  const errors = result.issues.filter((i) => i.severity === 'error');
  if (!result.config || errors.length > 0) {
    const n = errors.length;
    throw new RunError('config', `${configPath}: ${n} problem${n === 1 ? '' : 's'} in the experiment config:\n${errors.map(fmt).join('\n')}`, {
      path: file,
    });
  }
  return { config: result.config, warnings: result.issues.filter((i) => i.severity === 'warning').map(fmt) };
}

/** Built-in kinds come from the engine; causal-lm from src/models (it reads the model folder and dataset). */
async function makeSession(config: ExperimentConfig, configDir: string, log: (message: string) => void): Promise<TrainingSession> {
  if (config.kind === 'causal-lm') return createCausalLmSession(config, configDir, log);
  return createSession(config);
}

function isNonFiniteLoss(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'NonFiniteLossError';
}

/**
 * Train a new run (`configPath`) or continue one (`resumeRunDir`). Throws RunError before the run folder
 * exists (bad config, nothing to resume); after that, every outcome is a status in run.json and the result.
 */
export async function trainRun(opts: TrainRunOptions): Promise<TrainRunResult> {
  const emit = (e: FromWorker) => opts.onEvent?.(e);
  const log = (level: 'info' | 'warn' | 'error', message: string) => emit({ type: 'log', level, message });

  // ---- config and run folder (errors here are thrown: nothing is on disk yet) ----
  let config: ExperimentConfig;
  let configDir: string;
  let folder: RunFolder | undefined;
  let resumeFrom: number | undefined;
  if (opts.resumeRunDir) {
    folder = RunFolder.open(opts.resumeRunDir);
    const info = folder.runInfo;
    if (info.status === 'running') {
      throw new RunError('busy', `${folder.dir} is still running (pid ${info.pid} on ${info.hostname}); stop it before resuming`, { path: folder.dir });
    }
    if (info.status === 'completed') {
      throw new RunError('already-completed', `${folder.dir} already completed all ${info.totalSteps} steps; nothing to resume`, { path: folder.dir });
    }
    config = folder.readConfig();
    configDir = info.configFile ? path.dirname(info.configFile) : folder.dir;
    resumeFrom = folder.latestCheckpointStep();
  } else if (opts.configPath) {
    const loaded = loadExperimentConfig(opts.configPath);
    config = loaded.config;
    configDir = path.dirname(path.resolve(opts.configPath));
    for (const w of loaded.warnings) log('warn', w);
  } else {
    throw new RunError('config', 'trainRun needs configPath (a new run) or resumeRunDir (continue a run)');
  }

  const backend = await startBackend({ prefer: opts.backend, wasmDir: opts.wasmDir, threads: opts.threads });
  const session = await makeSession(config, configDir, (m) => log('info', m));
  try {
    let elapsedOffset = 0;
    if (folder) {
      // Resume: load the last checkpoint (or start over when none was written), forget later metrics.
      const ckpt = resumeFrom !== undefined ? readCheckpoint(folder, resumeFrom) : undefined;
      if (ckpt) {
        try {
          session.restore(ckpt);
        } catch (e) {
          const dir = folder.checkpointDir(ckpt.step);
          throw new RunError('bad-run-file', `${dir}: cannot restore this checkpoint: ${(e as Error).message}`, { path: dir, cause: e });
        }
      }
      const kept = await folder.truncateMetrics(resumeFrom ?? 0);
      // Sessions that keep elapsed time in their checkpoint state continue it themselves; for the others
      // (elapsedMs counts from run()), continue from the last kept point so the time axis never jumps back.
      const keepsTime = typeof ckpt?.state.elapsedMs === 'number';
      elapsedOffset = kept.length && !keepsTime ? kept[kept.length - 1].elapsedMs : 0;
      const prev = folder.storedInfo;
      await folder.update({
        status: 'running',
        step: session.step,
        backend,
        versions: runVersions(tfjsVersion),
        pid: process.pid,
        hostname: os.hostname(),
        bootTime: hostBootTime(),
        resumedAt: [...(prev.resumedAt ?? []), { step: session.step, at: new Date().toISOString() }],
        error: undefined,
        finishedAt: undefined,
      });
      log('info', `Resuming ${folder.dir} at step ${session.step} of ${session.totalSteps}`);
    } else {
      const outDir = opts.outDir ? path.resolve(opts.outDir) : path.resolve(configDir, config.outputDir);
      folder = await RunFolder.create(outDir, {
        config,
        configFile: path.resolve(opts.configPath!),
        backend,
        versions: runVersions(tfjsVersion),
        totalSteps: session.totalSteps,
        params: session.params,
        ...(config.model.kind === 'causal-lm' ? { baseModel: path.resolve(configDir, config.model.modelPath) } : {}),
      });
    }
    const run = folder;
    try {
      if (!run.readTruth()) run.writeTruth(session.reference());
      emit({ type: 'didStart', runDir: run.dir, run: run.storedInfo, backend });
      return await loop(run, session, backend, elapsedOffset, opts, emit);
    } catch (e) {
      // Not a training failure the loop could record (e.g. the disk is full): still never leave 'running'.
      const error = e instanceof Error ? e.message : String(e);
      await run.update({ status: 'failed', error, finishedAt: new Date().toISOString() }).catch(() => undefined);
      emit({ type: 'didFinish', runDir: run.dir, status: 'failed', step: session.step, error });
      throw e;
    }
  } finally {
    session.dispose();
  }
}

function readCheckpoint(folder: RunFolder, step: number) {
  const { info, tensors } = folder.readCheckpoint(step);
  return { step: info.step, tensors, state: info.state };
}

async function loop(
  folder: RunFolder,
  session: TrainingSession,
  backend: BackendReport,
  elapsedOffset: number,
  opts: TrainRunOptions,
  emit: (e: FromWorker) => void,
): Promise<TrainRunResult> {
  const runDir = folder.dir;
  const total = session.totalSteps;
  const every = Math.max(1, session.config.training.checkpointEvery);
  const keep = opts.keepCheckpoints ?? session.config.training.keepCheckpoints ?? 10;
  const logEvery = Math.max(1, session.config.training.logEvery);
  const interval = opts.progressIntervalMs ?? 250;
  const startStep = session.step;
  const t0 = Date.now();
  let nextCheckpoint = (Math.floor(startStep / every) + 1) * every;
  let pending: MetricPoint[] = [];
  let lastFlush = 0;
  let lastLoss = folder.storedInfo.lastLoss;
  let lastEvalLoss = folder.storedInfo.lastEvalLoss;

  const etaMs = () => {
    const done = session.step - startStep;
    return done > 0 ? Math.round(((Date.now() - t0) / done) * (total - session.step)) : undefined;
  };
  let flushedStep = startStep;
  const flush = () => {
    if (pending.length === 0 && session.step === flushedStep) return;
    flushedStep = session.step;
    const eta = etaMs();
    emit({ type: 'didProgress', runDir, step: session.step, totalSteps: total, points: pending, ...(eta !== undefined ? { etaMs: eta } : {}) });
    pending = [];
    lastFlush = Date.now();
  };
  const checkpoint = async () => {
    // Points before the checkpoint reach listeners before it does (the CLI prints them in step order).
    flush();
    const c = session.checkpoint();
    await folder.writeCheckpoint(c, keep);
    await folder.update({ lastLoss, lastEvalLoss });
    emit({ type: 'didCheckpoint', runDir, step: c.step });
  };
  const finish = async (status: RunStatus, extra: { error?: string; adapterDir?: string } = {}): Promise<TrainRunResult> => {
    flush();
    const info = await folder.update({ status, step: session.step, lastLoss, lastEvalLoss, finishedAt: new Date().toISOString(), ...extra });
    emit({ type: 'didFinish', runDir, status, step: session.step, ...extra });
    const lastCheckpointStep = folder.latestCheckpointStep();
    return { runDir, status, step: info.step, totalSteps: total, backend, lastLoss, lastEvalLoss, ...(lastCheckpointStep !== undefined ? { lastCheckpointStep } : {}), ...extra };
  };

  try {
    for await (const p of session.run({ signal: opts.signal })) {
      const point: MetricPoint = { ...p, elapsedMs: p.elapsedMs + elapsedOffset };
      if (Number.isFinite(point.loss)) lastLoss = point.loss;
      if (point.evalLoss !== undefined && Number.isFinite(point.evalLoss)) lastEvalLoss = point.evalLoss;
      // The loop also yields at checkpoint steps and where it was cancelled; only logged steps go to
      // metrics.jsonl, so an interrupted-and-resumed run logs exactly the points of an uninterrupted one.
      if (point.step % logEvery === 0 || point.evalLoss !== undefined || point.step === total) {
        folder.appendMetrics([point]);
        pending.push(point);
      }
      if (session.step >= nextCheckpoint && session.step < total) {
        await checkpoint();
        nextCheckpoint = (Math.floor(session.step / every) + 1) * every;
      }
      if (Date.now() - lastFlush >= interval) flush();
    }
  } catch (e) {
    flush();
    const message = e instanceof Error ? e.message : String(e);
    const kept = folder.latestCheckpointStep();
    emit({
      type: 'log',
      level: 'error',
      message: `${isNonFiniteLoss(e) ? 'Training diverged: ' : 'Training failed: '}${message}; ${kept !== undefined ? `last good checkpoint: step ${kept}` : 'no checkpoint was written'}`,
    });
    return finish('failed', { error: message });
  }

  if (session.step < total) {
    // Stopped by the signal: save where we are so `--resume` continues from exactly here.
    if (folder.latestCheckpointStep() !== session.step) await checkpoint();
    return finish('cancelled');
  }
  // A final checkpoint too: killed before the adapter below is written, the run resumes at the last step
  // and only writes the adapter.
  if (folder.latestCheckpointStep() !== session.step) await checkpoint();
  const exported = session.exportAdapter();
  const adapterDir = folder.writeAdapter(exported);
  for (const n of exported.notes ?? []) emit({ type: 'log', level: 'info', message: n });
  return finish('completed', { adapterDir });
}
