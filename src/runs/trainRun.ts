// One training run from start (or resume) to a final status, writing the run folder as it goes. Both the
// CLI and the training worker drive this; they differ only in what they do with the events, which have
// the worker protocol's shape (src/protocol/worker.ts) so the worker can forward them as they are.
// A run's options go down one way: trainRun starts the backend, builds SessionOptions once (the config's
// folder, the log, backendFacts()) and opens the session through src/runs/openSession.ts.
import * as os from 'node:os';
import * as path from 'node:path';
import { version_core as tfjsVersion } from '@tensorflow/tfjs-core';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { BackendReport, MetricPoint, RunStatus } from '../protocol/runFormat';
import type { FromWorker } from '../protocol/worker';
import { decodeExperimentBytes, parseExperimentConfig, type ParseExperimentResult } from '../formats/experimentConfig';
import { NotRegularFileError, readRegularFileSync } from '../io/regularFile';
import { EngineError } from '../engine/errors';
import type { TrainingSession } from '../engine/session';
import { openSession, type SessionOptions } from './openSession';
import { RunFolder, hostBootTime, type SkippedCheckpoint } from './runStore';
import { RunError } from './runErrors';
import type { RunFs } from './runFs';
import { runVersions } from './versions';
import { backendFacts, startBackend, type BackendName } from './backendSetup';

export { defaultWasmDir, type BackendName } from './backendSetup';

