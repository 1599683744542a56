// "LoRA Lab: Run Experiment On…": export the experiment as a transformers + PEFT job (through the CLI, so
// the host never loads tfjs) and run it with a local Python, on an SSH host, or write the cluster files
// (SkyPilot, Slurm) for it. The run folder lands in the experiment's outputDir, so the Runs view and the
// dashboard show it like a run of ours.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseExperimentConfig } from '../formats/experimentConfig';
import { log } from '../util/log';
import { checkPython } from './pythonCheck';
import { JOB_LOG, requestStop, startLocalJob } from './localRunner';
import { SshError, sshConfigHosts, startRemoteJob, type SshTarget } from './sshRunner';
import { remoteRecord, type RemoteRuns } from './remoteRuns';

export interface RunOnContext {
  extension: vscode.ExtensionContext;
  remote: RemoteRuns;
  refreshRuns(): void;
  openDashboard(runDir: string): void;
  /** Keeps what the command told the user (the extension's API lists the last few, for tests and the log). */
  shown?(level: ShownMessage['level'], message: string): void;
}

/** A message the command showed. */
export interface ShownMessage {
  level: 'error' | 'warning' | 'info';
  message: string;
}

/**
 * Shows a notification without waiting for it: a notification with buttons stays until the user acts,
 * and the command must end (and say why) before that. `then` gets the button chosen, if any.
 */
function tell(ctx: RunOnContext | undefined, level: ShownMessage['level'], message: string, buttons: string[] = [], then?: (choice: string | undefined) => unknown): void {
  log[level === 'error' ? 'error' : level === 'warning' ? 'warn' : 'info'](message);
  ctx?.shown?.(level, message);
  const shown = level === 'error' ? vscode.window.showErrorMessage(message, ...buttons) : level === 'warning' ? vscode.window.showWarningMessage(message, ...buttons) : vscode.window.showInformationMessage(message, ...buttons);
  void Promise.resolve(shown).then((c) => then?.(c));
}

type Where = 'local' | 'ssh' | 'cluster';

function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * The host argument of the command (scripts, tests): "user@host:port" text, or an SshTarget object with
 * its identity file, ssh_config file and options. Anything else is refused by field.
 */
export function sshTargetArg(arg: unknown): SshTarget {
  if (typeof arg === 'string') return parseSshTarget(arg);
  const o = arg as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || typeof o.host !== 'string' || !o.host) throw new SshError('unreachable', 'the SSH host argument should be "user@host:port" or an object with a "host" string');
  const str = (k: string) => {
    if (o[k] !== undefined && typeof o[k] !== 'string') throw new SshError('unreachable', `the SSH host argument's "${k}" should be a string, got ${JSON.stringify(o[k])}`);
    return o[k] as string | undefined;
  };
  if (o.port !== undefined && !(Number.isInteger(o.port) && (o.port as number) > 0 && (o.port as number) < 65536)) throw new SshError('unreachable', `the SSH host argument's "port" should be 1-65535, got ${JSON.stringify(o.port)}`);
  if (o.options !== undefined && !(Array.isArray(o.options) && o.options.every((x) => typeof x === 'string'))) throw new SshError('unreachable', 'the SSH host argument\'s "options" should be a list of "Key=Value" strings');
  const t: SshTarget = { host: o.host };
  for (const k of ['user', 'identityFile', 'configFile'] as const) if (str(k)) t[k] = str(k);
  if (o.port !== undefined) t.port = o.port as number;
  if (o.options) t.options = o.options as string[];
  return t;
}

/** "user@host:port", "host:port", "user@host" or a ~/.ssh/config alias. */
export function parseSshTarget(text: string): SshTarget {
  const m = /^(?:([^@\s]+)@)?([^:@\s]+)(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new SshError('unreachable', `"${text}" is not a host: expected host, user@host or user@host:port`);
  return { host: m[2], ...(m[1] ? { user: m[1] } : {}), ...(m[3] ? { port: Number(m[3]) } : {}) };
}

/** loraLab.python, else the Python extension's selected interpreter (its API, when installed), else python3. */
async function pickPython(resource: vscode.Uri): Promise<string> {
  const setting = vscode.workspace.getConfiguration('loraLab', resource).get<string>('python', '').trim();
  if (setting) return setting;
  const ext = vscode.extensions.getExtension('ms-python.python');
  if (ext) {
    try {
      const api = (ext.isActive ? ext.exports : await ext.activate()) as { environments?: { getActiveEnvironmentPath?(r?: vscode.Uri): { path?: string } | undefined } } | undefined;
      const p = api?.environments?.getActiveEnvironmentPath?.(resource)?.path;
      if (p) return p;
    } catch (e) {
      log.warn(`the Python extension did not give an interpreter: ${(e as Error).message}`);
    }
  }
  return 'python3';
}

function cliExport(ctx: RunOnContext, config: string, out: string, seed: number): Promise<void> {
  const cli = vscode.Uri.joinPath(ctx.extension.extensionUri, 'dist', 'cli.js').fsPath;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'export', config, '--out', out, '--init-from', String(seed)], { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      log.info(`lora-lab export: ${output.trim()}`);
      if (code === 0) resolve();
      else reject(new Error(output.trim().replace(/^lora-lab export: /, '').split('\n').slice(0, 3).join(' ') || `lora-lab export exited with ${code}`));
    });
  });
}

