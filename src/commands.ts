// Every `loraLab.*` command, from one table (rust-analyzer `createCommands()`). The wrapper checks
// Workspace Trust in the handler (not only in `when` clauses), reports errors, and never reports a
// user's cancellation as a failure.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseExperimentConfig, type SweepVariant } from './formats/experimentConfig';
import type { ExperimentKind } from './formats/experimentTypes';
import { requestLabel, type JobManager, type QueuedRun } from './jobs/jobManager';
import { listRunsInWorkspace, type RunEntry } from './jobs/runIndex';
import { JobError, type JobRequest, type TrainingJob } from './jobs/trainingJob';
import type { RunInfo } from './protocol/runFormat';
import { RunFolder } from './runs/runStore';
import { parseTags } from './insight/runLabels';
import { moveToFreedesktopTrash } from './jobs/trash';
import { errorMessage, log } from './util/log';
import { adapterDescription, isMergeable, type AdapterInfo } from './insight/adapterScan';
import type { AdapterNode, AdapterTreeProvider } from './views/adapterTree';
import { experimentTemplate } from './insight/experimentTemplate';
import { runEntryDescription, type RunsTreeProvider } from './views/runsTree';
import { isStoppableJob, RemoteRuns } from './runners/remoteRuns';
import { runExperimentOn, stopExternalRun, type RunOnContext, type ShownMessage } from './runners/runOnCommand';
import { PlaygroundPanel } from './views/playgroundPanel';

/** What the dashboard offers the commands (src/views/dashboardPanel.ts implements it). */
export interface DashboardOpener {
  show(opts: { runDirs?: string[]; adapterPath?: string; adapterPaths?: string[] }): void | Promise<void>;
}

export interface CommandContext {
  extension: vscode.ExtensionContext;
  jobs: JobManager;
  adapters: AdapterTreeProvider;
  runs: RunsTreeProvider;
  dashboard: DashboardOpener;
  /** SSH runs being followed (src/runners/remoteRuns.ts). */
  remote?: RemoteRuns;
  /** What Run Experiment On… told the user (the last 20). */
  runOnMessages?: ShownMessage[];
}

export interface CommandSpec {
  id: string;
  /** Why the command is refused in Restricted Mode; unset = available there. */
  restricted?: string;
  run(ctx: CommandContext, ...args: unknown[]): unknown;
}

/** Result of a command refused in Restricted Mode (tests check it). */
export interface Refused {
  refused: string;
}

const CONFIG_GLOB = '**/*.lora.{json,yaml,yml}';
const EXCLUDE = '{**/node_modules/**,**/.git/**}';
const isConfigPath = (p: string) => /\.lora\.(json|ya?ml)$/i.test(p);

function uriArg(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === 'string' && arg) return vscode.Uri.file(arg);
  return undefined;
}

function adapterPathArg(arg: unknown): { path: string; info?: AdapterInfo } | undefined {
  const node = arg as AdapterNode | undefined;
  if (node && typeof node === 'object' && 'kind' in node && (node.kind === 'adapter' || node.kind === 'base' || node.kind === 'module')) return { path: node.info.path, info: node.info };
  const u = uriArg(arg);
  return u ? { path: u.fsPath } : undefined;
}

async function pickConfig(): Promise<vscode.Uri | undefined> {
  const active = vscode.window.activeTextEditor?.document;
  if (active && isConfigPath(active.uri.fsPath)) return active.uri;
  const files = await vscode.workspace.findFiles(CONFIG_GLOB, EXCLUDE);
  if (files.length === 0) {
    const make = await vscode.window.showInformationMessage('No *.lora.json or *.lora.yaml experiment in this workspace.', 'New Experiment');
    if (make) await vscode.commands.executeCommand('loraLab.newExperiment');
    return undefined;
  }
  if (files.length === 1) return files[0];
  const pick = await vscode.window.showQuickPick(
    files.map((u) => ({ label: path.basename(u.fsPath), description: vscode.workspace.asRelativePath(path.dirname(u.fsPath)), uri: u })),
    { title: 'LoRA Lab: Train Experiment', placeHolder: 'Pick an experiment config' },
  );
  return pick?.uri;
}

async function pickRun(ctx: CommandContext, title: string, filter: (r: RunEntry) => boolean, many = false): Promise<RunEntry[] | undefined> {
  // With the job manager: a run training now reads 'running', not 'interrupted' (and is not offered to Resume).
  const runs = (await listRunsInWorkspace(ctx.jobs)).filter(filter);
  if (runs.length === 0) {
    void vscode.window.showInformationMessage(`LoRA Lab: no ${title.toLowerCase().includes('resume') ? 'resumable ' : ''}runs in this workspace.`);
    return undefined;
  }
  // Same-named runs (a sweep, a config trained twice) differ by date, training time and final loss.
  const items = runs.map((r) => ({ label: r.info.name, description: runEntryDescription(r), detail: vscode.workspace.asRelativePath(r.dir), run: r }));
  if (many) {
    const picks = await vscode.window.showQuickPick(items, { title, canPickMany: true });
    return picks?.map((p) => p.run);
  }
  const pick = await vscode.window.showQuickPick(items, { title });
  return pick ? [pick.run] : undefined;
}

