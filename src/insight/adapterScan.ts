// Finds adapters among workspace files and describes each with the interop engineer's pure
// `inspectAdapter` (src/formats/adapters): format, modules (rank, alpha, scale, ΔW shape, parameters),
// base model needed and whether it is in the workspace, warnings (LFS pointers, pickles, NaN/Inf,
// config not matching the weights). Listing reads headers only; a second, background pass reads small
// files to get alpha values and check for NaN/Inf, yielding between tensors so the host stays responsive.
// Node fs, no vscode: the tree passes in the file lists it got from findFiles.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatCount } from '../shared/paramCount';
import { checkValuesAsync, inspectAdapter, nonFiniteSummary, type InspectInput, type InspectModule, type InspectReport } from '../formats/adapters';
import { parseSafetensors, type SafetensorsHeader } from '../formats/safetensors';
import { readSafetensorsHeader } from '../io/safetensorsFile';
import { openRegular, readRegularFile, readRegularFileSync } from '../io/regularFile';
import { runDescription } from './runLabels';
import { formatBytes, formatDuration, formatLoss } from '../shared/format';
import { trainingTimeMs } from '../runs/runTail';

export interface AdapterInfo {
  /** Folder (PEFT, mlx, run) or file (kohya, LyCORIS, …): what Inspect/Merge/Copy path act on. */
  path: string;
  weightsFile?: string;
  label: string;
  format?: InspectReport['format'];
  formatLabel: string;
  modules: InspectModule[];
  totalParams: number;
  ranks: number[];
  /** What the adapter needs to run, as its files name it. */
  baseModel?: string;
  /** Where that base was found in the workspace (a folder with config.json). */
  baseFound?: string;
  baseNote: string;
  /** Errors (cannot be read at all) first, then warnings. */
  warnings: string[];
  /** File metadata, shown as text only (real files carry HTML/script in it). */
  metadata: [string, string][];
  /** Set for the adapter/ folder of one of our runs. */
  runDir?: string;
  /** That run's run.json facts that tell same-named runs apart. */
  run?: { name: string; createdAt: string; status: string; step: number; totalSteps: number; lastLoss?: number; elapsedMs?: number; tags?: string[] };
  /**
   * Listed, but not usable as an adapter: the weights cannot be read (truncated, LFS pointer, pickle) or
   * the file holds no LoRA factors. The tree shows these in their own group, with the reason.
   */
  problem?: 'unreadable' | 'not-lora';
  /** True once alpha values were read and every tensor was checked for NaN/Inf. */
  valuesChecked: boolean;
  /** The header-only inspection input, kept for the background values pass. */
  input: InspectInput;
}

export interface ScanInput {
  safetensors: string[];
  adapterConfigs: string[];
  /** Folders holding a model config.json (candidates for "base found"). */
  modelDirs: string[];
  roots: string[];
}

/** Files at most this big get the values pass (alpha values, NaN/Inf); larger ones stay header-only. */
export const VALUES_MAX_BYTES = 16 * 1024 * 1024;