async function pickHost(resource: vscode.Uri): Promise<SshTarget | undefined> {
  const settings = vscode.workspace.getConfiguration('loraLab', resource);
  const fromSetting = settings.get<string[]>('sshHosts', []);
  const configFile = settings.get<string>('sshConfigFile', '').trim();
  let fromConfig: string[] = [];
  try {
    fromConfig = sshConfigHosts(fs.readFileSync(configFile || path.join(os.homedir(), '.ssh', 'config'), 'utf8'));
  } catch (e) {
    // No ~/.ssh/config is usual; a configured file that cannot be read is not.
    if (configFile) tell(undefined, 'warning', `LoRA Lab: cannot read loraLab.sshConfigFile ${configFile}: ${(e as Error).message}`);
  }
  const hosts = [...new Set([...fromSetting, ...fromConfig])];
  const other = '$(edit) Another host…';
  const pick = await vscode.window.showQuickPick([...hosts.map((h) => ({ label: h, description: fromSetting.includes(h) ? 'loraLab.sshHosts' : configFile || '~/.ssh/config' })), { label: other, description: 'user@host:port' }], {
    title: 'LoRA Lab: Run Experiment On… an SSH host',
    placeHolder: 'Pick a host (key-based login; hosts come from ~/.ssh/config and loraLab.sshHosts)',
  });
  if (!pick) return undefined;
  const text = pick.label === other ? await vscode.window.showInputBox({ prompt: 'SSH host', placeHolder: 'user@gpu-box:22' }) : pick.label;
  return text ? { ...parseSshTarget(text), ...(configFile ? { configFile } : {}) } : undefined;
}

