// The "Runs" view: runs in the workspace's run folders with their status, so a reopened window still
// shows finished and interrupted runs (and Resume continues them).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { listRunsInWorkspace, type RunEntry } from '../jobs/runIndex';
import { isStoppableJob, remoteRecord } from '../runners/remoteRuns';
import type { JobManager } from '../jobs/jobManager';
import { formatLoss } from '../jobs/format';
import { Disposable } from '../util/disposable';

const ICON: Record<string, string> = { running: 'loading~spin', completed: 'pass', cancelled: 'debug-pause', failed: 'error', interrupted: 'debug-disconnect' };

export class RunsTreeProvider extends Disposable implements vscode.TreeDataProvider<RunEntry> {
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

  getTreeItem(r: RunEntry): vscode.TreeItem {
    const item = new vscode.TreeItem(r.info.name ? `${r.info.name}` : path.basename(r.dir), vscode.TreeItemCollapsibleState.None);
    item.id = `run:${r.dir}`;
    const loss = r.info.lastLoss !== undefined ? ` · loss ${formatLoss(r.info.lastLoss)}` : '';
    // Runs on an SSH host say where, and when the connection is lost (the run goes on there).
    const remote = remoteRecord(r.dir);
    const status = remote ? `${remote.state === 'disconnected' && r.status === 'running' ? 'disconnected' : r.status} on ${remote.target.host}` : r.status;
    item.description = `${status} · step ${r.info.step}/${r.info.totalSteps}${loss}`;
    item.tooltip = `${r.dir}\n${r.info.kind} · ${r.status}${r.info.error ? `\n${r.info.error}` : ''}\ncreated ${r.info.createdAt}`;
    item.iconPath = new vscode.ThemeIcon(ICON[r.status] ?? 'circle-outline');
    item.resourceUri = vscode.Uri.file(r.dir);
    item.contextValue = r.resumable ? 'loraLab.run.resumable' : isStoppableJob(r) ? 'loraLab.run.external' : 'loraLab.run';
    item.command = { command: 'loraLab.openDashboard', title: 'Open Dashboard', arguments: [r.dir] };
    return item;
  }

  async getChildren(r?: RunEntry): Promise<RunEntry[]> {
    if (r) return [];
    return listRunsInWorkspace(this._jobs);
  }
}
