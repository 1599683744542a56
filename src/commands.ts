// Every `loraLab.*` command, from one table (rust-analyzer `createCommands()`). The wrapper checks
// Workspace Trust in the handler (not only in `when` clauses), reports errors, and never reports a
// user's cancellation as a failure.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseExperimentConfig } from './formats/experimentConfig';
import type { ExperimentKind } from './formats/experimentTypes';
import type { JobManager } from './jobs/jobManager';
import { listRunsInWorkspace, type RunEntry } from './jobs/runIndex';
import { JobError, type TrainingJob } from './jobs/trainingJob';
import type { RunInfo } from './protocol/runFormat';
import { RunFolder } from './runs/runStore';
import { errorMessage, log } from './util/log';
import type { AdapterInfo } from './views/adapterScan';
import type { AdapterNode, AdapterTreeProvider } from './views/adapterTree';
import { experimentTemplate } from './views/experimentTemplate';
import { PlaygroundPanel } from './views/playgroundPanel';
import type { RunsTreeProvider } from './views/runsTree';

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
  const items = runs.map((r) => ({ label: r.info.name, description: `${r.status} · step ${r.info.step}/${r.info.totalSteps}`, detail: vscode.workspace.asRelativePath(r.dir), run: r }));
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
    all.map((a) => ({ label: a.label, description: a.formatLabel, detail: vscode.workspace.asRelativePath(a.path), a })),
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
  const { issues } = parseExperimentConfig(doc.getText(), uri.fsPath);
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length) {
    const first = errors[0];
    void vscode.window
      .showErrorMessage(`LoRA Lab: ${path.basename(uri.fsPath)}:${first.line}:${first.column}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, 'Show Problems')
      .then((a) => a && vscode.commands.executeCommand('workbench.actions.view.problems'));
    return undefined;
  }
  return ctx.jobs.start({ configPath: uri.fsPath });
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
  return ctx.jobs.start({ resumeRunDir: dir });
}

async function stop(ctx: CommandContext): Promise<void> {
  const running = ctx.jobs.running;
  if (running.length === 0) {
    void vscode.window.showInformationMessage('LoRA Lab: no training is running.');
    return;
  }
  if (running.length === 1) return ctx.jobs.cancel(running[0]);
  const pick = await vscode.window.showQuickPick([{ label: 'All runs', job: undefined as TrainingJob | undefined }, ...running.map((j) => ({ label: j.name, description: `step ${j.progress.step}/${j.progress.totalSteps}`, job: j }))], {
    title: 'LoRA Lab: Stop Training',
  });
  if (pick) ctx.jobs.cancel(pick.job);
}

async function newExperiment(_ctx: CommandContext, arg?: unknown): Promise<vscode.Uri | undefined> {
  const folder = uriArg(arg) ?? vscode.workspace.workspaceFolders?.[0]?.uri;
  if (!folder) {
    void vscode.window.showErrorMessage('LoRA Lab: open a folder first; the experiment file goes into it.');
    return undefined;
  }
  const kinds: { label: string; detail: string; experiment: ExperimentKind }[] = [
    { label: 'low-rank-recovery', detail: 'LoRA learns a hidden low-rank update of a random linear layer (seconds on a CPU)', experiment: 'low-rank-recovery' },
    { label: 'attention-adaptation', detail: "The reference LoRA code's LoRAAttention learns a teacher with low-rank changes to Q, K, V", experiment: 'attention-adaptation' },
    { label: 'causal-lm', detail: 'Fine-tune a Hugging Face Llama / GPT-2 folder on a text file', experiment: 'causal-lm' },
  ];
  const kind = await vscode.window.showQuickPick(kinds, { title: 'New Experiment (1/3): kind' });
  if (!kind) return undefined;
  let modelPath: string | undefined;
  if (kind.experiment === 'causal-lm') {
    const models = await vscode.workspace.findFiles('**/config.json', EXCLUDE);
    const candidates = models.map((u) => path.dirname(u.fsPath)).filter((d) => fs.existsSync(path.join(d, 'model.safetensors')) || fs.existsSync(path.join(d, 'model.safetensors.index.json')));
    const browse = { label: '$(folder) Browse…', dir: undefined as string | undefined };
    const pick = await vscode.window.showQuickPick([...candidates.map((d) => ({ label: path.basename(d), description: vscode.workspace.asRelativePath(d), dir: d as string | undefined })), browse], { title: 'New Experiment (2/3): model folder' });
    if (!pick) return undefined;
    let dir = pick.dir;
    if (!dir) dir = (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Model folder (config.json + model.safetensors)' }))?.[0]?.fsPath;
    if (!dir) return undefined;
    modelPath = path.relative(folder.fsPath, dir).split(path.sep).join('/') || '.';
  }
  const rText = await vscode.window.showInputBox({
    title: `New Experiment (${kind.experiment === 'causal-lm' ? 3 : 2}/3): rank r`,
    value: kind.experiment === 'causal-lm' ? '8' : '4',
    validateInput: (v) => (/^\d+$/.test(v.trim()) && Number(v) >= 1 ? undefined : '`r` should be a positive integer'),
  });
  if (!rText) return undefined;
  const r = Number(rText.trim());
  let name: string = kind.experiment;
  let target = vscode.Uri.joinPath(folder, `${name}.lora.json`);
  for (let i = 2; fs.existsSync(target.fsPath); i++) {
    name = `${kind.experiment}-${i}`;
    target = vscode.Uri.joinPath(folder, `${name}.lora.json`);
  }
  const schema = path.join(folder.fsPath, 'schemas', 'experiment.schema.json');
  const text = experimentTemplate({ kind: kind.experiment, name, r, modelPath, schemaPath: fs.existsSync(schema) ? 'schemas/experiment.schema.json' : undefined });
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
  const second = given ? (all.find((a) => a.path === given.path) ?? { path: given.path, runDir: undefined }) : await pickAdapter(ctx, `Compare ${path.basename(first.path)} with…`, (a) => a.path !== first.path);
  if (!second) return;
  const firstRun = first.info?.runDir ?? (given ? all.find((a) => a.path === first.path)?.runDir : undefined);
  if (firstRun && second.runDir) return compareRuns(ctx, [firstRun, second.runDir]);
  await ctx.dashboard.show({ adapterPaths: [first.path, second.path] });
}

function cliPath(ctx: CommandContext): string {
  return vscode.Uri.joinPath(ctx.extension.extensionUri, 'dist', 'cli.js').fsPath;
}

/** Merges in a child process running our CLI: the host never loads tfjs. */
function runCliMerge(ctx: CommandContext, base: string, adapter: string, out: string, token: vscode.CancellationToken): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(ctx), 'merge', '--model', base, '--adapter', adapter, '--out', out], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const sub = token.onCancellationRequested(() => child.kill());
    child.on('error', (e) => reject(e));
    child.on('exit', (code, signal) => {
      sub.dispose();
      log.info(`lora-lab merge: ${output.trim()}`);
      if (code === 0) resolve();
      else if (signal || token.isCancellationRequested) reject(new vscode.CancellationError());
      else reject(new Error(output.trim().split('\n').slice(-3).join(' ') || `lora-lab merge exited with ${code}`));
    });
  });
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
  info ??= await pickAdapter(ctx, 'LoRA Lab: Merge Adapter into Base Model', (a) => a.format === 'peft');
  if (!info) return undefined;
  if (info.format !== 'peft') {
    void vscode.window.showErrorMessage(`LoRA Lab: merging is supported for PEFT adapters (adapter_config.json + adapter_model.safetensors); ${info.label} is ${info.formatLabel}.`);
    return undefined;
  }
  if (info.runDir && !info.baseModel) {
    void vscode.window.showInformationMessage(`LoRA Lab: ${info.label} adapts a built-in synthetic experiment; there is no Hugging Face base model to merge it into. Its ΔW is shown in the dashboard.`);
    return undefined;
  }
  let base = opts.base ?? info.baseFound;
  if (!base) {
    const why = info.baseModel ? `It names "${info.baseModel}", which is not in this workspace.` : 'It does not name its base model.';
    const choice = await vscode.window.showWarningMessage(
      `An adapter alone cannot run: it holds only the low-rank update ΔW = s·B·A for some layers of a base model. ${why} Pick the base model folder (config.json + model.safetensors) to merge into.`,
      { modal: true },
      'Pick Base Model Folder…',
    );
    if (!choice) return undefined;
    base = (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Base model folder' }))?.[0]?.fsPath;
    if (!base) return undefined;
  }
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
    runCliMerge(ctx, baseDir, adapterDir, out, token),
  );
  void vscode.window.showInformationMessage(`LoRA Lab: merged model written to ${out}.`);
  ctx.adapters.refreshSoon();
  return out;
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
  { id: 'loraLab.resumeRun', restricted: 'resuming a run trains and writes files in this workspace', run: (c, a) => resume(c, a) },
  { id: 'loraLab.newExperiment', run: (c, a) => newExperiment(c, a) },
  { id: 'loraLab.openDashboard', run: (c, a) => openDashboard(c, a) },
  { id: 'loraLab.inspectAdapter', run: (c, a) => inspectAdapter(c, a) },
  { id: 'loraLab.mergeAdapter', restricted: 'merging runs the CLI and writes a model folder', run: (c, a, o) => mergeAdapter(c, a, (o ?? {}) as MergeOptions) },
  { id: 'loraLab.tryAdapter', run: (c, a, o) => tryAdapter(c, a, (o ?? {}) as TryAdapterOptions) },
  { id: 'loraLab.compareRuns', run: (c, ...a) => compareRuns(c, ...a) },
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