export async function runExperimentOn(ctx: RunOnContext, configUri: vscode.Uri, whereArg?: Where, hostArg?: unknown): Promise<string | undefined> {
  const file = configUri.fsPath;
  const parsed = parseExperimentConfig(fs.readFileSync(file, 'utf8'), file);
  if (!parsed.config) {
    tell(ctx, 'error', `LoRA Lab: ${path.basename(file)} has errors; fix them first (Problems view).`);
    return undefined;
  }
  const config = parsed.config;
  const where =
    whereArg ??
    (
      await vscode.window.showQuickPick(
        [
          { label: '$(terminal) Local Python', detail: 'transformers + PEFT with the loraLab.python interpreter (or the Python extension\'s)', where: 'local' as const },
          { label: '$(remote) SSH host…', detail: 'copy the job, start it detached, follow it live here', where: 'ssh' as const },
          { label: '$(server-environment) Cluster files', detail: 'write a SkyPilot task and a Slurm script for the job (not run)', where: 'cluster' as const },
        ],
        { title: `LoRA Lab: Run ${config.name} On…` },
      )
    )?.where;
  if (!where) return undefined;
  const outDir = path.resolve(path.dirname(file), config.outputDir);
  // The stamp has whole seconds: a second start within the same second gets "-2", never the first's folders.
  const base = `${config.name.replace(/[^A-Za-z0-9_-]+/g, '-')}-hf-${stamp()}`;
  let runName = base;
  for (let i = 2; fs.existsSync(path.join(outDir, '.jobs', runName)) || fs.existsSync(path.join(outDir, runName)); i++) runName = `${base}-${i}`;
  const jobDir = path.join(outDir, '.jobs', runName);
  const runDir = path.join(outDir, runName);

  let python = '';
  let target: SshTarget | undefined;
  if (where === 'local') {
    python = await pickPython(configUri);
    const check = await checkPython(python);
    log.info(`run on local Python: ${check.message}`);
    if (!check.ok) {
      const copy = 'Copy Install Command';
      tell(ctx, 'error', `LoRA Lab: ${check.message}`, [copy, 'Open Settings'], (act) =>
        act === copy ? vscode.env.clipboard.writeText(check.installCommand) : act === 'Open Settings' ? vscode.commands.executeCommand('workbench.action.openSettings', 'loraLab.python') : undefined,
      );
      return undefined;
    }
  } else if (where === 'ssh') {
    try {
      target = hostArg !== undefined ? sshTargetArg(hostArg) : await pickHost(configUri);
    } catch (e) {
      if (!SshError.is(e)) throw e;
      tell(ctx, 'error', `LoRA Lab: ${e.message}`);
      return undefined;
    }
    if (!target) return undefined;
  }

  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `LoRA Lab: ${config.name}` }, async (progress) => {
    progress.report({ message: 'exporting the transformers + PEFT job…' });
    try {
      await cliExport(ctx, file, jobDir, config.training.seed);
    } catch (e) {
      tell(ctx, 'error', `LoRA Lab: could not export ${config.name} as a transformers + PEFT job: ${(e as Error).message}`);
      return undefined;
    }
    if (where === 'cluster') {
      for (const f of ['sky.yaml', 'slurm.sbatch']) await vscode.window.showTextDocument(vscode.Uri.file(path.join(jobDir, f)), { preview: false });
      tell(
        ctx,
        'info',
        `LoRA Lab: wrote ${path.relative(path.dirname(file), jobDir)}/sky.yaml and slurm.sbatch (not run). Launch with \`sky launch sky.yaml\` or \`sbatch slurm.sbatch\`; copy the run folder back into ${config.outputDir}/ and the Runs view shows it.`,
      );
      return jobDir;
    }
    let alive: () => boolean = () => true;
    if (where === 'local') {
      progress.report({ message: `starting with ${python}…` });
      const job = startLocalJob({ python, jobDir, runDir });
      log.info(`run ${runDir}: local Python, pid ${job.pid}, log ${job.logFile}`);
      alive = () => {
        try {
          process.kill(job.pid, 0);
          return true;
        } catch {
          return false;
        }
      };
    } else {
      const remotePython = vscode.workspace.getConfiguration('loraLab', configUri).get<string>('remotePython', 'python3');
      progress.report({ message: `copying the job to ${target!.host} and starting it…` });
      try {
        const rec = await startRemoteJob({ target: target!, jobDir, mirrorDir: runDir, remoteDir: `lora-lab-jobs/${runName}`, python: remotePython });
        log.info(`run ${runDir}: ${target!.host}:${rec.remoteDir}, pid ${rec.pid}`);
      } catch (e) {
        if (SshError.is(e)) {
          tell(ctx, 'error', `LoRA Lab: ${e.message}`);
          return undefined;
        }
        throw e;
      }
      ctx.remote.follow(runDir);
    }
    ctx.refreshRuns();
    openWhenStarted(ctx, runDir, alive);
    return runDir;
  });
}

const START_WAIT_MS = 10 * 60_000;

/**
 * Opens the dashboard once the job has written run.json (Python takes a while to import the stack, and
 * a mirror has nothing before its first sync): the dashboard reads a folder as a run only then. A local
 * job that dies before that is reported with the end of its log.
 */
function openWhenStarted(ctx: RunOnContext, runDir: string, alive: () => boolean): void {
  const deadline = Date.now() + START_WAIT_MS;
  const started = () => fs.existsSync(path.join(runDir, 'run.json'));
  const tick = () => {
    if (started()) {
      ctx.refreshRuns();
      ctx.openDashboard(runDir);
      return;
    }
    if (!alive() && !started()) {
      let tail = '';
      try {
        tail = fs.readFileSync(path.join(runDir, JOB_LOG), 'utf8').trim().split('\n').slice(-3).join(' ');
      } catch {
        // no log
      }
      tell(ctx, 'error', `LoRA Lab: the job ended before it started training (${tail || 'no output'}). Its log is ${path.join(runDir, JOB_LOG)}`);
      return;
    }
    if (Date.now() > deadline) {
      tell(ctx, 'warning', `LoRA Lab: ${path.basename(runDir)} has not written run.json after ${START_WAIT_MS / 60_000} minutes; it appears in the Runs view once it does`);
      return;
    }
    setTimeout(tick, 250);
  };
  tick();
}

/** Stop for a run trained outside the extension (local Python or SSH): a STOP file, here or remotely. */
export async function stopExternalRun(ctx: RunOnContext, dir: string): Promise<void> {
  try {
    if (remoteRecord(dir)) await ctx.remote.stop(dir);
    else requestStop(dir);
  } catch (e) {
    // The remote job is untouched: it goes on until Stop reaches it.
    tell(ctx, 'error', `LoRA Lab: could not ask ${path.basename(dir)} to stop: ${(e as Error).message}`);
    return;
  }
  tell(ctx, 'info', `LoRA Lab: asked ${path.basename(dir)} to stop; it ends after its current step with a checkpoint.`);
}
