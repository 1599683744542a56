// Starts training runs in worker threads and shows them: a cancellable progress notification, a status
// bar item with step / loss / ETA, and the log channel. Runs write to their own folders, so two at once
// cannot corrupt each other; beyond `loraLab.maxConcurrentRuns` (and for the same run folder twice) a
// new run is refused with a message that says why.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { MetricPoint } from '../protocol/runFormat';
import { Disposable, toDisposable } from '../util/disposable';
import { log } from '../util/log';
import { formatDuration, formatLoss } from './format';
import { JobError, TrainingJob, type JobRequest, type JobResult } from './trainingJob';

export class JobManager extends Disposable {
  private readonly _jobs = new Set<TrainingJob>();
  private readonly _status: vscode.StatusBarItem;
  private readonly _onDidChangeJobs = this._register(new vscode.EventEmitter<void>());
  private readonly _onDidProgress = this._register(new vscode.EventEmitter<{ runDir: string; points: MetricPoint[] }>());
  private readonly _onDidFinish = this._register(new vscode.EventEmitter<{ job: TrainingJob; result: JobResult }>());
  private readonly _onDidWriteRun = this._register(new vscode.EventEmitter<string>());
  /** A run folder changed beyond its metrics (started, checkpoint, ended): the dashboard reloads it. */
  readonly onDidWriteRun = this._onDidWriteRun.event;
  /** Jobs started, progressed or ended. */
  readonly onDidChangeJobs = this._onDidChangeJobs.event;
  /** Live metric batches of every running job (the dashboard listens). */
  readonly onDidProgress = this._onDidProgress.event;
  readonly onDidFinish = this._onDidFinish.event;
  /** The longest host stall of the last finished job, in ms (the integration test reads it). */
  lastMaxStallMs = 0;

  constructor(private readonly _extensionUri: vscode.Uri) {
    super();
    this._status = this._register(vscode.window.createStatusBarItem('loraLab.training', vscode.StatusBarAlignment.Left, 10));
    this._status.name = 'LoRA Lab training';
    this._status.command = 'loraLab.openDashboard';
    // Window closing or extension deactivating: stop the workers (their runs read as interrupted and
    // resume from the last checkpoint).
    this._register(toDisposable(() => this._jobs.forEach((j) => j.dispose())));
  }

  get jobs(): readonly TrainingJob[] {
    return [...this._jobs];
  }
  get running(): readonly TrainingJob[] {
    return this.jobs.filter((j) => j.isRunning);
  }

  private get workerPath(): string {
    return vscode.Uri.joinPath(this._extensionUri, 'dist', 'worker.js').fsPath;
  }
  private get wasmDir(): string {
    return vscode.Uri.joinPath(this._extensionUri, 'dist', 'wasm').fsPath;
  }

  /**
   * Starts a run and returns once the worker has created the run folder (or failed to). Progress and
   * Cancel are shown in a notification until the run ends; `job.finished` resolves then.
   */
  async start(request: JobRequest, opts: { workerPath?: string } = {}): Promise<TrainingJob> {
    if (!vscode.workspace.isTrusted) {
      throw new JobError('restricted', 'LoRA Lab does not train in Restricted Mode: training runs code and writes files in this workspace. Trust the workspace to train.');
    }
    const max = vscode.workspace.getConfiguration('loraLab').get<number>('maxConcurrentRuns', 2);
    const running = this.running;
    if (running.length >= max) {
      throw new JobError(
        'busy',
        `${running.length} run${running.length === 1 ? ' is' : 's are'} already training (${running.map((j) => j.name).join(', ')}); the limit is ${max} (setting loraLab.maxConcurrentRuns). Stop one first.`,
      );
    }
    if (request.resumeRunDir) {
      const dir = path.resolve(request.resumeRunDir);
      const same = running.find((j) => j.runDir && path.resolve(j.runDir) === dir);
      if (same) throw new JobError('alreadyRunning', `The run ${path.basename(dir)} is already training; one folder cannot take two runs at once.`);
    }
    // `workerPath` is for tests (a worker that crashes on purpose); users always get dist/worker.js.
    const workerPath = opts.workerPath ?? this.workerPath;
    if (!fs.existsSync(workerPath)) {
      throw new JobError('workerMissing', `The training worker ${workerPath} is missing: build the extension (npm run build).`);
    }

    // loraLab.threads: 0 (the default) lets the engine choose (the cores, up to 8).
    const threads = vscode.workspace.getConfiguration('loraLab').get<number>('threads', 0);
    const withThreads: JobRequest = Number.isInteger(threads) && threads > 0 ? { ...request, threads: Math.min(threads, 64) } : request;
    const job = new TrainingJob(withThreads, workerPath, this.wasmDir, (level, msg) => log[level](msg));
    this._jobs.add(job);
    job.onDidChange(() => this.refresh());
    job.onDidProgress(({ job: j, points }) => {
      if (j.runDir) this._onDidProgress.fire({ runDir: j.runDir, points });
    });
    job.onDidWriteRun((dir) => this._onDidWriteRun.fire(dir));
    void job.finished.then((result) => {
      this.lastMaxStallMs = result.maxStallMs;
      log.info(`extension host during ${job.name}: longest stall (event loop busy) ${result.maxStallMs.toFixed(1)} ms; longest timer lateness ${result.maxLateMs.toFixed(1)} ms (includes OS scheduling)`);
      this._onDidFinish.fire({ job, result });
      // A crashed worker's run.json was rewritten by the host (interrupted): tell the viewers.
      if (result.runDir) this._onDidWriteRun.fire(result.runDir);
      this._jobs.delete(job);
      job.dispose();
      this.refresh();
      this.reportResult(job, result);
    });
    this.refresh();
    this.showProgress(job);
    try {
      await job.started;
    } catch {
      // The run ended before it started; `finished` reports the reason to the user.
    }
    return job;
  }

