// Finds adapters among workspace files by reading safetensors headers only (plus small JSON configs), and
// describes each: format, modules, base model needed and whether it is in the workspace, warnings.
// Node fs, no vscode: the tree view passes in the file lists it got from findFiles.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sniffBytes } from '../formats/adapters/sniff';
import { parsePeftConfig, moduleHyper, type PeftLoraConfig } from '../formats/peftConfig';
import { readSafetensors, readSafetensorsHeader } from '../io/safetensorsFile';
import { FORMAT_LABEL, groupModules, type AdapterFormat, type AdapterModule } from './adapterModules';

export interface AdapterInfo {
  /** Folder (PEFT, mlx, run) or file (kohya, LyCORIS, …): what Inspect/Merge/Copy path act on. */
  path: string;
  weightsFile?: string;
  label: string;
  format?: AdapterFormat;
  formatLabel: string;
  modules: AdapterModule[];
  totalParams: number;
  ranks: number[];
  /** What the adapter needs to run, as its files name it. */
  baseModel?: string;
  /** Where that base was found in the workspace (a folder with config.json). */
  baseFound?: string;
  baseNote: string;
  warnings: string[];
  /** File metadata, shown as text only (real files carry HTML/script in it). */
  metadata: [string, string][];
  /** Set for the adapter/ folder of one of our runs. */
  runDir?: string;
  peft?: PeftLoraConfig;
}

export interface ScanInput {
  safetensors: string[];
  adapterConfigs: string[];
  /** Folders holding a model config.json (candidates for "base found"). */
  modelDirs: string[];
  roots: string[];
}

/** Files at most this big are read in full to check for NaN/Inf; larger ones only by header. */
const NAN_CHECK_MAX_BYTES = 16 * 1024 * 1024;

function readFirst(file: string, n: number): { bytes: Uint8Array; size: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const bytes = new Uint8Array(Math.min(n, size));
    fs.readSync(fd, bytes, 0, bytes.length, 0);
    return { bytes, size };
  } finally {
    fs.closeSync(fd);
  }
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
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