async function pickAdapter(ctx: CommandContext, title: string, filter: (a: AdapterInfo) => boolean = () => true): Promise<AdapterInfo | undefined> {
  const all = (await ctx.adapters.adapters()).filter(filter);
  if (all.length === 0) {
    void vscode.window.showInformationMessage('LoRA Lab: no matching adapters found in this workspace.');
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    // A run's adapter: its date, training time and loss (runs of one config share a name).
    all.map((a) => ({ label: a.label, description: a.run ? adapterDescription(a) : a.formatLabel, detail: vscode.workspace.asRelativePath(a.path), a })),
    { title },
  );
  return pick?.a;
}

async function train(ctx: CommandContext, arg?: unknown): Promise<TrainingJob | undefined> {
  const uri = uriArg(arg) ?? (await pickConfig());
  if (!uri) return undefined;
  const doc = await vscode.workspace.openTextDocument(uri);
  if (doc.isDirty) await doc.save();
  // Refuse early with the parser's own message (the same parser the worker and the CLI use).
  const { issues, sweep } = parseExperimentConfig(doc.getText(), uri.fsPath);
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length) {
    const first = errors[0];
    void vscode.window
      .showErrorMessage(`LoRA Lab: ${path.basename(uri.fsPath)}:${first.line}:${first.column}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, 'Show Problems')
      .then((a) => a && vscode.commands.executeCommand('workbench.actions.view.problems'));
    return undefined;
  }
  if (!sweep) return startOrQueue(ctx, { configPath: uri.fsPath });
  return startSweep(ctx, uri, sweep);
}

/**
 * Starts a run now, or queues it (returns undefined at once, with a message) when loraLab.maxConcurrentRuns
 * runs are training: a queued run starts by itself when a slot frees.
 */
async function startOrQueue(ctx: CommandContext, request: JobRequest): Promise<TrainingJob | undefined> {
  if (!ctx.jobs.full && ctx.jobs.queued.length === 0) return ctx.jobs.start(request);
  const started = ctx.jobs.start(request);
  started.catch(() => undefined); // dequeued (Stop Training): not a failure
  const n = ctx.jobs.queued.length;
  void vscode.window.showInformationMessage(`LoRA Lab: ${requestLabel(request)} is queued (${n} waiting); it starts when a running run ends (setting loraLab.maxConcurrentRuns).`);
  return undefined;
}

/** Queues one run per sweep value; when they have all ended, the dashboard compares them. */
async function startSweep(ctx: CommandContext, uri: vscode.Uri, sweep: SweepVariant[]): Promise<TrainingJob | undefined> {
  const immediate = !ctx.jobs.full && ctx.jobs.queued.length === 0;
  log.info(`sweep ${path.basename(uri.fsPath)}: ${sweep.length} runs (${sweep.map((v) => v.label).join('; ')})`);
  const jobs = sweep.map((_v, sweepIndex) => ctx.jobs.start({ configPath: uri.fsPath, sweepIndex }));
  void vscode.window.showInformationMessage(
    `LoRA Lab: sweep of ${sweep.length} runs from ${path.basename(uri.fsPath)} (${sweep.map((v) => v.config.name).join(', ')}); runs beyond loraLab.maxConcurrentRuns wait in the queue. The comparison opens when they have ended.`,
  );
  void Promise.all(jobs.map((p) => p.then((j) => j.finished).catch(() => undefined))).then((results) => {
    const dirs = results.flatMap((r) => (r?.runDir ? [r.runDir] : []));
    if (dirs.length >= 2) return ctx.dashboard.show({ runDirs: dirs });
  });
  for (const p of jobs) p.catch(() => undefined); // dequeued (Stop Training): not a failure
  // The first run started at once when a slot was free (start resolves once its folder exists).
  return immediate ? jobs[0] : undefined;
}

function readRunInfo(dir: string): RunInfo | undefined {
  try {
    return RunFolder.open(dir).storedInfo;
  } catch {
    return undefined; // not a run folder: the worker's error says so
  }
}

async function resume(ctx: CommandContext, arg?: unknown): Promise<TrainingJob | undefined> {
  let dir = typeof arg === 'string' ? arg : arg && typeof arg === 'object' && 'dir' in arg ? String((arg as RunEntry).dir) : uriArg(arg)?.fsPath;
  if (!dir) dir = (await pickRun(ctx, 'LoRA Lab: Resume Run', (r) => r.resumable))?.[0]?.dir;
  if (!dir) return undefined;
  // A run that already finished (e.g. Resume clicked on an old "stopped" notification) is not an
  // error to report as a failed run: say so plainly.
  const info = readRunInfo(dir);
  if (info?.status === 'completed') {
    void vscode.window.showInformationMessage(`LoRA Lab: ${path.basename(dir)} already finished all ${info.totalSteps} steps; there is nothing to resume.`, 'Open Dashboard').then((a) => a && vscode.commands.executeCommand('loraLab.openDashboard', dir));
    return undefined;
  }
  return startOrQueue(ctx, { resumeRunDir: dir });
}

async function stop(ctx: CommandContext): Promise<void> {
  const running = ctx.jobs.running;
  const queued = ctx.jobs.queued;
  if (running.length === 0 && queued.length === 0) {
    void vscode.window.showInformationMessage('LoRA Lab: no training is running.');
    return;
  }
  if (running.length === 1 && queued.length === 0) return ctx.jobs.cancel(running[0]);
  type Pick = vscode.QuickPickItem & { job?: TrainingJob; queued?: QueuedRun };
  const items: Pick[] = [
    { label: queued.length ? 'All runs, and empty the queue' : 'All runs' },
    ...running.map((j) => ({ label: j.name, description: `step ${j.progress.step}/${j.progress.totalSteps}`, job: j })),
    ...queued.map((q, i) => ({ label: q.label, description: `queued ${i + 1} · remove from the queue`, queued: q })),
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'LoRA Lab: Stop Training' });
  if (!pick) return;
  if (pick.queued) ctx.jobs.dequeue(pick.queued);
  else ctx.jobs.cancel(pick.job);
}

function runOnContext(ctx: CommandContext): RunOnContext {
  ctx.remote ??= new RemoteRuns();
  const messages = ctx.runOnMessages;
  return {
    extension: ctx.extension,
    remote: ctx.remote,
    refreshRuns: () => ctx.runs.refresh(),
    openDashboard: (dir) => void ctx.dashboard.show({ runDirs: [dir] }),
    shown: (level, message) => {
      messages?.push({ level, message });
      if (messages && messages.length > 20) messages.shift();
    },
  };
}

/** loraLab.runExperimentOn [config] [where: 'local' | 'ssh' | 'cluster'] [host: "user@host:port" | SshTarget] */
async function runOn(ctx: CommandContext, arg?: unknown, where?: unknown, host?: unknown): Promise<string | undefined> {
  const uri = uriArg(arg) ?? (await pickConfig());
  if (!uri) return undefined;
  return runExperimentOn(runOnContext(ctx), uri, where === 'local' || where === 'ssh' || where === 'cluster' ? where : undefined, host);
}

/** Stop a run trained by transformers (local Python or SSH): STOP in its folder, here or remotely. */
async function stopRun(ctx: CommandContext, arg?: unknown): Promise<void> {
  const dir = (arg as RunEntry | undefined)?.dir ?? uriArg(arg)?.fsPath;
  const target = dir ?? (await pickRun(ctx, 'LoRA Lab: Stop Run', isStoppableJob))?.[0]?.dir;
  if (target) await stopExternalRun(runOnContext(ctx), target);
}

/** Optional second argument of loraLab.newExperiment, for scripts and tests: skips the questions given. */
export interface NewExperimentOptions {
  kind?: ExperimentKind;
  folder?: string;
  name?: string;
  r?: number;
  modelPath?: string;
}

/** A config file name from what the user typed: "My run" -> "My-run" (the file gets .lora.json). */
export function experimentFileStem(name: string): string {
  return name.trim().replace(/\.lora\.json$/i, '').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[-.]+|-+$/g, '');
}

async function newExperiment(_ctx: CommandContext, arg?: unknown, opts: NewExperimentOptions = {}): Promise<vscode.Uri | undefined> {
  const roots = vscode.workspace.workspaceFolders ?? [];
  if (roots.length === 0 && !opts.folder) {
    void vscode.window.showErrorMessage('LoRA Lab: open a folder first; the experiment file goes into it.');
    return undefined;
  }
  const kinds: { label: string; detail: string; experiment: ExperimentKind }[] = [
    { label: 'low-rank-recovery', detail: 'LoRA learns a hidden low-rank update of a random linear layer (seconds on a CPU)', experiment: 'low-rank-recovery' },
    { label: 'attention-adaptation', detail: "LoRAAttention (from the reference LoRA code) learns a teacher with low-rank changes to Q, K, V", experiment: 'attention-adaptation' },
    { label: 'causal-lm', detail: 'Fine-tune a Hugging Face Llama / GPT-2 folder on a text file', experiment: 'causal-lm' },
  ];
  const kindName = opts.kind ?? (await vscode.window.showQuickPick(kinds, { title: 'New Experiment (1/4): kind' }))?.experiment;
  if (!kindName) return undefined;
  const steps = kindName === 'causal-lm' ? 5 : 4;

  // 2: where the file goes. The folder clicked in the Explorer (or the active file's) comes first.
  let folder = opts.folder ? vscode.Uri.file(opts.folder) : undefined;
  if (!folder) {
    const clicked = uriArg(arg);
    const clickedDir = clicked && fs.existsSync(clicked.fsPath) ? (fs.statSync(clicked.fsPath).isDirectory() ? clicked.fsPath : path.dirname(clicked.fsPath)) : undefined;
    const active = vscode.window.activeTextEditor?.document.uri;
    const activeDir = active?.scheme === 'file' && vscode.workspace.getWorkspaceFolder(active) ? path.dirname(active.fsPath) : undefined;
    const dirs = [...new Set([clickedDir, activeDir, ...roots.map((r) => r.uri.fsPath)].filter((d): d is string => d !== undefined))];
    const browse = { label: '$(folder-opened) Choose a folder…', dir: undefined as string | undefined };
    const label = (d: string) => {
      const rel = vscode.workspace.asRelativePath(d, roots.length > 1);
      return rel === d || rel === '' ? `${path.basename(d)} (workspace folder)` : rel;
    };
    const pick = await vscode.window.showQuickPick([...dirs.map((d) => ({ label: `$(folder) ${label(d)}`, description: d, dir: d as string | undefined })), browse], {
      title: `New Experiment (2/${steps}): folder for the config file`,
    });
    if (!pick) return undefined;
    let dir = pick.dir;
    if (!dir) dir = (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, defaultUri: roots[0]?.uri, title: 'Folder for the experiment file' }))?.[0]?.fsPath;
    if (!dir) return undefined;
    folder = vscode.Uri.file(dir);
  }

  // 3: its name (the file name and the runs' name).
  const exists = (stem: string) => fs.existsSync(path.join(folder.fsPath, `${stem}.lora.json`));
  let suggested: string = kindName;
  for (let i = 2; exists(suggested); i++) suggested = `${kindName}-${i}`;
  const typed =
    opts.name ??
    (await vscode.window.showInputBox({
      title: `New Experiment (3/${steps}): name`,
      value: suggested,
      prompt: `The file is <name>.lora.json in ${folder.fsPath}; runs are named after it.`,
      validateInput: (v) => {
        const stem = experimentFileStem(v);
        if (!stem) return 'Give the experiment a name (letters, digits, - _ .)';
        return exists(stem) ? `${stem}.lora.json already exists in this folder` : undefined;
      },
    }));
  if (typed === undefined) return undefined;
  const name = experimentFileStem(typed);
  if (!name) return undefined;
  const target = vscode.Uri.joinPath(folder, `${name}.lora.json`);
  if (fs.existsSync(target.fsPath)) throw new Error(`${target.fsPath} already exists; pick another name`);

  let modelPath = opts.modelPath;
  if (kindName === 'causal-lm' && !modelPath) {
    const models = await vscode.workspace.findFiles('**/config.json', EXCLUDE);
    const candidates = models.map((u) => path.dirname(u.fsPath)).filter((d) => fs.existsSync(path.join(d, 'model.safetensors')) || fs.existsSync(path.join(d, 'model.safetensors.index.json')));
    const browse = { label: '$(folder) Browse…', dir: undefined as string | undefined };
    const pick = await vscode.window.showQuickPick([...candidates.map((d) => ({ label: path.basename(d), description: vscode.workspace.asRelativePath(d), dir: d as string | undefined })), browse], { title: `New Experiment (4/${steps}): model folder` });
    if (!pick) return undefined;
    let dir = pick.dir;
    if (!dir) dir = (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Model folder (config.json + model.safetensors)' }))?.[0]?.fsPath;
    if (!dir) return undefined;
    modelPath = path.relative(folder.fsPath, dir).split(path.sep).join('/') || '.';
  }
  let r = opts.r;
  if (r === undefined) {
    const rText = await vscode.window.showInputBox({
      title: `New Experiment (${steps}/${steps}): rank r`,
      value: kindName === 'causal-lm' ? '8' : '4',
      validateInput: (v) => (/^\d+$/.test(v.trim()) && Number(v) >= 1 ? undefined : '`r` should be a positive integer'),
    });
    if (!rText) return undefined;
    r = Number(rText.trim());
  }
  // The editor copy of the schema, when this workspace has it (this repository's examples do).
  const schema = roots.map((f) => path.join(f.uri.fsPath, 'schemas', 'experiment.editor.schema.json')).find((f) => fs.existsSync(f));
  const schemaPath = schema ? path.relative(folder.fsPath, schema).split(path.sep).join('/') : undefined;
  const text = experimentTemplate({ kind: kindName, name, r, modelPath, schemaPath });
  await vscode.workspace.fs.writeFile(target, Buffer.from(text, 'utf8'));
  await vscode.window.showTextDocument(target);
  return target;
}

async function openDashboard(ctx: CommandContext, arg?: unknown): Promise<void> {
  let dir = typeof arg === 'string' ? arg : arg && typeof arg === 'object' && 'dir' in arg ? String((arg as RunEntry).dir) : uriArg(arg)?.fsPath;
  if (!dir) {
    const running = ctx.jobs.running.find((j) => j.runDir);
    dir = running?.runDir ?? (await listRunsInWorkspace(ctx.jobs))[0]?.dir;
  }
  await ctx.dashboard.show(dir ? { runDirs: [dir] } : {});
}

async function compareRuns(ctx: CommandContext, ...args: unknown[]): Promise<void> {
  let dirs = args.flat().filter((a): a is string => typeof a === 'string');
  if (dirs.length < 2) {
    const picked = await pickRun(ctx, 'LoRA Lab: Compare Runs (pick two or more)', () => true, true);
    if (!picked || picked.length === 0) return;
    dirs = picked.map((r) => r.dir);
  }
  await ctx.dashboard.show({ runDirs: dirs });
}

/** Optional second argument of loraLab.exportReport, for scripts and tests: skips the save dialog. */
export interface ExportReportOptions {
  out?: string;
  title?: string;
}

/**
 * Export HTML Report: `lora-lab report` of the given or picked runs (several are overlaid, as in Compare
 * Runs) into one self-contained HTML file that opens offline in any browser.
 */
async function exportReport(ctx: CommandContext, arg?: unknown, opts: ExportReportOptions = {}): Promise<string | undefined> {
  const given = (Array.isArray(arg) ? arg : arg === undefined ? [] : [arg])
    .map((a) => (typeof a === 'string' ? a : a && typeof a === 'object' && 'dir' in a ? String((a as RunEntry).dir) : uriArg(a)?.fsPath))
    .filter((d): d is string => !!d);
  let dirs = given;
  if (dirs.length === 0) {
    const picked = await pickRun(ctx, 'LoRA Lab: Export HTML Report (pick one or more runs)', () => true, true);
    if (!picked || picked.length === 0) return undefined;
    dirs = picked.map((r) => r.dir);
  }
  const out =
    opts.out ??
    (
      await vscode.window.showSaveDialog({
        title: 'LoRA Lab: save the HTML report',
        filters: { 'HTML report': ['html'] },
        defaultUri: vscode.Uri.file(path.join(path.dirname(dirs[0]), `${path.basename(dirs[0])}${dirs.length > 1 ? `-and-${dirs.length - 1}-more` : ''}-report.html`)),
      })
    )?.fsPath;
  if (!out) return undefined;
  const args = ['report', ...dirs, '--out', out, ...(opts.title ? ['--title', opts.title] : [])];
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `LoRA Lab: writing the report of ${dirs.length === 1 ? path.basename(dirs[0]) : `${dirs.length} runs`}`, cancellable: true },
    (_p, token) => runCli(ctx, args, token),
  );
  void vscode.window.showInformationMessage(`LoRA Lab: wrote ${out}; it opens offline in any browser.`, 'Open in Browser').then((c) => {
    if (c) void vscode.env.openExternal(vscode.Uri.file(out));
  });
  return out;
}

async function inspectAdapter(ctx: CommandContext, arg?: unknown): Promise<void> {
  const p = adapterPathArg(arg)?.path ?? (await pickAdapter(ctx, 'LoRA Lab: Inspect Adapter'))?.path;
  if (p) await ctx.dashboard.show({ adapterPath: p });
}

/** Compare with…: two runs overlay their curves; otherwise both adapters open in one panel, side by side. */
async function compareWith(ctx: CommandContext, arg?: unknown, secondArg?: unknown): Promise<void> {
  const first = adapterPathArg(arg) ?? (await pickAdapter(ctx, 'LoRA Lab: Compare… (first adapter)').then((a) => a && { path: a.path, info: a }));
  if (!first) return;
  // The second adapter: given (scripts, tests) or picked.
  const given = adapterPathArg(secondArg);
  const all = given ? await ctx.adapters.adapters() : [];
  const second = given ? (all.find((a) => a.path === given.path) ?? { path: given.path, runDir: undefined }) : await pickAdapter(ctx, `Compare ${path.basename(first.path)} with…`, (a) => a.path !== first.path && !a.problem);
  if (!second) return;
  const firstRun = first.info?.runDir ?? (given ? all.find((a) => a.path === first.path)?.runDir : undefined);
  if (firstRun && second.runDir) return compareRuns(ctx, [firstRun, second.runDir]);
  await ctx.dashboard.show({ adapterPaths: [first.path, second.path] });
}

function cliPath(ctx: CommandContext): string {
  return vscode.Uri.joinPath(ctx.extension.extensionUri, 'dist', 'cli.js').fsPath;
}

/** Runs our CLI in a child process (the host never loads tfjs); resolves to its stdout. */
function runCli(ctx: CommandContext, args: string[], token: vscode.CancellationToken): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(ctx), ...args], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      output += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const sub = token.onCancellationRequested(() => child.kill());
    child.on('error', (e) => reject(e));
    child.on('exit', (code, signal) => {
      sub.dispose();
      log.info(`lora-lab ${args[0]}: ${output.trim()}`);
      if (code === 0) resolve(stdout);
      else if (signal || token.isCancellationRequested) reject(new vscode.CancellationError());
      else reject(new Error(output.trim().split('\n').slice(-3).join(' ') || `lora-lab ${args[0]} exited with ${code}`));
    });
  });
}

/** The adapter's base model folder: the one found in the workspace, else the user picks it (undefined: cancelled). */
async function askBase(info: AdapterInfo, purpose: string): Promise<string | undefined> {
  if (info.baseFound) return info.baseFound;
  const why = info.baseModel ? `It names "${info.baseModel}", which is not in this workspace.` : 'It does not name its base model.';
  const choice = await vscode.window.showWarningMessage(
    `An adapter alone cannot run: it holds only the low-rank update ΔW = s·B·A for some layers of a base model. ${why} Pick the base model folder (config.json + model.safetensors) ${purpose}.`,
    { modal: true },
    'Pick Base Model Folder…',
  );
  if (!choice) return undefined;
  return (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Base model folder' }))?.[0]?.fsPath;
}

/** Optional second argument of loraLab.mergeAdapter, for scripts and tests: skips the questions. */
export interface MergeOptions {
  base?: string;
  out?: string;
}

async function mergeAdapter(ctx: CommandContext, arg?: unknown, opts: MergeOptions = {}): Promise<string | undefined> {
  const given = adapterPathArg(arg);
  let info = given?.info;
  if (!info && given) info = (await ctx.adapters.adapters()).find((a) => a.path === given.path || a.weightsFile === given.path);
  // Offered: PEFT adapters of a real model (a built-in experiment's run has no base model to merge into).
  info ??= await pickAdapter(ctx, 'LoRA Lab: Merge Adapter into Base Model', isMergeable);
  if (!info) return undefined;
  if (info.format !== 'peft') {
    void vscode.window.showErrorMessage(`LoRA Lab: merging is supported for PEFT adapters (adapter_config.json + adapter_model.safetensors); ${info.label} is ${info.formatLabel}.`);
    return undefined;
  }
  if (info.runDir && !info.baseModel) {
    void vscode.window.showInformationMessage(`LoRA Lab: ${info.label} adapts a built-in synthetic experiment; there is no Hugging Face base model to merge it into. Its ΔW is shown in the dashboard.`);
    return undefined;
  }
  const base = opts.base ?? (await askBase(info, 'to merge into'));
  if (!base) return undefined;
  const out = opts.out ??
    (await vscode.window.showInputBox({
      title: 'Merged model folder',
      value: path.join(path.dirname(info.path), `${path.basename(info.runDir ?? info.path)}-merged`),
      validateInput: (v) => (fs.existsSync(path.join(v, 'config.json')) ? 'That folder already holds a model' : undefined),
    }));
  if (!out) return undefined;
  const adapterDir = info.path;
  const baseDir = base;
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `LoRA Lab: merging ${info.label} into ${path.basename(baseDir)}`, cancellable: true }, (_p, token) =>
    runCli(ctx, ['merge', '--model', baseDir, '--adapter', adapterDir, '--out', out], token),
  );
  void vscode.window.showInformationMessage(`LoRA Lab: merged model written to ${out}.`);
  ctx.adapters.refreshSoon();
  return out;
}

/** Optional second argument of loraLab.convertAdapter, for scripts and tests: skips the questions. */
export interface ConvertOptions {
  to?: 'gguf' | 'mlx';
  base?: string;
  out?: string;
}

/** What `lora-lab convert --json` prints for an adapter. */
interface ConvertSummary {
  out: string;
  modules: { module: string; target: string; relError: number }[];
}

/**
 * Convert Adapter for llama.cpp / mlx-lm…: `lora-lab convert` in a child process. The per-layer ΔW
 * error it computes before writing goes to the log; the message gives the largest.
 */
async function convertAdapter(ctx: CommandContext, arg?: unknown, opts: ConvertOptions = {}): Promise<ConvertSummary | undefined> {
  const given = adapterPathArg(arg);
  let info = given?.info;
  if (!info && given) info = (await ctx.adapters.adapters()).find((a) => a.path === given.path || a.weightsFile === given.path);
  info ??= await pickAdapter(ctx, 'LoRA Lab: Convert Adapter for llama.cpp / mlx-lm', (a) => a.format === 'peft');
  if (!info) return undefined;
  if (info.format !== 'peft' || (info.runDir && !info.baseModel)) {
    const why = info.format !== 'peft' ? `${info.label} is ${info.formatLabel}` : `${info.label} adapts a built-in synthetic experiment, which has no Hugging Face base model`;
    void vscode.window.showErrorMessage(`LoRA Lab: converting is supported for PEFT adapters of a Hugging Face Llama or GPT-2 model (adapter_config.json + adapter_model.safetensors); ${why}.`);
    return undefined;
  }
  const to =
    opts.to ??
    (
      await vscode.window.showQuickPick(
        [
          { label: 'GGUF for llama.cpp', description: 'also Ollama (ADAPTER in a Modelfile) and LM Studio', to: 'gguf' as const },
          { label: 'mlx-lm adapter', description: 'adapters.safetensors + adapter_config.json', to: 'mlx' as const },
        ],
        { title: `Convert ${info.label} for…` },
      )
    )?.to;
  if (!to) return undefined;
  const base = opts.base ?? (await askBase(info, 'the adapter was trained on'));
  if (!base) return undefined;
  const stem = path.join(path.dirname(info.path), path.basename(info.runDir ?? info.path));
  const out =
    opts.out ??
    (await vscode.window.showInputBox({
      title: to === 'gguf' ? 'GGUF adapter file' : 'mlx-lm adapter folder',
      value: to === 'gguf' ? `${stem}.gguf` : `${stem}-mlx`,
      validateInput: (v) => (fs.existsSync(to === 'gguf' ? v : path.join(v, 'adapters.safetensors')) ? 'That file already exists' : undefined),
    }));
  if (!out) return undefined;
  const adapterDir = info.path;
  const stdout = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `LoRA Lab: converting ${info.label} for ${to === 'gguf' ? 'llama.cpp' : 'mlx-lm'}`, cancellable: true },
    (_p, token) => runCli(ctx, ['convert', adapterDir, '--to', to, '--out', out, '--model', base, '--json'], token),
  );
  const summary = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as ConvertSummary;
  const worst = summary.modules.reduce((a, m) => Math.max(a, m.relError), 0);
  log.info(`relative ΔW error of each layer in ${out}:\n${summary.modules.map((m) => `  ${m.module} → ${m.target}: ${m.relError === 0 ? '0' : m.relError.toExponential(2)}`).join('\n')}`);
  void vscode.window.showInformationMessage(`LoRA Lab: wrote ${out} (${summary.modules.length} layers, largest relative ΔW error ${worst === 0 ? '0' : worst.toExponential(1)}; per layer in the log).`);
  ctx.adapters.refreshSoon();
  return summary;
}

/** The run a Runs-view command acts on: the clicked item, a folder path (scripts, tests), or one picked. */
async function runArg(ctx: CommandContext, arg: unknown, title: string): Promise<RunEntry | undefined> {
  const dir = typeof arg === 'string' ? arg : arg && typeof arg === 'object' && 'dir' in arg ? String((arg as RunEntry).dir) : uriArg(arg)?.fsPath;
  const all = await listRunsInWorkspace(ctx.jobs);
  if (dir) {
    const found = all.find((r) => path.resolve(r.dir) === path.resolve(dir));
    if (found) return found;
    throw new Error(`${dir} is not a run folder in this workspace (no run.json)`);
  }
  return (await pickRun(ctx, title, (r) => r.status !== 'running'))?.[0];
}

/** The worker owns run.json while it trains: editing it then would be overwritten at its next step. */
function refuseIfBusy(ctx: CommandContext, r: RunEntry, what: string): boolean {
  const queued = ctx.jobs.queued.some((q) => q.request.resumeRunDir && path.resolve(q.request.resumeRunDir) === path.resolve(r.dir));
  if (r.status !== 'running' && !queued) return false;
  void vscode.window.showWarningMessage(`LoRA Lab: ${r.info.name} is ${queued ? 'queued to resume' : 'training'}; ${what} it when it has stopped.`);
  return true;
}

/** Optional second argument of the run commands, for scripts and tests: skips the questions. */
export interface RunEditOptions {
  name?: string;
  tags?: string;
  /** deleteRun: skip the confirmation. */
  confirmed?: boolean;
}

async function renameRun(ctx: CommandContext, arg?: unknown, opts: RunEditOptions = {}): Promise<string | undefined> {
  const r = await runArg(ctx, arg, 'LoRA Lab: Rename Run');
  if (!r || refuseIfBusy(ctx, r, 'rename')) return undefined;
  const name =
    opts.name ??
    (await vscode.window.showInputBox({
      title: `Rename ${r.info.name}`,
      value: r.info.name,
      prompt: 'The name shown in the Runs view, the dashboard and comparisons (the folder keeps its id).',
      validateInput: (v) => (v.trim() ? undefined : 'A run needs a name'),
    }));
  if (name === undefined || !name.trim()) return undefined;
  await RunFolder.open(r.dir).update({ name: name.trim() });
  ctx.runs.refresh();
  ctx.adapters.refreshSoon();
  return name.trim();
}

async function tagRun(ctx: CommandContext, arg?: unknown, opts: RunEditOptions = {}): Promise<string[] | undefined> {
  const r = await runArg(ctx, arg, 'LoRA Lab: Tag Run');
  if (!r || refuseIfBusy(ctx, r, 'tag')) return undefined;
  const text =
    opts.tags ??
    (await vscode.window.showInputBox({
      title: `Tags of ${r.info.name}`,
      value: (r.info.tags ?? []).join(', '),
      prompt: 'Comma-separated, e.g. "baseline, lr sweep"; empty removes all tags.',
    }));
  if (text === undefined) return undefined;
  const tags = parseTags(text);
  await RunFolder.open(r.dir).update({ tags: tags.length ? tags : undefined });
  ctx.runs.refresh();
  return tags;
}

async function deleteRun(ctx: CommandContext, arg?: unknown, opts: RunEditOptions = {}): Promise<boolean> {
  const r = await runArg(ctx, arg, 'LoRA Lab: Delete Run');
  if (!r || refuseIfBusy(ctx, r, 'delete')) return false;
  if (!opts.confirmed) {
    const ok = await vscode.window.showWarningMessage(
      `Delete the run ${r.info.name} (${runEntryDescription(r)})?`,
      { modal: true, detail: `${r.dir}\nThe folder (metrics, checkpoints, adapter) goes to the trash, where it can be restored.` },
      'Move to Trash',
    );
    if (!ok) return false;
  }
  let where = 'the trash';
  try {
    await vscode.workspace.fs.delete(vscode.Uri.file(r.dir), { recursive: true, useTrash: true });
  } catch (e) {
    // A host without a desktop trash (code-server, remote): the freedesktop trash on Linux; elsewhere
    // say so and delete nothing (never delete for good unasked).
    if (process.platform !== 'linux' || !fs.existsSync(r.dir)) throw new Error(`could not move ${r.dir} to the trash: ${errorMessage(e)}. Nothing was deleted.`);
    try {
      where = moveToFreedesktopTrash(r.dir);
    } catch (e2) {
      throw new Error(`could not move ${r.dir} to the trash: ${errorMessage(e)}; ${errorMessage(e2)}. Nothing was deleted.`);
    }
  }
  log.info(`deleted run ${r.dir} (moved to ${where})`);
  ctx.runs.refresh();
  ctx.adapters.refreshSoon();
  return true;
}

/** Optional second argument of loraLab.tryAdapter, for scripts and tests: the base model folder. */
export interface TryAdapterOptions {
  base?: string;
}

/** Try Adapter: the playground, generating from the base model and from base + adapter side by side. */
async function tryAdapter(ctx: CommandContext, arg?: unknown, opts: TryAdapterOptions = {}): Promise<PlaygroundPanel | undefined> {
  const given = adapterPathArg(arg);
  let info = given?.info;
  if (!info && given) info = (await ctx.adapters.adapters()).find((a) => a.path === given.path || a.weightsFile === given.path);
  info ??= await pickAdapter(ctx, 'LoRA Lab: Try Adapter', (a) => a.format === 'peft');
  if (!info) return undefined;
  if (info.format !== 'peft') {
    void vscode.window.showErrorMessage(`LoRA Lab: Try Adapter runs PEFT adapters (adapter_config.json + adapter_model.safetensors) on a Llama or GPT-2 model; ${info.label} is ${info.formatLabel}.`);
    return undefined;
  }
  if (info.runDir && !info.baseModel) {
    void vscode.window.showInformationMessage(`LoRA Lab: ${info.label} adapts a built-in synthetic experiment, not a language model; there is no text to generate. Its ΔW is shown in the dashboard.`);
    return undefined;
  }
  let base = opts.base ?? info.baseFound;
  if (!base) {
    const why = info.baseModel ? `It names "${info.baseModel}", which is not in this workspace.` : 'It does not name its base model.';
    const choice = await vscode.window.showWarningMessage(`To generate, the adapter needs its base model. ${why} Pick the base model folder (config.json + model.safetensors).`, { modal: true }, 'Pick Base Model Folder…');
    if (!choice) return undefined;
    base = (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Base model folder' }))?.[0]?.fsPath;
    if (!base) return undefined;
  }
  return PlaygroundPanel.show(ctx.extension, { modelDir: base, adapterDir: info.path });
}

export const COMMANDS: CommandSpec[] = [
  { id: 'loraLab.trainExperiment', restricted: 'training runs code and writes files in this workspace', run: (c, a) => train(c, a) },
  { id: 'loraLab.stopTraining', run: (c) => stop(c) },
  { id: 'loraLab.runExperimentOn', restricted: 'running a job starts Python here or on another machine', run: (c, a, w, h) => runOn(c, a, w, h) },
  { id: 'loraLab.stopRun', restricted: 'stopping a job may run ssh with settings read from this workspace', run: (c, a) => stopRun(c, a) },
  { id: 'loraLab.resumeRun', restricted: 'resuming a run trains and writes files in this workspace', run: (c, a) => resume(c, a) },
  { id: 'loraLab.newExperiment', run: (c, a, o) => newExperiment(c, a, (o ?? {}) as NewExperimentOptions) },
  { id: 'loraLab.openDashboard', run: (c, a) => openDashboard(c, a) },
  { id: 'loraLab.inspectAdapter', run: (c, a) => inspectAdapter(c, a) },
  { id: 'loraLab.mergeAdapter', restricted: 'merging runs the CLI and writes a model folder', run: (c, a, o) => mergeAdapter(c, a, (o ?? {}) as MergeOptions) },
  { id: 'loraLab.convertAdapter', restricted: 'converting runs the CLI and writes files', run: (c, a, o) => convertAdapter(c, a, (o ?? {}) as ConvertOptions) },
  { id: 'loraLab.tryAdapter', run: (c, a, o) => tryAdapter(c, a, (o ?? {}) as TryAdapterOptions) },
  { id: 'loraLab.compareRuns', run: (c, ...a) => compareRuns(c, ...a) },
  { id: 'loraLab.exportReport', restricted: 'writing a report runs the CLI and writes a file', run: (c, a, o) => exportReport(c, a, (o ?? {}) as ExportReportOptions) },
  { id: 'loraLab.renameRun', restricted: 'renaming rewrites run.json in the run folder', run: (c, a, o) => renameRun(c, a, (o ?? {}) as RunEditOptions) },
  { id: 'loraLab.tagRun', restricted: 'tagging rewrites run.json in the run folder', run: (c, a, o) => tagRun(c, a, (o ?? {}) as RunEditOptions) },
  { id: 'loraLab.deleteRun', restricted: 'deleting a run removes files in this workspace', run: (c, a, o) => deleteRun(c, a, (o ?? {}) as RunEditOptions) },
  { id: 'loraLab.compareAdapterWith', run: (c, a, b) => compareWith(c, a, b) },
  { id: 'loraLab.showLog', run: () => log.show() },
  { id: 'loraLab.refreshAdapters', run: (c) => c.adapters.refresh() },
  { id: 'loraLab.refreshRuns', run: (c) => c.runs.refresh() },
  {
    id: 'loraLab.revealAdapter',
    run: (_c, a) => {
      const p = adapterPathArg(a);
      if (p) return vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(p.path));
    },
  },
  {
    id: 'loraLab.copyAdapterPath',
    run: async (_c, a) => {
      const p = adapterPathArg(a);
      if (p) await vscode.env.clipboard.writeText(p.path);
      return p?.path;
    },
  },
];

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  return COMMANDS.map((spec) =>
    vscode.commands.registerCommand(spec.id, async (...args: unknown[]): Promise<unknown> => {
      if (spec.restricted && !vscode.workspace.isTrusted) {
        const msg = `LoRA Lab refuses this in Restricted Mode: ${spec.restricted}. Trust the workspace to allow it.`;
        void vscode.window.showWarningMessage(msg, 'Manage Workspace Trust').then((a) => a && vscode.commands.executeCommand('workbench.trust.manage'));
        return { refused: msg } satisfies Refused;
      }
      try {
        return await spec.run(ctx, ...args);
      } catch (e) {
        if (e instanceof vscode.CancellationError) return undefined;
        const msg = JobError.is(e) ? e.message : `${spec.id} failed: ${errorMessage(e)}`;
        log.error(msg, JobError.is(e) ? undefined : e);
        void vscode.window.showErrorMessage(`LoRA Lab: ${msg}`);
        return undefined;
      }
    }),
  );
}
