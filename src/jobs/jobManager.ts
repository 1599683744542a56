// Starts training runs in worker threads and shows them: a cancellable progress notification, a status
// bar item with step / loss / ETA, and the log channel. Runs write to their own folders, so two at once
// cannot corrupt each other; beyond `loraLab.maxConcurrentRuns` a new run waits in a queue and starts
// when a slot frees, in the order asked (the same run folder twice is refused with a message that says why).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { MetricPoint } from '../protocol/runFormat';
import { Disposable, toDisposable } from '../util/disposable';
import { log } from '../util/log';
import { formatDuration, formatLoss } from '../shared/format';
import { JobError, TrainingJob, type JobRequest, type JobResult } from './trainingJob';

/** A run waiting for a free slot (beyond loraLab.maxConcurrentRuns). */
export interface QueuedRun {
  readonly request: JobRequest;
  /** What the user reads: the config file (or run folder) and, for a sweep, which run. */
  readonly label: string;
  readonly since: Date;
}

interface QueueEntry extends QueuedRun {
  opts: { workerPath?: string };
  resolve(job: TrainingJob): void;
  reject(e: unknown): void;
}

export function requestLabel(r: JobRequest): string {
  const base = path.basename(r.configPath ?? r.resumeRunDir ?? 'run');
  return r.sweepIndex !== undefined ? `${base} (sweep run ${r.sweepIndex + 1})` : r.resumeRunDir ? `${base} (resume)` : base;
}