/** Describes every adapter among the given files. Header reads run concurrently. */
export async function scanAdapters(input: ScanInput): Promise<AdapterInfo[]> {
  const configDirs = new Set(input.adapterConfigs.map((p) => path.dirname(p)));
  const weightsByDir = new Map<string, string[]>();
  for (const f of input.safetensors) {
    const d = path.dirname(f);
    weightsByDir.set(d, [...(weightsByDir.get(d) ?? []), f]);
  }
  const jobs: Promise<AdapterInfo | undefined>[] = [];
  const handled = new Set<string>();
  for (const dir of configDirs) {
    const weights = (weightsByDir.get(dir) ?? []).filter((f) => /^(adapter_model|adapters)\.safetensors$/.test(path.basename(f)));
    weights.forEach((w) => handled.add(w));
    jobs.push(describeFolder(dir, weights[0], input));
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

async function describeWeights(file: string, info: AdapterInfo): Promise<boolean> {
  const { bytes, size } = readFirst(file, 64);
  const kind = sniffBytes(bytes, size);
  if (kind === 'lfs-pointer') {
    info.warnings.push(`${path.basename(file)} is a Git LFS pointer (${size} bytes), not the weights: run \`git lfs pull\`.`);
    return false;
  }
  if (kind === 'pickle') {
    info.warnings.push(`${path.basename(file)} is a PyTorch pickle; it is never unpickled here.`);
    return false;
  }
  let header;
  try {
    header = await readSafetensorsHeader(file);
  } catch (e) {
    info.warnings.push(`${path.basename(file)} cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    return false;
  }
  const g = groupModules(header.tensors);
  info.format ??= g.format;
  info.modules = g.modules;
  info.totalParams = g.modules.reduce((a, m) => a + m.params, 0);
  info.ranks = [...new Set(g.modules.map((m) => m.rank).filter((r): r is number => r !== undefined))].sort((a, b) => a - b);
  info.metadata.push(...Object.entries(header.metadata).map(([k, v]): [string, string] => [k, short(v)]));
  if (size <= NAN_CHECK_MAX_BYTES && g.modules.length > 0) {
    try {
      const st = await readSafetensors(file);
      const bad: string[] = [];
      for (const name of st.names()) {
        // Yield between tensors: the host's event loop must stay responsive while the tree fills.
        await new Promise<void>((r) => setImmediate(r));
        const e = st.entry(name);
        if (!['F32', 'F16', 'BF16', 'F64'].includes(e.dtype)) continue;
        const data = st.toFloat32(name);
        for (let i = 0; i < data.length; i++) {
          if (!Number.isFinite(data[i])) {
            bad.push(name);
            break;
          }
        }
      }
      if (bad.length) info.warnings.push(`NaN/Inf values in ${bad.length} tensor${bad.length === 1 ? '' : 's'}: ${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ', …' : ''}`);
    } catch (e) {
      info.warnings.push(`${path.basename(file)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return g.modules.length > 0;
}

function runOf(dir: string): { runDir: string; run: Record<string, unknown> } | undefined {
  if (path.basename(dir) !== 'adapter') return undefined;
  const runDir = path.dirname(dir);
  const run = readJson(path.join(runDir, 'run.json'));
  return run ? { runDir, run } : undefined;
}

async function describeFolder(dir: string, weights: string | undefined, input: ScanInput): Promise<AdapterInfo | undefined> {
  const cfgFile = path.join(dir, 'adapter_config.json');
  const raw = readJson(cfgFile);
  const info: AdapterInfo = { path: dir, weightsFile: weights, label: path.basename(dir), formatLabel: '', modules: [], totalParams: 0, ranks: [], baseNote: '', warnings: [], metadata: [] };
  const isMlx = !!raw && ('lora_parameters' in raw || 'fine_tune_type' in raw);
  if (!raw) info.warnings.push('adapter_config.json is not valid JSON.');
  if (isMlx) {
    info.format = 'mlx';
    info.baseModel = typeof raw.model === 'string' ? raw.model : undefined;
  } else if (raw) {
    try {
      const { config, notes } = parsePeftConfig(JSON.stringify(raw), cfgFile);
      info.peft = config;
      info.format = 'peft';
      info.baseModel = config.baseModelNameOrPath ?? undefined;
      info.metadata.push(...notes.map((n): [string, string] => ['note', short(n)]));
    } catch (e) {
      info.warnings.push(`adapter_config.json: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (weights) {
    await describeWeights(weights, info);
  } else {
    const pickles = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    info.warnings.push(pickles ? 'Only adapter_model.bin (a PyTorch pickle) is here; it is never unpickled. Convert it to safetensors.' : 'No adapter_model.safetensors next to adapter_config.json.');
  }
  // The config must describe the weights: r (with rank_pattern) against each A's rank.
  if (info.peft) {
    const mism = info.modules.filter((m) => m.rank !== undefined && m.rank !== moduleHyper(info.peft!, m.name.replace(/^base_model\.model\./, '')).r);
    if (mism.length) info.warnings.push(`adapter_config.json says r = ${info.peft.r} but ${mism.length} module${mism.length === 1 ? ' has' : 's have'} another rank (e.g. ${mism[0].name}: ${mism[0].rank}).`);
  }
  const run = runOf(dir);
  if (run) {
    info.runDir = run.runDir;
    info.label = `${path.basename(run.runDir)} (run)`;
    const kind = String((run.run.kind as string | undefined) ?? '');
    if (typeof run.run.baseModel === 'string') info.baseModel = run.run.baseModel;
    else if (kind && kind !== 'causal-lm') {
      info.baseNote = `built-in ${kind} experiment: its frozen base W is synthetic (generated from the seed; see truth/ in the run folder)`;
      info.baseFound = run.runDir;
    }
  }
  finishBase(info, dir, input);
  info.formatLabel = run ? `${FORMAT_LABEL.peft} · LoRA Lab run` : info.format ? FORMAT_LABEL[info.format] : 'unknown';
  return info;
}

async function describeFile(file: string, input: ScanInput): Promise<AdapterInfo | undefined> {
  const info: AdapterInfo = { path: file, weightsFile: file, label: path.basename(file), formatLabel: '', modules: [], totalParams: 0, ranks: [], baseNote: '', warnings: [], metadata: [] };
  const isLora = await describeWeights(file, info);
  const looksLikeAdapter = /lora|adapter|locon|loha|lokr|lycoris/i.test(path.basename(file));
  if (!isLora && !(looksLikeAdapter && info.warnings.length > 0)) return undefined;
  const meta = Object.fromEntries(info.metadata);
  info.baseModel = meta['ss_sd_model_name'] ?? meta['modelspec.architecture'] ?? meta['ss_base_model_version'] ?? meta['base_model'];
  if (!info.baseModel && info.format === 'kohya') info.baseNote = 'a Stable Diffusion checkpoint (the file does not name it)';
  finishBase(info, path.dirname(file), input);
  info.formatLabel = info.format ? FORMAT_LABEL[info.format] : 'unreadable';
  return info;
}

function finishBase(info: AdapterInfo, fromDir: string, input: ScanInput): void {
  if (info.baseFound) return;
  info.baseFound = findBase(info.baseModel, fromDir, input);
  if (info.baseNote) return;
  if (!info.baseModel) info.baseNote = 'base model not named in the files';
  else if (info.baseFound) info.baseNote = `${info.baseModel} — found at ${info.baseFound}`;
  else info.baseNote = `${info.baseModel} — not found in this workspace`;
}
