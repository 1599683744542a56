// The runs in this workspace, read from run.json files (src/runs/runStore.ts), with the status a user
// should see: a run recorded as 'running' that no live worker is training is 'interrupted'.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunInfo, RunStatus } from '../protocol/runFormat';
import { effectiveStatus, listRuns } from '../runs/runStore';
import { isTrainerRunDir, loadTrainerRun } from '../runs/hfTrainerRun';
import { trainingTimeMs } from '../runs/runTail';
import type { JobManager } from './jobManager';

export interface RunEntry {
  dir: string;
  info: RunInfo;
  status: RunStatus;
  /** Has a checkpoint and steps left, and is not training now. */
  resumable: boolean;
  /** Training time so far: the last metric point's elapsedMs (undefined before the first point). */
  elapsedMs?: number;
}

export function statusInHost(info: RunInfo, dir: string, jobs: JobManager): RunStatus {
  if (info.status !== 'running') return info.status;
  const live = jobs.running.some((j) => j.runDir && path.resolve(j.runDir) === path.resolve(dir));
  if (live) return 'running';
  // Our worker threads share the host's pid: a 'running' run of this process with no live job was
  // interrupted (window reload, crashed worker).
  if (info.pid === process.pid) return 'interrupted';
  return effectiveStatus(info);
}

/** A complete checkpoint to continue from (run.json's lastCheckpointStep, or a checkpoints/step-N folder). */
function hasCheckpoint(dir: string, info: RunInfo): boolean {
  if (info.lastCheckpointStep !== undefined) return true;
  try {
    return fs.readdirSync(path.join(dir, 'checkpoints')).some((n) => /^step-\d+$/.test(n));
  } catch {
    return false;
  }
}

/** `jobs` is required: without it a run this window is training would read as interrupted (same pid). */
export async function listRunsInWorkspace(jobs: JobManager): Promise<RunEntry[]> {
  const files = await vscode.workspace.findFiles('**/run.json', '{**/node_modules/**,**/.git/**}');
  const outDirs = new Set(files.map((f) => path.dirname(path.dirname(f.fsPath))));
  const entries: RunEntry[] = [];
  for (const outDir of outDirs) {
    for (const r of listRuns(outDir)) {
      const status = statusInHost(r.info, r.dir, jobs);
      entries.push({ dir: r.dir, info: r.info, status, resumable: status !== 'running' && status !== 'completed' && hasCheckpoint(r.dir, r.info), elapsedMs: trainingTimeMs(r.dir, r.info) });
    }
  }
  // Hugging Face Trainer folders (trainer_state.json at the top or in checkpoint-N/) that are not ours.
  const states = await vscode.workspace.findFiles('**/trainer_state.json', '{**/node_modules/**,**/.git/**}');
  const trainerDirs = new Set(states.map((f) => path.dirname(f.fsPath)).map((d) => (/^checkpoint-\d+$/.test(path.basename(d)) ? path.dirname(d) : d)));
  for (const dir of trainerDirs) {
    if (!isTrainerRunDir(dir)) continue;
    try {
      const r = loadTrainerRun(dir);
      entries.push({ dir: r.dir, info: r.info, status: r.info.status, resumable: false });
    } catch {
      // a trainer_state.json being rewritten: the next refresh reads it
    }
  }
  return entries.sort((a, b) => (a.info.createdAt < b.info.createdAt ? 1 : -1));
}