// Workspace files are opened only if regular: a FIFO among them would block the extension host.
async function head(file: string, n = 256): Promise<{ bytes: Uint8Array; size: number }> {
  const h = await openRegular(file);
  try {
    const { size } = await h.stat();
    const bytes = new Uint8Array(Math.min(n, size));
    await h.read(bytes, 0, bytes.length, 0);
    return { bytes, size };
  } finally {
    await h.close();
  }
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(readRegularFileSync(file).toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function short(s: string, n = 300): string {
  return s.length > n ? `${s.slice(0, n)}… (${s.length} characters)` : s;
}

export function findBase(base: string | undefined, fromDir: string, input: Pick<ScanInput, 'modelDirs' | 'roots'>): string | undefined {
  if (!base) return undefined;
  const direct = [path.resolve(fromDir, base), ...input.roots.map((r) => path.resolve(r, base))];
  for (const d of direct) if (fs.existsSync(path.join(d, 'config.json'))) return d;
  // A hub id "org/name": a folder named `name` (or org/name) in the workspace.
  const tail = base.split('/').filter(Boolean);
  const name = tail[tail.length - 1];
  return input.modelDirs.find((d) => path.basename(d) === name || d.endsWith(path.sep + tail.join(path.sep)));
}

async function weightsInput(file: string): Promise<NonNullable<InspectInput['weights']>> {
  const { bytes, size } = await head(file);
  let header: SafetensorsHeader | undefined;
  let headerError: string | undefined;
  try {
    header = await readSafetensorsHeader(file);
  } catch (e) {
    headerError = e instanceof Error ? e.message : String(e);
  }
  return { name: path.basename(file), size, head: bytes, header, headerError };
}

/** Describes every adapter among the given files, from headers only. */
export async function scanAdapters(input: ScanInput): Promise<AdapterInfo[]> {
  const configDirs = new Set(input.adapterConfigs.map((p) => path.dirname(p)));
  const handled = new Set<string>();
  const jobs: Promise<AdapterInfo | undefined>[] = [];
  for (const dir of configDirs) {
    const weights = ['adapter_model.safetensors', 'adapters.safetensors'].map((n) => path.join(dir, n)).find((f) => fs.existsSync(f));
    if (weights) handled.add(weights);
    jobs.push(describeFolder(dir, weights, input));
  }
  for (const f of input.safetensors) {
    if (handled.has(f)) continue;
    // Our own run folders: checkpoints and reference tensors are not adapters.
    if (/[\\/](checkpoints[\\/]step-\d+|truth)[\\/][^\\/]+$/.test(f)) continue;
    jobs.push(describeFile(f, input));
  }
  const all = await Promise.all(jobs.map((j) => j.catch(() => undefined)));
  return all.filter((a): a is AdapterInfo => a !== undefined).sort((a, b) => a.label.localeCompare(b.label));
}

function apply(info: AdapterInfo, r: InspectReport): void {
  info.format = r.format;
  info.formatLabel = r.formatLabel;
  info.modules = r.modules;
  info.totalParams = r.totals.params;
  info.ranks = Object.keys(r.ranks).map(Number).sort((a, b) => a - b);
  // "alpha tensors were not read" only restates the header-only listing (modules say "α in file").
  // "an mlx-lm config: PEFT would refuse it" is noise on an adapter whose weights are mlx-lm's too.
  const noise = (x: string) => /^alpha tensors were not read/.test(x) || (r.format === 'mlx' && /is an mlx-lm config \(no peft_type\)/.test(x));
  info.warnings = [...r.errors, ...r.warnings.filter((x) => !noise(x))].map(readableSizes);
  info.metadata = Object.entries(r.metadata).map(([k, v]): [string, string] => [k, short(v)]);
  info.valuesChecked = r.valuesChecked;
  info.baseModel ??= r.baseModel;
}

async function describeFolder(dir: string, weights: string | undefined, input: ScanInput): Promise<AdapterInfo | undefined> {
  const cfgFile = path.join(dir, 'adapter_config.json');
  const siblings: NonNullable<InspectInput['siblings']> = [];
  if (!weights) {
    // Weights that are not safetensors (pickles, LFS pointers) are reported, never read.
    for (const name of fs.readdirSync(dir)) {
      if (!/^(adapter_model|adapters)\b/.test(name)) continue;
      const h = await head(path.join(dir, name));
      siblings.push({ name, size: h.size, head: h.bytes });
    }
  }
  const inspectInput: InspectInput = { path: dir, configText: readRegularFileSync(cfgFile).toString('utf8'), configName: 'adapter_config.json', siblings, ...(weights ? { weights: await weightsInput(weights) } : {}) };
  const info: AdapterInfo = { path: dir, weightsFile: weights, label: path.basename(dir), formatLabel: '', modules: [], totalParams: 0, ranks: [], baseNote: '', warnings: [], metadata: [], valuesChecked: false, input: inspectInput };
  const report = inspectAdapter(inspectInput);
  apply(info, report);
  if (report.format === 'unreadable' && report.errors.length) info.problem = 'unreadable';
  // One of our runs: <run>/adapter/ next to run.json.
  if (path.basename(dir) === 'adapter') {
    const run = readJson(path.join(path.dirname(dir), 'run.json'));
    if (run) {
      info.runDir = path.dirname(dir);
      const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
      const name = str(run.name) ?? path.basename(info.runDir);
      info.run = {
        name,
        createdAt: str(run.createdAt) ?? '',
        status: str(run.status) ?? 'unknown',
        step: num(run.step) ?? 0,
        totalSteps: num(run.totalSteps) ?? 0,
        lastLoss: num(run.lastLoss),
        elapsedMs: trainingTimeMs(info.runDir, { createdAt: str(run.createdAt) ?? '', finishedAt: str(run.finishedAt), resumedAt: Array.isArray(run.resumedAt) ? run.resumedAt : undefined }),
        tags: Array.isArray(run.tags) ? run.tags.filter((t): t is string => typeof t === 'string') : undefined,
      };
      info.label = `${name} (run)`;
      info.formatLabel = `${info.formatLabel} · LoRA Lab run`;
      const kind = typeof run.kind === 'string' ? run.kind : '';
      if (typeof run.baseModel === 'string') info.baseModel = run.baseModel;
      else if (kind && kind !== 'causal-lm') {
        info.baseModel = undefined;
        info.baseNote = `built-in ${kind} experiment: its frozen base W is synthetic (generated from the config's random seed; see truth/ in the run folder)`;
        info.baseFound = info.runDir;
      }
    }
  }
  finishBase(info, dir, input);
  return info;
}

async function describeFile(file: string, input: ScanInput): Promise<AdapterInfo | undefined> {
  const inspectInput: InspectInput = { path: file, weights: await weightsInput(file) };
  const info: AdapterInfo = { path: file, weightsFile: file, label: path.basename(file), formatLabel: '', modules: [], totalParams: 0, ranks: [], baseNote: '', warnings: [], metadata: [], valuesChecked: false, input: inspectInput };
  const report = inspectAdapter(inspectInput);
  // A model's own weights (a folder with config.json) are not adapters and not a problem: left out.
  // Every other .safetensors file is listed: LoRA files in their format's group; files that cannot be
  // read, or hold no LoRA factors, in a group of their own with the reason, never silently missing.
  const inModelDir = input.modelDirs.some((d) => path.resolve(d) === path.resolve(path.dirname(file)));
  if (report.format === 'not-an-adapter' && inModelDir) return undefined;
  apply(info, report);
  if (report.format === 'unreadable') info.problem = 'unreadable';
  if (report.format === 'not-an-adapter') {
    info.problem = 'not-lora';
    const n = info.input.weights?.header ? Object.keys(info.input.weights.header.tensors).length : 0;
    info.warnings.unshift(`not a LoRA adapter: none of its ${n} tensor${n === 1 ? '' : 's'} has LoRA names (lora_A / lora_B, lora_down / lora_up, …); a model's weights or other data?`);
  }
  if (report.format === 'unreadable' && info.warnings.length === 0) info.warnings.push('the weights could not be read');
  finishBase(info, path.dirname(file), input);
  return info;
}

function finishBase(info: AdapterInfo, fromDir: string, input: ScanInput): void {
  if (info.baseFound) return;
  info.baseFound = findBase(info.baseModel, fromDir, input);
  if (info.baseNote) return;
  if (!info.baseModel) info.baseNote = info.format === 'unreadable' ? 'unknown (the weights could not be read)' : 'base model not named in the files';
  else if (info.baseFound) info.baseNote = `${info.baseModel} — found at ${info.baseFound}`;
  else info.baseNote = `${info.baseModel} — not found in this workspace`;
}

/** One turn of the event loop, between tensors of the values pass. */
const tick = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/**
 * The values pass for one adapter: reads a small weights file and runs inspectAdapter's values pass
 * (alpha scalars, NaN/Inf in every float tensor) in steps, yielding to the event loop after each tensor
 * (`pause`, a setImmediate tick by default), then gives inspectAdapter its result. Returns whether
 * anything changed.
 */
export async function checkAdapterValues(info: AdapterInfo, pause: () => Promise<void> = tick): Promise<boolean> {
  const w = info.input.weights;
  if (info.valuesChecked || !w?.header || !info.weightsFile || w.size > VALUES_MAX_BYTES) return false;
  const st = parseSafetensors(new Uint8Array(await readRegularFile(info.weightsFile)), info.weightsFile);
  const checked = await checkValuesAsync(st.header.tensors, (name) => st.toFloat32(name), pause);
  // No `values`, so no ΔW norms here: they are the dashboard's job, off the host. A non-finite alpha gets
  // inspectAdapter's own line (the scale is broken); the other tensors are summed up in one line below.
  const nonFiniteAlpha = checked.nonFinite.filter((t) => checked.scalars.has(t.name));
  const before = JSON.stringify([info.warnings, info.modules.map((m) => [m.alpha, m.scale])]);
  const baseModel = info.baseModel;
  apply(info, inspectAdapter({ ...info.input, weights: { ...w, checked: { ...checked, nonFinite: nonFiniteAlpha } } }));
  info.baseModel = baseModel;
  const summary = nonFiniteSummary(checked.nonFinite);
  if (summary) info.warnings.push(summary);
  info.valuesChecked = true;
  return JSON.stringify([info.warnings, info.modules.map((m) => [m.alpha, m.scale])]) !== before;
}

/** Inspect's "a 912556812-byte object" as "a 870 MiB object (912,556,812 bytes)" for the tree. */
export function readableSizes(text: string): string {
  return text.replace(/\ba (\d{4,})-byte\b/g, (_m, d: string) => `a ${formatBytes(Number(d))} (${Number(d).toLocaleString('en-US')} bytes)`);
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4)));
}