export interface TrainRunOptions {
  /** Experiment file (*.lora.json / *.lora.yaml) for a new run. */
  configPath?: string;
  /** Existing run folder to continue from its last checkpoint. */
  resumeRunDir?: string;
  /** Which run of a sweep config (fields given as lists) to train; required for a sweep. */
  sweepIndex?: number;
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
  /** The file system the run folder is written through (default node:fs; the fault tests wrap it). */
  fs?: RunFs;
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
export function loadExperimentConfig(configPath: string, sweepIndex?: number): { config: ExperimentConfig; warnings: string[] } {
  const file = path.resolve(configPath);
  let bytes: Buffer;
  try {
    bytes = readRegularFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file'
      : code === 'EISDIR' || (NotRegularFileError.is(e) && e.kind === 'a folder') ? 'is a folder, expected a .lora.json or .lora.yaml file'
      : NotRegularFileError.is(e) ? `is ${e.kind}, not a regular file; refused`
      : (e as Error).message;
    throw new RunError('config', `${configPath}: ${why}`, { path: file, cause: e });
  }
  const decoded = decodeExperimentBytes(bytes);
  const result: ParseExperimentResult = decoded.issue ? { issues: [decoded.issue] } : parseExperimentConfig(decoded.text, file);
  const fmt = (i: (typeof result.issues)[number]) => `${configPath}:${i.line}:${i.column}: ${i.severity}: ${i.message}${i.path && !i.message.includes(i.path) ? ` (${i.path})` : ''}`;
  const errors = result.issues.filter((i) => i.severity === 'error');
  if (!result.config || errors.length > 0) {
    const n = errors.length;
    throw new RunError('config', `${configPath}: ${n} problem${n === 1 ? '' : 's'} in the experiment config:\n${errors.map(fmt).join('\n')}`, {
      path: file,
    });
  }
  const warnings = result.issues.filter((i) => i.severity === 'warning').map(fmt);
  if (result.sweep) {
    const n = result.sweep.length;
    if (sweepIndex === undefined || !Number.isInteger(sweepIndex) || sweepIndex < 0 || sweepIndex >= n) {
      const which = sweepIndex === undefined ? 'say which run to train' : `run ${sweepIndex} does not exist`;
      throw new RunError('config', `${configPath}: this config is a sweep of ${n} runs (${result.sweep.map((v) => v.label).join('; ')}); ${which} (0 to ${n - 1})`, { path: file });
    }
    return { config: result.sweep[sweepIndex].config, warnings };
  }
  if (sweepIndex !== undefined) throw new RunError('config', `${configPath}: run ${sweepIndex} of a sweep was asked for, but no field of this config is a list`, { path: file });
  return { config: result.config, warnings };
}

/** How many runs the config's sweep makes (0: not a sweep, or the file cannot be read or parsed: trainRun reports why). */
export function sweepSize(configPath: string): number {
  try {
    const file = path.resolve(configPath);
    const decoded = decodeExperimentBytes(readRegularFileSync(file));
    return decoded.issue ? 0 : parseExperimentConfig(decoded.text, file).sweep?.length ?? 0;
  } catch {
    return 0;
  }
}

function isNonFiniteLoss(e: unknown): boolean {
  return EngineError.is(e, 'non-finite-loss');
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
  let skipped: SkippedCheckpoint[] = [];
  let metricsGap: { missing: number; from: number | undefined } | undefined;
  if (opts.resumeRunDir) {
    folder = RunFolder.open(opts.resumeRunDir, opts.fs);
    checkResumable(folder);
    // One trainer per run: the lock first, then a fresh look at run.json (a racing resume may have
    // finished the run between the check above and the lock).
    try {
      folder.lock();
    } catch (e) {
      if (!RunError.is(e, 'io')) throw e;
      throw new RunError('io', `${folder.dir}: cannot take the run's lock (${e.message}). Nothing was changed; make the run folder writable, or copy it somewhere writable, and resume again`, {
        path: folder.dir,
        cause: e,
      });
    }
    try {
      folder.reload();
      checkResumable(folder);
      // The saved config is checked like a new one (limits included): a folder edited by hand must not
      // reach the engine with sizes it cannot allocate.
      loadExperimentConfig(path.join(folder.dir, 'config.json'));
      config = folder.readConfig();
      const info = folder.storedInfo;
      configDir = info.configFile ? path.dirname(info.configFile) : folder.dir;
      ({ step: resumeFrom, skipped } = folder.newestGoodCheckpoint());
      // metrics.jsonl cut short (a lost tail, not just a torn last line) would leave a silent gap:
      // continue from a checkpoint at or before the first missing step, so those steps are logged again.
      const missing = firstMissingMetric(folder, config, resumeFrom ?? 0, folder.storedInfo.totalSteps);
      if (missing !== undefined) {
        const from = folder.listCheckpoints().reverse().find((s) => s < missing && folder!.verifyCheckpoint(s) === undefined);
        metricsGap = { missing, from };
        resumeFrom = from;
      }
    } catch (e) {
      folder.releaseLock();
      throw e;
    }
  } else if (opts.configPath) {
    const loaded = loadExperimentConfig(opts.configPath, opts.sweepIndex);
    config = loaded.config;
    configDir = path.dirname(path.resolve(opts.configPath));
    for (const w of loaded.warnings) log('warn', w);
  } else {
    throw new RunError('config', 'trainRun needs configPath (a new run) or resumeRunDir (continue a run)');
  }

  let session: TrainingSession;
  let backend: BackendReport;
  try {
    backend = await startBackend({ prefer: opts.backend, wasmDir: opts.wasmDir, threads: opts.threads });
    const sessionOptions: SessionOptions = { configDir, backend: backendFacts(), log: (m) => log('info', m) };
    session = await openSession(config, sessionOptions);
  } catch (e) {
    folder?.releaseLock();
    throw e;
  }
  try {
    let elapsedOffset = 0;
    if (folder) {
      // Resume: load the newest good checkpoint (or start over when there is none), forget later metrics.
      for (const k of skipped) log('warn', `checkpoint step-${k.step} cannot be used: ${k.problem}`);
      if (metricsGap) {
        log('warn', `${path.join(folder.dir, 'metrics.jsonl')} has no point for step ${metricsGap.missing} (the file was cut short); continuing from ${metricsGap.from !== undefined ? `checkpoint step-${metricsGap.from}` : 'the start'} so no step is missing from it`);
      }
      if (skipped.length || metricsGap) {
        log('warn', resumeFrom !== undefined ? `resuming from checkpoint step-${resumeFrom}, the newest that can be used` : 'no checkpoint can be used: training starts over from step 0');
      }
      const ckpt = resumeFrom !== undefined ? readCheckpoint(folder, resumeFrom) : undefined;
      if (ckpt) {
        try {
          session.restore(ckpt);
        } catch (e) {
          const dir = folder.checkpointDir(ckpt.step);
          throw new RunError('bad-run-file', `${dir}: cannot restore this checkpoint: ${(e as Error).message}`, { path: dir, cause: e });
        }
      }
      let kept: MetricPoint[];
      try {
        kept = await folder.truncateMetrics(resumeFrom ?? 0);
      } catch (e) {
        if (RunError.is(e, 'io')) throw new RunError('io', describeFailure(e, folder, opts), { path: e.path, cause: e });
        throw e;
      }
      // Sessions that keep elapsed time in their checkpoint state continue it themselves; for the others
      // (elapsedMs counts from run()), continue from the last kept point so the time axis never jumps back.
      const keepsTime = typeof ckpt?.state.elapsedMs === 'number';
      elapsedOffset = kept.length && !keepsTime ? kept[kept.length - 1].elapsedMs : 0;
      const prev = folder.storedInfo;
      try {
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
      } catch (e) {
        if (RunError.is(e, 'io')) throw new RunError('io', describeFailure(e, folder, opts), { path: e.path, cause: e });
        throw e;
      }
      log('info', `Resuming ${folder.dir} at step ${session.step} of ${session.totalSteps}`);
    } else {
      const outDir = opts.outDir ? path.resolve(opts.outDir) : path.resolve(configDir, config.outputDir);
      try {
        folder = await RunFolder.create(outDir, {
          config,
          configFile: path.resolve(opts.configPath!),
          backend,
          versions: runVersions(tfjsVersion),
          totalSteps: session.totalSteps,
          params: session.params,
          ...(config.model.kind === 'causal-lm' ? { baseModel: path.resolve(configDir, config.model.modelPath) } : {}),
          fs: opts.fs,
        });
      } catch (e) {
        if (!RunError.is(e, 'io')) throw e;
        const where = opts.outDir ? `--out ${opts.outDir}` : `outputDir "${config.outputDir}" in ${opts.configPath}`;
        throw new RunError('io', `${e.message}. Nothing was trained. Make room or fix the permissions in ${outDir}, or write runs elsewhere (${where}), then start again`, {
          path: e.path,
          cause: e,
        });
      }
    }
    const run = folder;
    try {
      let truthOk = false;
      try {
        truthOk = run.readTruth() !== undefined;
      } catch {
        // damaged by an earlier crash or full disk: the session computes it again below
      }
      if (!truthOk) run.writeTruth(session.reference());
      emit({ type: 'didStart', runDir: run.dir, run: run.storedInfo, backend });
      return await loop(run, session, backend, elapsedOffset, resumeFrom, opts, emit);
    } catch (e) {
      // Not a training failure the loop could record (e.g. the disk is full): still never leave 'running'.
      let error = describeFailure(e, run, opts);
      if (!(await recordFailure(run, error))) {
        error += `. ${path.join(run.dir, 'run.json')} could not be updated either; it shows the run as interrupted once this process has ended`;
      }
      emit({ type: 'didFinish', runDir: run.dir, status: 'failed', step: session.step, error });
      if (RunError.is(e, 'io')) throw new RunError('io', error, { path: e.path, cause: e });
      throw e;
    }
  } finally {
    session.dispose();
    folder?.releaseLock();
  }
}

/** Refuse to resume a run that is still being trained or has nothing left to do. */
function checkResumable(folder: RunFolder): void {
  const info = folder.runInfo;
  if (info.status === 'running') {
    throw new RunError('busy', `${folder.dir} is still running (pid ${info.pid} on ${info.hostname}); stop it before resuming`, { path: folder.dir });
  }
  if (info.status === 'completed') {
    throw new RunError('already-completed', `${folder.dir} already completed all ${info.totalSteps} steps; nothing to resume`, { path: folder.dir });
  }
}

/** The first step ≤ `upTo` that the loop logs but metrics.jsonl lacks (undefined: none missing). */
function firstMissingMetric(folder: RunFolder, config: ExperimentConfig, upTo: number, total: number): number | undefined {
  const points = folder.readMetrics();
  const have = new Set(points.map((p) => p.step));
  const logEvery = Math.max(1, config.training.logEvery);
  // Eval points land on multiples of evalEvery, for experiments that evaluate at all.
  const evalEvery = points.some((p) => p.evalLoss !== undefined) ? config.training.evalEvery : 0;
  for (let s = 1; s <= upTo; s++) {
    const logged = s % logEvery === 0 || (evalEvery > 0 && s % evalEvery === 0) || s === total;
    if (logged && !have.has(s)) return s;
  }
  return undefined;
}

/** The message for a failure after the run folder exists; write failures say where and what to do. */
function describeFailure(e: unknown, run: RunFolder, opts: TrainRunOptions): string {
  const message = e instanceof Error ? e.message : String(e);
  if (!RunError.is(e, 'io')) return message;
  const where = opts.resumeRunDir ? run.dir : `${path.dirname(run.dir)} (outputDir in the experiment file, or --out)`;
  return `${message}. The run stopped; its newest good checkpoint is kept. Make room or fix the permissions in ${where}, then continue with: lora-lab train --resume ${run.dir}`;
}

/**
 * Record 'failed' in run.json; on a full disk, where run.json cannot be replaced, flip its status in
 * place. False when neither worked (a read-only file system).
 */
async function recordFailure(run: RunFolder, error: string): Promise<boolean> {
  try {
    await run.update({ status: 'failed', error, finishedAt: new Date().toISOString() });
    return true;
  } catch {
    return run.markFailedInPlace();
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
  resumedFrom: number | undefined,
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
  // The step of the checkpoint this session wrote or restored last (a newer damaged one may lie on disk).
  let lastCheckpoint = resumedFrom;

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
    lastCheckpoint = c.step;
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
    // A write failure is not the run's fault: the caller records it and says where to make room.
    if (RunError.is(e, 'io')) throw e;
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
    if (lastCheckpoint !== session.step) await checkpoint();
    return finish('cancelled');
  }
  // A final checkpoint too: killed before the adapter below is written, the run resumes at the last step
  // and only writes the adapter.
  if (lastCheckpoint !== session.step) await checkpoint();
  const exported = session.exportAdapter();
  const adapterDir = folder.writeAdapter(exported);
  for (const n of exported.notes ?? []) emit({ type: 'log', level: 'info', message: n });
  return finish('completed', { adapterDir });
}