export class JobManager extends Disposable {
  private readonly _jobs = new Set<TrainingJob>();
  private readonly _queue: QueueEntry[] = [];
  private _stopped: { runDir: string; item: vscode.StatusBarItem; timer: NodeJS.Timeout } | undefined;
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
    this._register(toDisposable(() => this.clearStopped()));
    this._register(
      toDisposable(() => {
        for (const q of this._queue.splice(0)) q.reject(new vscode.CancellationError());
      }),
    );
  }

  /** Runs waiting for a free slot, in the order they will start. */
  get queued(): readonly QueuedRun[] {
    return this._queue.map(({ request, label, since }) => ({ request, label, since }));
  }

  /** Whether a run asked for now would wait in the queue. */
  get full(): boolean {
    return this.running.length >= this.limit;
  }

  private get limit(): number {
    const max = vscode.workspace.getConfiguration('loraLab').get<number>('maxConcurrentRuns', 2);
    return Number.isInteger(max) && max >= 1 ? max : 1;
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
    if (request.resumeRunDir) {
      const dir = path.resolve(request.resumeRunDir);
      const same = this.running.find((j) => j.runDir && path.resolve(j.runDir) === dir) ?? this._queue.find((q) => q.request.resumeRunDir && path.resolve(q.request.resumeRunDir) === dir);
      if (same) throw new JobError('alreadyRunning', `The run ${path.basename(dir)} is already ${'label' in same ? 'waiting to train' : 'training'}; one folder cannot take two runs at once.`);
    }
    // `workerPath` is for tests (a worker that crashes on purpose); users always get dist/worker.js.
    const workerPath = opts.workerPath ?? this.workerPath;
    if (!fs.existsSync(workerPath)) {
      throw new JobError('workerMissing', `The training worker ${workerPath} is missing: build the extension (npm run build).`);
    }
    if (this.full || this._queue.length > 0) {
      return new Promise<TrainingJob>((resolve, reject) => {
        const entry: QueueEntry = { request, label: requestLabel(request), since: new Date(), opts, resolve, reject };
        this._queue.push(entry);
        const running = this.running;
        log.info(`queued ${entry.label} (position ${this._queue.length}): ${running.length} run${running.length === 1 ? ' is' : 's are'} training, the limit is ${this.limit} (setting loraLab.maxConcurrentRuns)`);
        this.refresh();
      });
    }
    return this.launch(request, workerPath);
  }

  /** Takes a queued run out of the queue (it never starts); all of them when none is named. */
  dequeue(run?: QueuedRun): number {
    let n = 0;
    for (let i = this._queue.length - 1; i >= 0; i--) {
      const q = this._queue[i];
      if (run && q.request !== run.request) continue;
      this._queue.splice(i, 1);
      q.reject(new vscode.CancellationError());
      n++;
    }
    if (n) this.refresh();
    return n;
  }

  private startQueued(): void {
    while (this._queue.length > 0 && !this.full) {
      const next = this._queue.shift()!;
      log.info(`starting queued ${next.label} (waited ${formatDuration(Date.now() - next.since.getTime())})`);
      this.launch(next.request, next.opts.workerPath ?? this.workerPath).then(next.resolve, next.reject);
    }
  }

  private async launch(request: JobRequest, workerPath: string): Promise<TrainingJob> {
    if (request.resumeRunDir && this._stopped && path.resolve(this._stopped.runDir) === path.resolve(request.resumeRunDir)) this.clearStopped();
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
      log.debug(`extension host during ${job.name}: longest stall (event loop busy) ${result.maxStallMs.toFixed(1)} ms; longest timer lateness ${result.maxLateMs.toFixed(1)} ms (includes OS scheduling)`);
      this._onDidFinish.fire({ job, result });
      // A crashed worker's run.json was rewritten by the host (interrupted): tell the viewers.
      if (result.runDir) this._onDidWriteRun.fire(result.runDir);
      this._jobs.delete(job);
      job.dispose();
      this.refresh();
      this.reportResult(job, result);
      this.startQueued();
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

  /** Stops one job (or all, and empties the queue), leaving a resumable checkpoint. */
  cancel(job?: TrainingJob): void {
    if (!job) this.dequeue();
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
        // Cancellation is never reported as a failure (STYLE.md §7). The user asked for the stop, so no
        // notification: a status bar entry offers Resume, and goes away when the run is resumed (a
        // notification cannot be closed by the extension and would stay, stale, after a resume).
        if (r.runDir) this.showStopped(r.runDir, `${job.run?.name ?? where} stopped at step ${r.step}`);
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

  /** The stopped run a status bar entry offers to resume (cleared when it is resumed). */
  get stoppedRunDir(): string | undefined {
    return this._stopped?.runDir;
  }

  private showStopped(runDir: string, text: string): void {
    this.clearStopped();
    const item = vscode.window.createStatusBarItem('loraLab.stopped', vscode.StatusBarAlignment.Left, 9);
    item.name = 'LoRA Lab stopped run';
    item.text = `$(debug-pause) ${text} · Resume`;
    item.tooltip = `A checkpoint was saved in ${runDir}. Click to resume the run.`;
    item.command = { command: 'loraLab.resumeRun', title: 'Resume Run', arguments: [runDir] };
    item.show();
    // A stale offer is noise: it goes after a while even when the run is never resumed.
    const timer = setTimeout(() => this.clearStopped(), 10 * 60_000);
    this._stopped = { runDir, item, timer };
  }

  private clearStopped(): void {
    if (!this._stopped) return;
    clearTimeout(this._stopped.timer);
    this._stopped.item.dispose();
    this._stopped = undefined;
  }

  private refresh(): void {
    const running = this.running;
    const waiting = this._queue.length ? ` · ${this._queue.length} queued` : '';
    if (running.length === 0) {
      this._status.hide();
    } else {
      const j = running[running.length - 1];
      const more = running.length > 1 ? ` (+${running.length - 1})` : '';
      this._status.text = `$(loading~spin) LoRA ${describe(j.progress)}${more}${waiting}`;
      const queue = this._queue.map((q, i) => `queued ${i + 1}: ${q.label}`);
      this._status.tooltip = [...running.map((r) => `${r.name}: ${describe(r.progress)}${r.cancelRequested ? ' (stopping)' : ''}`), ...queue].join('\n') + '\nClick to open the dashboard';
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