/** A module row of the adapter tree: rank, α, scale, ΔW shape, parameters, dtype (pure, for the tree and tests). */
export function moduleDescription(m: InspectModule): string {
  const parts: string[] = [`r ${m.rank}`];
  if (m.alpha !== undefined) parts.push(`α ${fmt(m.alpha)}`);
  else if (m.alphaSource === 'not-read') parts.push('α in file');
  parts.push(`s ${fmt(m.scale)}`);
  const [out, inn, ...kernel] = m.deltaShape;
  // An embedding table's ΔW is [num_embeddings, embedding_dim] (vocab × dim), not a map in→out.
  if (m.embedding && out !== undefined && inn !== undefined) parts.push(`embedding ${out}×${inn}`);
  else if (out !== undefined && inn !== undefined) parts.push(`${inn}→${out}${kernel.length ? ` (${kernel.join('×')} conv)` : ''}`);
  parts.push(`${formatCount(m.paramCount)} params`);
  parts.push(m.dtype);
  if (m.kind !== 'lora') parts.push(m.kind);
  return parts.join(' · ');
}

export function adapterDescription(a: AdapterInfo, now?: Date): string {
  // A run's adapter: when it ran, how long, how far the loss got (runs of one config share a name).
  if (a.run) return [runDescription(a.run, now), `r ${a.ranks.join('/')}`, ...(a.totalParams ? [`${formatCount(a.totalParams)} params`] : []), ...(a.warnings.length ? [`⚠ ${a.warnings.length}`] : [])].join(' · ');
  if (a.problem) return a.warnings[0] ?? a.formatLabel;
  const parts = [a.formatLabel];
  if (a.modules.length) parts.push(`${a.modules.length} module${a.modules.length === 1 ? '' : 's'}`);
  if (a.ranks.length) parts.push(`r ${a.ranks.join('/')}`);
  if (a.totalParams) parts.push(`${formatCount(a.totalParams)} params`);
  if (a.warnings.length) parts.push(`⚠ ${a.warnings.length}`);
  return parts.join(' · ');
}

