// One training run in a worker thread: the host side of src/protocol/worker.ts. The job owns its worker
// and its per-job disposables (STYLE.md §3: disposing the job terminates the worker).
import { Worker } from 'node:worker_threads';
import * as vscode from 'vscode';
import type { MetricPoint, RunInfo, RunStatus } from '../protocol/runFormat';
import type { FromWorker, ToWorker } from '../protocol/worker';
import { RunFolder } from '../runs/runStore';
import { releaseLocksOf } from '../runs/runLock';
import { Disposable, toDisposable } from '../util/disposable';
import { StallMonitor, type Stall } from './stallMonitor';
import { ReasonError } from '../shared/errors';

export interface JobRequest {
  /** Absolute path of a *.lora.json / *.lora.yaml config (new run). */
  configPath?: string;
  /** Absolute path of a run folder to continue. */
  resumeRunDir?: string;
  /** Which run of a sweep config (fields given as lists) this is. */
  sweepIndex?: number;
  /** Overrides the config's outputDir (absolute). */
  outDir?: string;
  /** Threads for the matrix products (setting loraLab.threads); undefined: the cores, up to 8. */
  threads?: number;
}

export interface JobProgress {
  step: number;
  totalSteps: number;
  loss?: number;
  evalLoss?: number;
  etaMs?: number;
}

export interface JobResult {
  status: RunStatus;
  runDir?: string;
  step: number;
  adapterDir?: string;
  error?: string;
  /** Longest extension-host event-loop stall (busy time between two 10 ms ticks) while this job ran, in ms. */
  maxStallMs: number;
  /** Longest wall-clock lateness of a tick, in ms: the stall plus OS scheduling delays. */
  maxLateMs: number;
  /** Ticks over 20 ms late or busy. */
  stalls: readonly Stall[];
}

/** Why a job could not start or ended badly, with a `reason` discriminator (STYLE.md §7). */
export class JobError extends ReasonError<'busy' | 'alreadyRunning' | 'workerMissing' | 'crashed' | 'restricted'> {
  static override readonly family = 'JobError';
}

export class TrainingJob extends Disposable {
  private readonly _worker: Worker;
  private readonly _stall: StallMonitor;
  private readonly _onDidProgress = this._register(new vscode.EventEmitter<{ job: TrainingJob; points: MetricPoint[] }>());
  private readonly _onDidChange = this._register(new vscode.EventEmitter<TrainingJob>());
  private readonly _onDidWriteRun = this._register(new vscode.EventEmitter<string>());
  private _runDir: string | undefined;
  private _run: RunInfo | undefined;
  private _progress: JobProgress = { step: 0, totalSteps: 0 };
  private _result: JobResult | undefined;
  private _cancelRequested = false;
  private _ending = false;
  private readonly _finished: Promise<JobResult>;
  private readonly _createdAt = new Date().toISOString();
  private readonly _started: Promise<void>;

  /** Metric batches as they arrive (for the dashboard and the status bar). */
  readonly onDidProgress = this._onDidProgress.event;
  /** Any state change: started, progress, finished. */
  readonly onDidChange = this._onDidChange.event;
  /** The run folder changed on disk beyond metrics (started, checkpoint written, ended): its path. */
  readonly onDidWriteRun = this._onDidWriteRun.event;