  /** Stops one job (or all), leaving a resumable checkpoint. */
  cancel(job?: TrainingJob): void {
    for (const j of job ? [job] : this.running) j.cancel();
  }

  private showProgress(job: TrainingJob): void {
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `LoRA Lab: training ${path.basename(job.request.configPath ?? job.request.resumeRunDir ?? '')}`, cancellable: true },
      async (progress, token) => {
        // Cancellation token -> explicit 'cancel' message to the worker (STYLE.md §5).
        const sub = token.onCancellationRequested(() => job.cancel());
        let reported = 0;
        const change = job.onDidChange(() => {
          const p = job.progress;
          const frac = p.totalSteps > 0 ? (100 * p.step) / p.totalSteps : 0;
          const inc = Math.max(0, frac - reported);
          reported = Math.max(reported, frac);
          progress.report({ message: job.cancelRequested ? 'stopping after this step…' : describe(p), increment: inc });
        });
        try {
          await job.finished;
        } finally {
          sub.dispose();
          change.dispose();
        }
      },
    );
  }

  private reportResult(job: TrainingJob, r: JobResult): void {
    const where = r.runDir ? path.basename(r.runDir) : job.name;
    switch (r.status) {
      case 'completed':
        void vscode.window
          .showInformationMessage(`LoRA Lab: ${where} finished at step ${r.step}${r.adapterDir ? `; adapter in ${r.adapterDir}` : ''}.`, 'Open Dashboard')
          .then((a) => a && vscode.commands.executeCommand('loraLab.openDashboard', r.runDir));
        break;
      case 'cancelled':
        // Cancellation is never reported as a failure (STYLE.md §7).
        void vscode.window
          .showInformationMessage(`LoRA Lab: ${where} stopped at step ${r.step}. A checkpoint was saved; "Resume Run" continues it.`, 'Resume Run')
          .then((a) => a && vscode.commands.executeCommand('loraLab.resumeRun', r.runDir));
        break;
      case 'failed':
      case 'interrupted':
      case 'running':
        void vscode.window
          .showErrorMessage(`LoRA Lab: ${where} failed${r.step ? ` at step ${r.step}` : ''}: ${r.error ?? 'unknown error'}`, 'Show Log')
          .then((a) => a && log.show());
        break;
      default: {
        const never: never = r.status;
        log.warn(`unknown run status ${String(never)}`);
      }
    }
  }

  private refresh(): void {
    const running = this.running;
    if (running.length === 0) {
      this._status.hide();
    } else {
      const j = running[running.length - 1];
      const more = running.length > 1 ? ` (+${running.length - 1})` : '';
      this._status.text = `$(loading~spin) LoRA ${describe(j.progress)}${more}`;
      this._status.tooltip = running.map((r) => `${r.name}: ${describe(r.progress)}${r.cancelRequested ? ' (stopping)' : ''}`).join('\n') + '\nClick to open the dashboard';
      this._status.show();
    }
    this._onDidChangeJobs.fire();
  }
}

function describe(p: { step: number; totalSteps: number; loss?: number; etaMs?: number }): string {
  const parts = [`step ${p.step}/${p.totalSteps}`];
  if (p.loss !== undefined) parts.push(`loss ${formatLoss(p.loss)}`);
  if (p.etaMs !== undefined && p.step < p.totalSteps) parts.push(`ETA ${formatDuration(p.etaMs)}`);
  return parts.join(' · ');
}
