// Follows the SSH runs of this workspace (folders with remote.json, src/runners/sshRunner.ts): each is
// synced every few seconds while its run is not finished, so the Runs view and the dashboard see it grow.
// After a window reload the runs are found again from remote.json (reattach); a failed sync marks the
// run disconnected, says so once, and keeps retrying more slowly, never touching the remote job.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Disposable } from '../util/disposable';
import { log } from '../util/log';
import { REMOTE_FILE, RemoteRunFollower, type RemoteRunRecord } from './sshRunner';

const SYNC_MS = 3_000;
const RETRY_MS = 15_000;
const FINAL = new Set(['completed', 'cancelled', 'failed']);

/** The remote record of a run folder, if it is an SSH run. */
export function remoteRecord(dir: string): RemoteRunRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, REMOTE_FILE), 'utf8')) as RemoteRunRecord;
  } catch {
    return undefined;
  }
}

function runStatus(dir: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')) as { status?: string }).status;
  } catch {
    return undefined;
  }
}

/**
 * A running exported job (train.py's run.json, here or mirrored from a host): Stop can reach it with a
 * STOP file. A plain Trainer folder has no run.json and its script reads no STOP file.
 */
export function isStoppableJob(r: { dir: string; status: string; info: { backend?: { name?: string } } }): boolean {
  return r.info.backend?.name === 'torch' && r.status === 'running' && fs.existsSync(path.join(r.dir, 'run.json'));
}

export class RemoteRuns extends Disposable {
  private readonly followed = new Map<string, { follower: RemoteRunFollower; timer: NodeJS.Timeout; warned: boolean }>();
  private readonly _onDidSync = this._register(new vscode.EventEmitter<string>());
  /** Fires with the run folder after each sync (the state may have changed). */
  readonly onDidSync = this._onDidSync.event;

  constructor() {
    super();
    this._register({ dispose: () => this.followed.forEach((f) => clearTimeout(f.timer)) });
  }

  /** Finds the workspace's SSH runs (remote.json) and follows the unfinished ones. */
  async reattachAll(): Promise<void> {
    // remote.json names the ssh command line (host, options): never run it from an untrusted workspace.
    if (!vscode.workspace.isTrusted) return;
    const files = await vscode.workspace.findFiles(`**/${REMOTE_FILE}`, '{**/node_modules/**,**/.git/**}');
    for (const f of files) this.follow(path.dirname(f.fsPath));
  }

  follow(mirror: string): void {
    if (!vscode.workspace.isTrusted) return;
    const dir = path.resolve(mirror);
    if (this.followed.has(dir) || FINAL.has(runStatus(dir) ?? '')) return;
    const entry = { follower: new RemoteRunFollower(dir), timer: setTimeout(() => void this.tick(dir), 0), warned: false };
    this.followed.set(dir, entry);
    log.info(`remote run ${dir}: following ${entry.follower.record.target.host}:${entry.follower.record.remoteDir}`);
  }

  private async tick(dir: string): Promise<void> {
    const f = this.followed.get(dir);
    if (!f) return;
    let next = SYNC_MS;
    try {
      const rec = await f.follower.sync();
      if (rec.state === 'disconnected') {
        next = RETRY_MS;
        if (!f.warned) {
          f.warned = true;
          log.warn(`remote run ${dir}: disconnected: ${rec.lastError}`);
          void vscode.window.showWarningMessage(`LoRA Lab: lost the connection to ${rec.target.host}; the run keeps training there and is followed again once it answers. ${rec.lastError ?? ''}`);
        }
      } else if (f.warned) {
        f.warned = false;
        log.info(`remote run ${dir}: reconnected`);
      }
    } catch (e) {
      log.warn(`remote run ${dir}: ${(e as Error).message}`);
      next = RETRY_MS;
    }
    this._onDidSync.fire(dir);
    if (FINAL.has(runStatus(dir) ?? '')) {
      this.followed.delete(dir);
      return;
    }
    if (this.followed.has(dir)) f.timer = setTimeout(() => void this.tick(dir), next);
  }

  /** Stops following every run, as closing the window does (the remote jobs go on; reattachAll finds them). */
  detachAll(): void {
    for (const f of this.followed.values()) clearTimeout(f.timer);
    this.followed.clear();
  }

  /** The run folders followed now. */
  get following(): string[] {
    return [...this.followed.keys()];
  }

  /** Stop: STOP remotely; the next syncs bring the final checkpoint and status back. */
  async stop(dir: string): Promise<void> {
    await new RemoteRunFollower(dir).stop();
    this.follow(dir);
  }
}