  constructor(
    readonly request: JobRequest,
    workerPath: string,
    wasmDir: string,
    private readonly _log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => void,
  ) {
    super();
    this._stall = this._register(new StallMonitor());
    this._worker = new Worker(workerPath, { stdout: false, stderr: false });
    const workerThreadId = this._worker.threadId;
    // Terminating is what stops a worker that ignores 'cancel' (hexeditor `initWorker.ts`).
    this._register(toDisposable(() => void this._worker.terminate()));

    let resolveStarted!: () => void;
    let rejectStarted!: (e: unknown) => void;
    this._started = new Promise((res, rej) => {
      resolveStarted = res;
      rejectStarted = rej;
    });
    this._started.catch(() => undefined);

    this._finished = new Promise<JobResult>((resolve) => {
      const finish = (r: Omit<JobResult, 'maxStallMs' | 'maxLateMs' | 'stalls'>) => {
        if (this._result) return;
        this._result = { ...r, maxStallMs: this._stall.maxStallMs, maxLateMs: this._stall.maxLateMs, stalls: [...this._stall.stalls] };
        if (this._stall.stalls.length) this._log('debug', `extension-host ticks over 20 ms during this run: ${this._stall.stalls.map((x) => `${x.at} late ${x.lateMs} ms, busy ${x.blockedMs} ms`).join('; ')}`);
        this._stall.dispose();
        rejectStarted(new JobError('crashed', r.error ?? `the run ended (${r.status}) before it started`));
        resolve(this._result);
        this._onDidChange.fire(this);
        // A worker stopped before its trainRun released the run's lock leaves it held by this host's pid,
        // which stays alive: give it up once the thread is gone, or the run could never be resumed here.
        void this._worker.terminate().finally(() => this.releaseLocks(workerThreadId));
      };
      this._worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'didStart':
            this._runDir = m.runDir;
            this._run = m.run;
            this._progress = { step: m.run.step, totalSteps: m.run.totalSteps, loss: m.run.lastLoss };
            this._log('info', `run ${m.runDir} (job created ${this._createdAt}) started at ${new Date().toISOString()} on the ${m.backend.name} backend${m.backend.kernels ? ` with ${m.backend.kernels}` : ''}${m.backend.notes.length ? ` (${m.backend.notes.join('; ')})` : ''}`);
            resolveStarted();
            this._onDidChange.fire(this);
            this._onDidWriteRun.fire(m.runDir);
            break;
          case 'didProgress': {
            const last = m.points[m.points.length - 1];
            const lastEval = [...m.points].reverse().find((p) => p.evalLoss !== undefined)?.evalLoss;
            this._progress = {
              step: m.step,
              totalSteps: m.totalSteps,
              loss: last?.loss ?? this._progress.loss,
              evalLoss: lastEval ?? this._progress.evalLoss,
              etaMs: m.etaMs,
            };
            this._onDidProgress.fire({ job: this, points: m.points });
            this._onDidChange.fire(this);
            break;
          }
          case 'didCheckpoint':
            this._log('info', `checkpoint at step ${m.step} in ${m.runDir}`);
            this._onDidWriteRun.fire(m.runDir);
            break;
          case 'didFinish':
            this._runDir ??= m.runDir;
            this._log(m.status === 'failed' ? 'error' : 'info', `run ${m.runDir} ${m.status} at step ${m.step}${m.error ? `: ${m.error}` : ''}`);
            this._onDidWriteRun.fire(m.runDir);
            finish({ status: m.status, runDir: m.runDir, step: m.step, adapterDir: m.adapterDir, error: m.error });
            break;
          case 'log':
            this._log(m.level, m.message);
            break;
          default: {
            const never: never = m;
            this._log('warn', `unknown message from the training worker: ${JSON.stringify(never)}`);
          }
        }
      });
      // The worker died without `didFinish`: its run.json still says 'running' with this host's pid, so
      // mark it 'interrupted' (resumable from its last checkpoint) before reporting.
      const ended = (error: string) => {
        if (this._result || this._ending) return;
        this._ending = true;
        // The thread is gone: its lock can be given up before anyone hears the job ended (and resumes).
        void this.markInterrupted(error).finally(() => {
          this.releaseLocks(workerThreadId);
          finish({ status: 'failed', runDir: this._runDir, step: this._progress.step, error });
        });
      };
      this._worker.on('error', (err) => {
        this._log('error', `training worker crashed: ${err.stack ?? err.message}`);
        ended(`The training worker crashed: ${err.message}`);
      });
      this._worker.on('exit', (code) => {
        ended(this._cancelRequested ? `The training worker was stopped (code ${code}) before it saved a checkpoint.` : `The training worker exited (code ${code}) without finishing the run.`);
      });
    });

    const wasm = wasmDir;
    const start: ToWorker = {
      type: 'start', configPath: request.configPath, resumeRunDir: request.resumeRunDir, sweepIndex: request.sweepIndex, outDir: request.outDir, wasmDir: wasm,
      ...(request.threads ? { threads: request.threads } : {}),
    };
    this._worker.postMessage(start);
  }

  get runDir(): string | undefined {
    return this._runDir ?? this.request.resumeRunDir;
  }
  get run(): RunInfo | undefined {
    return this._run;
  }
  get name(): string {
    return this._run?.name ?? this.request.configPath ?? this.request.resumeRunDir ?? 'run';
  }
  get progress(): JobProgress {
    return this._progress;
  }
  get result(): JobResult | undefined {
    return this._result;
  }
  get isRunning(): boolean {
    return this._result === undefined;
  }
  get cancelRequested(): boolean {
    return this._cancelRequested;
  }
  get maxStallMs(): number {
    return this._result?.maxStallMs ?? this._stall.maxStallMs;
  }
  /** Resolves when the worker reports `didStart`; rejects if the run ends first. */
  get started(): Promise<void> {
    return this._started;
  }
  get finished(): Promise<JobResult> {
    return this._finished;
  }

  private async markInterrupted(error: string): Promise<void> {
    if (!this._runDir) return;
    try {
      const folder = RunFolder.open(this._runDir);
      if (folder.storedInfo.status === 'running') await folder.update({ status: 'interrupted', error });
    } catch (e) {
      this._log('warn', `could not mark ${this._runDir} as interrupted: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private releaseLocks(threadId: number): void {
    const dir = this.runDir;
    if (!dir) return;
    try {
      releaseLocksOf(dir, { pid: process.pid, threadId });
    } catch (e) {
      this._log('warn', `could not release the lock of ${dir}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Asks the worker to stop after the current step and write a checkpoint; terminates it if it does not answer. */
  cancel(graceMs = 60_000): void {
    if (!this.isRunning || this._cancelRequested) return;
    this._cancelRequested = true;
    this._onDidChange.fire(this);
    const msg: ToWorker = { type: 'cancel' };
    this._worker.postMessage(msg);
    const t = setTimeout(() => {
      if (this.isRunning) {
        this._log('warn', `the training worker did not stop within ${graceMs / 1000} s of Cancel; terminating it`);
        void this._worker.terminate();
      }
    }, graceMs);
    t.unref?.();
    void this._finished.then(() => clearTimeout(t));
  }
}