/** Merge needs a PEFT adapter of a real model: a built-in experiment's run has no base model to merge into. */
export function isMergeable(a: Pick<AdapterInfo, 'format' | 'runDir' | 'baseModel'>): boolean {
  return a.format === 'peft' && !(a.runDir && !a.baseModel);
}

/** The full text behind an adapter row (its tooltip): nothing cut, one fact per line. */
export function adapterTooltip(a: AdapterInfo): string {
  const lines = [a.path, a.formatLabel];
  if (a.run) {
    lines.push(`run ${a.run.name}: ${a.run.status}, started ${a.run.createdAt ? new Date(a.run.createdAt).toLocaleString() : '?'}`);
    if (a.run.elapsedMs !== undefined) lines.push(`training time ${formatDuration(a.run.elapsedMs)}`);
    if (a.run.lastLoss !== undefined) lines.push(`final loss ${formatLoss(a.run.lastLoss)}`);
  }
  if (a.modules.length) lines.push(`${a.modules.length} module${a.modules.length === 1 ? '' : 's'}, rank ${a.ranks.join('/')}, ${formatCount(a.totalParams)} parameters`);
  lines.push(`Base model: ${a.baseNote}`);
  if (a.warnings.length) lines.push('Warnings:', ...a.warnings.map((w) => `- ${w}`));
  return lines.join('\n');
}

/** A group of the Adapters view: our runs first, then third-party adapters by format, then problems. */
export interface AdapterGroup {
  id: string;
  label: string;
  adapters: AdapterInfo[];
}

const GROUP_LABEL: Record<string, string> = {
  peft: 'PEFT',
  'diffusers-peft': 'PEFT keys (diffusers / ai-toolkit)',
  kohya: 'kohya / Civitai',
  lycoris: 'LyCORIS',
  mlx: 'mlx-lm',
  loralib: 'loralib (the reference LoRA code)',
  'diffusers-legacy': 'diffusers (legacy attention processors)',
  cloneofsimo: 'cloneofsimo lora',
  'unknown-lora': 'Other LoRA',
};

export function groupAdapters(list: readonly AdapterInfo[]): AdapterGroup[] {
  const runs = list.filter((a) => a.runDir && !a.problem).sort((x, y) => (x.run?.createdAt ?? '') < (y.run?.createdAt ?? '') ? 1 : -1);
  const problems = list.filter((a) => a.problem);
  const byFormat = new Map<string, AdapterInfo[]>();
  for (const a of list) {
    if (a.problem || a.runDir) continue;
    const key = a.format ?? 'unknown-lora';
    byFormat.set(key, [...(byFormat.get(key) ?? []), a]);
  }
  const out: AdapterGroup[] = [];
  if (runs.length) out.push({ id: 'runs', label: 'LoRA Lab runs', adapters: runs });
  const order = Object.keys(GROUP_LABEL);
  for (const [key, adapters] of [...byFormat].sort((x, y) => order.indexOf(x[0]) - order.indexOf(y[0]))) out.push({ id: `format:${key}`, label: GROUP_LABEL[key] ?? adapters[0].formatLabel, adapters });
  if (problems.length) out.push({ id: 'problems', label: 'Unreadable or not LoRA', adapters: problems });
  return out;
}
