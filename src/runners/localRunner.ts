// Runs an exported job (src/export/exportJob.ts) with a local Python, detached from the caller: the job
// outlives a window reload, and its output folder is a LoRA Lab run (run.json with its pid), so the Runs
// view and the dashboard follow it like any other. Stop = a STOP file (the job ends with a checkpoint).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LocalJobStart {
  python: string;
  /** The exported job folder (train.py, experiment.json...). */
  jobDir: string;
  /** The run folder the job writes (created here; must not hold a run yet). */
  runDir: string;
  /** More train.py arguments (e.g. --use-cpu, --max-steps N). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface LocalJob {
  pid: number;
  runDir: string;
  /** stdout + stderr of the job. */
  logFile: string;
}

export const JOB_LOG = 'train.log';

export function startLocalJob(o: LocalJobStart): LocalJob {
  if (fs.existsSync(path.join(o.runDir, 'run.json'))) throw new Error(`${o.runDir} already holds a run; choose a new folder`);
  fs.mkdirSync(o.runDir, { recursive: true });
  const logFile = path.join(o.runDir, JOB_LOG);
  const fd = fs.openSync(logFile, 'a');
  try {
    const child = spawn(o.python, [path.join(o.jobDir, 'train.py'), '--output-dir', o.runDir, ...(o.args ?? [])], {
      cwd: o.jobDir,
      env: o.env ?? process.env,
      detached: true, // its own process group: closing the window does not end the training
      stdio: ['ignore', fd, fd],
    });
    if (child.pid === undefined) throw new Error(`could not start ${o.python}`);
    child.unref();
    return { pid: child.pid, runDir: o.runDir, logFile };
  } finally {
    fs.closeSync(fd);
  }
}

/** Asks a job to stop after its current update, with a checkpoint. */
export function requestStop(runDir: string): void {
  fs.writeFileSync(path.join(runDir, 'STOP'), `stop requested at ${new Date().toISOString()}\n`);
}
