// The "Runs" view: runs in the workspace's run folders with their status, so a reopened window still
// shows finished and interrupted runs (and Resume continues them).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { listRunsInWorkspace, type RunEntry } from '../jobs/runIndex';
import { isStoppableJob, remoteRecord } from '../runners/remoteRuns';
import type { JobManager, QueuedRun } from '../jobs/jobManager';
import { runDescription } from '../insight/runLabels';
import { formatDuration, formatLoss } from '../shared/format';
import { Disposable } from '../util/disposable';

const ICON: Record<string, string> = { running: 'loading~spin', completed: 'pass', cancelled: 'debug-pause', failed: 'error', interrupted: 'debug-disconnect' };

/** A row of the Runs view: a run folder, or a run waiting in the queue (no folder yet). */
export type RunsNode = RunEntry | QueuedRun;

const isQueued = (n: RunsNode): n is QueuedRun => 'since' in n;

export class RunsTreeProvider extends Disposable implements vscode.TreeDataProvider<RunsNode> {
  private readonly _onDidChangeTreeData = this._register(new vscode.EventEmitter<void>());
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  private _timer: NodeJS.Timeout | undefined;

  constructor(private readonly _jobs: JobManager) {
    super();
    const watcher = this._register(vscode.workspace.createFileSystemWatcher('**/run.json'));
    // Throttle, not debounce: progress arrives every ~250 ms during training, and a debounce that
    // restarts on each event would never fire.
    const soon = () => {
      this._timer ??= setTimeout(() => {
        this._timer = undefined;
        this._onDidChangeTreeData.fire();
      }, 300);
    };
    // Hugging Face Trainer folders: their trainer_state.json (top level or checkpoint-N/) is their run.json.
    const trainerWatcher = this._register(vscode.workspace.createFileSystemWatcher('**/trainer_state.json'));
    for (const w of [watcher, trainerWatcher]) {
      this._register(w.onDidCreate(soon));
      this._register(w.onDidChange(soon));
      this._register(w.onDidDelete(soon));
    }
    this._register(_jobs.onDidChangeJobs(soon));
    this._register({ dispose: () => clearTimeout(this._timer) });
  }

  refresh(): void {
    this._onDidChangeTreeData.fire();
  }

  getTreeItem(n: RunsNode): vscode.TreeItem {
    if (isQueued(n)) {
      const q = new vscode.TreeItem(n.label, vscode.TreeItemCollapsibleState.None);
      const at = this._jobs.queued.findIndex((x) => x.request === n.request);
      q.description = `queued${at >= 0 ? ` ${at + 1}` : ''} · since ${n.since.toLocaleTimeString()}`;
      q.tooltip = `Waits for a free slot (setting loraLab.maxConcurrentRuns) and starts by itself; Stop Training can remove it.`;
      q.iconPath = new vscode.ThemeIcon('watch');
      q.contextValue = 'loraLab.run.queued';
      return q;
    }
    const r = n;
    const item = new vscode.TreeItem(r.info.name ? `${r.info.name}` : path.basename(r.dir), vscode.TreeItemCollapsibleState.None);
    item.id = `run:${r.dir}`;
    // Runs on an SSH host say where, and when the connection is lost (the run goes on there).
    const remote = remoteRecord(r.dir);
    const where = remote ? ` · on ${remote.target.host}${remote.state === 'disconnected' && r.status === 'running' ? ' (disconnected)' : ''}` : '';
    item.description = runEntryDescription(r) + where;
    item.tooltip = runTooltip(r) + (remote ? `\non ${remote.target.host}` : '');
    item.iconPath = new vscode.ThemeIcon(ICON[r.status] ?? 'circle-outline');
    item.resourceUri = vscode.Uri.file(r.dir);
    // Rename, tag and delete are offered for runs not training now (the worker owns run.json then);
    // a transformers job (local or SSH) that is training can be stopped through its STOP file.
    const base = isStoppableJob(r) ? 'loraLab.run.external' : r.status === 'running' ? 'loraLab.run.running' : r.resumable ? 'loraLab.run.resumable' : 'loraLab.run';
    item.contextValue = base;
    item.command = { command: 'loraLab.openDashboard', title: 'Open Dashboard', arguments: [r.dir] };
    return item;
  }

  async getChildren(n?: RunsNode): Promise<RunsNode[]> {
    if (n) return [];
    return [...this._jobs.queued, ...(await listRunsInWorkspace(this._jobs))];
  }
}

export function runEntryDescription(r: RunEntry, now?: Date): string {
  return runDescription({ status: r.status, createdAt: r.info.createdAt, step: r.info.step, totalSteps: r.info.totalSteps, elapsedMs: r.elapsedMs, lastLoss: r.info.lastLoss, tags: r.info.tags }, now);
}

function runTooltip(r: RunEntry): string {
  const i = r.info;
  const lines = [i.name, r.dir, `${i.kind} · ${r.status} · step ${i.step}/${i.totalSteps}`, `started ${new Date(i.createdAt).toLocaleString()}`];
  if (i.finishedAt) lines.push(`ended ${new Date(i.finishedAt).toLocaleString()}`);
  if (r.elapsedMs !== undefined) lines.push(`training time ${formatDuration(r.elapsedMs)}`);
  if (i.lastLoss !== undefined) lines.push(`final loss ${formatLoss(i.lastLoss)}${i.lastEvalLoss !== undefined ? ` · eval loss ${formatLoss(i.lastEvalLoss)}` : ''}`);
  if (i.tags?.length) lines.push(`tags: ${i.tags.join(', ')}`);
  if (i.error) lines.push(i.error);
  return lines.join('\n');
}
