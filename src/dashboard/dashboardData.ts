// What the dashboard shows, read from disk: run folders (src/protocol/runFormat.ts) and adapter
// files/folders. No vscode import: the extension's DashboardPanel and the CLI's `report` command
// share it. The k×d product ΔW is never formed here; spectra come from the factors' Gram matrices.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { SafetensorsHeader, TensorEntry } from '../formats/safetensors';
import { readSafetensorsHeader, readTensorFloat32 } from '../io/safetensorsFile';
import { parseHfConfig } from '../formats/hfConfig';
import { loadInspectInput, readWeightsFile } from '../io/hfFolder';
import { experimentModelShape, hfModelShape, type ModelShape } from '../insight/modelShapes';
import { memorySummaryOf, runBackendAssumption } from '../insight/runMemory';
import { readModelConfigCached, weightFileBytes } from '../io/modelConfigCache';
import { loraScale } from '../shared/loraScale';
import { loraSpectrum } from '../engine/spectrum';
import { describeLayout } from '../formats/adapters/adapterFormats';
import { deltaW } from '../formats/adapters/deltaW';
import { inspectAdapter, type InspectReport } from '../formats/adapters/inspect';
import { loadRun, RunFolder, type TensorMap } from '../runs/runStore';
import { isTrainerRunDir, loadTrainerRun, trainerAdapterFile } from '../runs/hfTrainerRun';
import type { RunInfo } from '../protocol/runFormat';
import type {
  AdapterSummary,
  DashboardSnapshot,
  Matrix,
  MemorySummary,
  MetadataEntry,
  ModuleFactors,
  ModuleSpectra,
  ModuleSummary,
  ReferenceInfo,
  ReportData,
  SourceSnapshot,
} from '../protocol/webview';
import { toMetricColumns } from '../shared/metricColumns';
import { encodeFactors, encodeMatrix, packMetrics } from '../shared/reportEncoding';
import { ReasonError } from '../shared/errors';

export class DashboardDataError extends ReasonError<'dashboard-data'> {
  static override readonly family = 'DashboardDataError';
  constructor(message: string) {
    super('dashboard-data', message);
  }
}

/** Stable short id for a path (used in webview requests instead of the path itself). */
export function sourceIdOf(p: string): string {
  return crypto.createHash('sha256').update(path.resolve(p)).digest('hex').slice(0, 16);
}

interface FactorPair {
  module: string;
  a: Matrix;
  b: Matrix;
  /** kohya `.alpha` when present. */
  alpha?: number;
}

/** 2-D view of a tensor: conv weights [out, in, kh, kw] flatten to [out, in·kh·kw]. */
function as2d(shape: number[], data: Float32Array, what: string): Matrix {
  if (shape.length < 2) throw new DashboardDataError(`${what}: expected a matrix, got shape [${shape.join(', ')}]`);
  const rows = shape[0];
  const cols = shape.slice(1).reduce((x, y) => x * y, 1);
  return { shape: [rows, cols], data };
}

/** A factor role of adapterFormats' layouts → its B partner (PEFT/loralib, kohya, mlx-lm, legacy diffusers). */
const B_ROLE_OF: Record<string, string> = { lora_A: 'lora_B', lora_down: 'lora_up', lora_a: 'lora_b', down: 'up' };

/** PEFT's and our prefixes are not part of the module's name; nor is legacy diffusers' `_lora` suffix. */
function cleanModuleName(n: string): string {
  return n.replace(/^base_model\.model\./, '').replace(/_lora$/, '');
}

/**
 * Pairs A/B factors by module name, with the tensor-name rules of formats/adapters/adapterFormats.ts:
 * PEFT (`….lora_A.weight`, [r, in]), our checkpoints (`param/linear.lora_A`), kohya (`….lora_down.weight`
 * + `.alpha`), mlx-lm (`lora_a` [in, r], transposed). Optimizer slots (`optim/m/…`) are skipped.
 */
export function pairFactors(names: string[], shapeOf: (name: string) => number[], get: (name: string) => { shape: number[]; data: Float32Array }): FactorPair[] {
  // Our checkpoints: `param/<module>.lora_A`; optimizer slots (`optim/m/…`) are not factors.
  const stored = new Map<string, string>();
  for (const n of names) {
    const bare = n.startsWith('param/') ? n.slice('param/'.length) : n;
    if (!bare.includes('/')) stored.set(bare, n);
  }
  const layout = describeLayout({
    tensors: [...stored].map(([name, n]) => ({ name, dtype: 'F32', shape: shapeOf(n) })),
    metadata: {},
    scalar: (name) => get(stored.get(name)!).data[0],
  });
  const mismatch = layout.warnings.find((w) => w.includes(' does not match '));
  if (mismatch) throw new DashboardDataError(mismatch.replace(/; not counted as a module$/, ''));
  const pairs: FactorPair[] = [];
  for (const m of layout.modules) {
    if (m.embedding) continue;
    const aRole = Object.keys(B_ROLE_OF).find((r) => m.tensors[r] && m.tensors[B_ROLE_OF[r]]);
    if (!aRole) continue;
    const an = stored.get(m.tensors[aRole].name)!;
    const bn = stored.get(m.tensors[B_ROLE_OF[aRole]].name)!;
    const ta = get(an);
    const tb = get(bn);
    let a = as2d(ta.shape, ta.data, an);
    let b = as2d(tb.shape, tb.data, bn);
    if (aRole === 'lora_a') {
      // mlx-lm stores lora_a [in, r] and lora_b [r, out]: transpose both to A [r, in], B [out, r].
      a = transpose(a);
      b = transpose(b);
    }
    const alpha = m.alphaSource === 'tensor' && m.alpha !== undefined && Number.isFinite(m.alpha) && m.alpha > 0 ? m.alpha : undefined;
    pairs.push({ module: cleanModuleName(m.name), a, b, alpha });
  }
  return pairs.sort((x, y) => x.module.localeCompare(y.module, 'en', { numeric: true }));
}

function transpose(m: Matrix): Matrix {
  const [r, c] = m.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = m.data[i * c + j];
  return { shape: [c, r], data: out };
}

function scaleFor(config: ExperimentConfig | undefined, r: number): { alpha: number; scale: number } {
  const lora = config?.lora;
  if (!lora) return { alpha: r, scale: 1 };
  return { alpha: lora.alpha, scale: loraScale(lora.alpha, r, lora.scaling) };
}

function fromTensorMap(t: TensorMap): { names: string[]; shapeOf: (n: string) => number[]; get: (n: string) => { shape: number[]; data: Float32Array } } {
  return { names: Object.keys(t), shapeOf: (n) => t[n].shape, get: (n) => t[n] };
}

// ---------------------------------------------------------------- runs

/** Reads a run folder as the webview's SourceSnapshot (metrics, modules, spectra over checkpoints). */
export async function loadRunSource(runDir: string): Promise<SourceSnapshot> {
  const run = loadRun(runDir);
  const config = run.config;
  const id = sourceIdOf(runDir);
  const steps = factorSteps(runDir, run.checkpoints, run.info.step, run.adapterDir !== undefined);
  const shape = baseShape(runDir, { run: run.info, config });
  const spectra = new Map<string, ModuleSpectra>();
  let modules: ModuleSummary[] = [];
  for (const step of steps) {
    let factors: ModuleFactors[];
    try {
      factors = await readRunFactors(runDir, step);
    } catch {
      continue; // a checkpoint pruned between listing and reading
    }
    if (modules.length === 0) modules = factors.map((f) => moduleSummary(f, config, shape));
    for (const f of factors) {
      if (!f.a || !f.b) continue;
      const sp = loraSpectrum({ rows: f.a.shape[0], cols: f.a.shape[1], data: f.a.data }, { rows: f.b.shape[0], cols: f.b.shape[1], data: f.b.data }, f.scale);
      let s = spectra.get(f.module);
      if (!s) spectra.set(f.module, (s = { module: f.module, samples: [] }));
      s.samples.push({ step, ...sp });
    }
  }
  const r = config.lora.r;
  const rankText = `r=${r}`;
  return {
    id,
    kind: 'run',
    label: run.info.name.includes(rankText) ? run.info.name : `${run.info.name} ${rankText}`,
    path: path.resolve(runDir),
    run: run.info,
    config: config as unknown as Record<string, unknown>,
    metrics: toMetricColumns(run.metrics),
    checkpoints: steps,
    modules,
    totalParams: run.info.params?.totalParams ?? shape?.totalParams,
    memory: await runMemory(runDir, run.info, config),
    spectra: [...spectra.values()],
    references: await withBase(runDir, { run: run.info, modules }, runReferences(runDir, modules)),
  };
}

/**
 * The memory estimate of a causal-lm run, as `lora-lab train` printed it: from its config.json and the
 * base model's, on the backend run.json records. Undefined for other kinds, for a job that ran on
 * torch (the estimate is tfjs's), and when the base model's config.json is not on disk.
 */
async function runMemory(runDir: string, info: RunInfo, config: ExperimentConfig): Promise<MemorySummary | undefined> {
  if (config.model.kind !== 'causal-lm' || info.backend.name === 'torch') return undefined;
  const dir = baseConfigDir(runDir, { run: info });
  if (!dir) return undefined;
  try {
    const hf = await readModelConfigCached(path.join(dir, 'config.json'));
    return memorySummaryOf(config, hf, runBackendAssumption(info.backend), { machineBytes: os.totalmem(), storedWeightBytes: await weightFileBytes(dir) });
  } catch {
    return undefined; // an unreadable config.json: the Parameters view shows the counts without it
  }
}

/** A Hugging Face Trainer folder (src/runs/hfTrainerRun.ts) as a run: its log_history curve and the ΔW of each checkpoint-N/. */
export async function loadTrainerRunSource(dir: string): Promise<SourceSnapshot> {
  const run = loadTrainerRun(dir);
  const steps = factorSteps(dir, run.checkpoints, run.info.step, trainerAdapterFile(dir) !== undefined);
  const shape = baseShape(dir, { run: run.info, config: run.config });
  const spectra = new Map<string, ModuleSpectra>();
  let modules: ModuleSummary[] = [];
  for (const step of steps) {
    let factors: ModuleFactors[];
    try {
      factors = await trainerFactors(dir, step, run.config, run.info.step, run.checkpoints);
    } catch {
      continue; // save_total_limit removed it meanwhile
    }
    if (modules.length === 0) modules = factors.map((f) => moduleSummary(f, run.config, shape));
    for (const f of factors) {
      if (!f.a || !f.b) continue;
      const sp = loraSpectrum({ rows: f.a.shape[0], cols: f.a.shape[1], data: f.a.data }, { rows: f.b.shape[0], cols: f.b.shape[1], data: f.b.data }, f.scale);
      let s = spectra.get(f.module);
      if (!s) spectra.set(f.module, (s = { module: f.module, samples: [] }));
      s.samples.push({ step, ...sp });
    }
  }
  return {
    id: sourceIdOf(dir),
    kind: 'run',
    label: `${run.info.name} r=${run.config.lora.r}`,
    path: path.resolve(dir),
    run: run.info,
    config: run.config as unknown as Record<string, unknown>,
    metrics: toMetricColumns(run.metrics),
    checkpoints: steps,
    modules,
    spectra: [...spectra.values()],
    references: await withBase(dir, { run: run.info, modules }, []),
  };
}

/** The A/B factors of a Trainer folder at `step`: checkpoint-N/'s adapter, or the folder's final one. */
export async function readTrainerFactors(dir: string, step: number): Promise<ModuleFactors[]> {
  const run = loadTrainerRun(dir);
  return trainerFactors(dir, step, run.config, run.info.step, run.checkpoints);
}

async function trainerFactors(dir: string, step: number, config: ExperimentConfig, lastStep: number, checkpoints: number[]): Promise<ModuleFactors[]> {
  const file = trainerAdapterFile(dir, step) ?? (step === lastStep ? trainerAdapterFile(dir) : undefined);
  if (!file) throw new DashboardDataError(`${dir}: no checkpoint-${step}/adapter_model.safetensors (have ${checkpoints.join(', ') || 'none'})`);
  const st = await readWeightsFile(file);
  return pairFactors(st.names(), (n) => st.entry(n).shape, (n) => ({ shape: st.entry(n).shape, data: st.toFloat32(n) })).map((p) => ({ module: p.module, scale: scaleFor(config, p.a.shape[0]).scale, a: p.a, b: p.b }));
}

/** Checkpoint steps plus the final adapter's step (the adapter is ΔW at the end of training). */
function factorSteps(_runDir: string, checkpoints: number[], lastStep: number, hasAdapter: boolean): number[] {
  const s = new Set(checkpoints);
  if (hasAdapter) s.add(lastStep);
  return [...s].sort((a, b) => a - b);
}

function moduleSummary(f: ModuleFactors, config: ExperimentConfig | undefined, shape: ModelShape | undefined): ModuleSummary {
  const a = f.a!;
  const b = f.b!;
  const r = a.shape[0];
  return {
    name: f.module,
    inFeatures: a.shape[1],
    outFeatures: b.shape[0],
    r,
    alpha: scaleFor(config, r).alpha,
    scale: f.scale,
    hasBias: biasOf(shape, f.module),
    kind: 'lora',
    storedParams: a.data.length + b.data.length,
  };
}

/** The A/B factors of every module of a run at `step` (a checkpoint, or the final adapter). */
export async function readRunFactors(runDir: string, step: number): Promise<ModuleFactors[]> {
  const folder = RunFolder.open(runDir);
  const config = folder.readConfig();
  let src: { names: string[]; shapeOf: (n: string) => number[]; get: (n: string) => { shape: number[]; data: Float32Array } };
  if (folder.listCheckpoints().includes(step)) {
    src = fromTensorMap(folder.readCheckpoint(step).tensors);
  } else if (step === folder.runInfo.step && fs.existsSync(path.join(folder.adapterDir, 'adapter_model.safetensors'))) {
    const st = await readWeightsFile(path.join(folder.adapterDir, 'adapter_model.safetensors'));
    src = { names: st.names(), shapeOf: (n) => st.entry(n).shape, get: (n) => ({ shape: st.entry(n).shape, data: st.toFloat32(n) }) };
  } else {
    throw new DashboardDataError(`${runDir}: no checkpoint at step ${step} (have ${folder.listCheckpoints().join(', ') || 'none'})`);
  }
  return pairFactors(src.names, src.shapeOf, src.get).map((p) => ({ module: p.module, scale: scaleFor(config, p.a.shape[0]).scale, a: p.a, b: p.b }));
}

/** truth/ names: `true_delta_w`/`base_weight` (one module), `true_delta_w.q` or `<module>.true_delta_w`. */
function truthKindOf(word: string): ReferenceInfo['kind'] | undefined {
  if (/^(true_?delta(_?w)?|delta_?w|true.*|target.*|uv)$/i.test(word)) return 'truth';
  if (/^(base(_?weight)?|weight|w)$/i.test(word)) return 'base';
  return undefined;
}

function classifyTruth(name: string, modules: ModuleSummary[]): { module: string; kind: ReferenceInfo['kind'] } | undefined {
  const parts = name.split('.');
  for (let i = 0; i < parts.length; i++) {
    const kind = truthKindOf(parts[i]);
    if (!kind) continue;
    const rest = [...parts.slice(0, i), ...parts.slice(i + 1)].join('.');
    const m = rest
      ? modules.find((x) => x.name === rest) ?? modules.find((x) => x.name.endsWith(`.${rest}`))
      : modules.length === 1
        ? modules[0]
        : undefined;
    if (m) return { module: m.name, kind };
  }
  return undefined;
}

async function withBase(p: string, source: { run?: RunInfo; adapter?: AdapterSummary; modules: ModuleSummary[] }, refs: ReferenceInfo[]): Promise<ReferenceInfo[]> {
  try {
    return [...refs, ...(await baseReferences(p, source, refs))];
  } catch {
    return refs;
  }
}

function runReferences(runDir: string, modules: ModuleSummary[]): ReferenceInfo[] {
  const truth = RunFolder.open(runDir).readTruth();
  if (!truth) return [];
  const out: ReferenceInfo[] = [];
  for (const [name, t] of Object.entries(truth)) {
    const c = classifyTruth(name, modules);
    if (!c || t.shape.length !== 2) continue;
    const m = modules.find((x) => x.name === c.module)!;
    if (t.shape[0] !== m.outFeatures || t.shape[1] !== m.inFeatures) continue;
    if (out.some((x) => x.module === c.module && x.kind === c.kind)) continue;
    out.push({ module: c.module, kind: c.kind, shape: [t.shape[0], t.shape[1]] });
  }
  return out;
}

// ---------------------------------------------------------------- base model weights (W, W + ΔW)
// When the base model folder is known (a causal-lm run's RunInfo.baseModel, or an adapter whose
// base_model_name_or_path names a folder that exists), W of each adapted module is read from its
// safetensors: header only to list, one tensor's bytes when drawn.

/** References above this size are not offered (a heatmap does not need a 7B model's 16M-value q_proj). */
const MAX_BASE_ELEMENTS = 4_194_304;

interface BaseTensor {
  file: string;
  header: SafetensorsHeader;
  entry: TensorEntry;
  /** GPT-2 Conv1D stores W as [in, out]. */
  transposed: boolean;
}

/** model.safetensors, or the shards named by model.safetensors.index.json. */
async function baseModelHeaders(dir: string): Promise<{ file: string; header: SafetensorsHeader }[]> {
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return [{ file: single, header: await readSafetensorsHeader(single) }];
  const index = path.join(dir, 'model.safetensors.index.json');
  if (!fs.existsSync(index)) return [];
  const map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
  const files = [...new Set(Object.values(map))].map((f) => path.join(dir, path.basename(f))).filter((f) => fs.existsSync(f));
  const out: { file: string; header: SafetensorsHeader }[] = [];
  for (const file of files) out.push({ file, header: await readSafetensorsHeader(file) });
  return out;
}

async function findBaseTensors(dir: string, modules: ModuleSummary[]): Promise<Map<string, BaseTensor>> {
  const out = new Map<string, BaseTensor>();
  let files: { file: string; header: SafetensorsHeader }[];
  try {
    files = await baseModelHeaders(dir);
  } catch {
    return out;
  }
  for (const m of modules) {
    if (m.outFeatures * m.inFeatures > MAX_BASE_ELEMENTS) continue;
    for (const f of files) {
      const e = f.header.tensors.find((t) => t.name === `${m.name}.weight`) ?? f.header.tensors.find((t) => t.name.endsWith(`.${m.name}.weight`));
      if (!e || e.shape.length !== 2) continue;
      if (e.shape[0] === m.outFeatures && e.shape[1] === m.inFeatures) out.set(m.name, { ...f, entry: e, transposed: false });
      else if (e.shape[0] === m.inFeatures && e.shape[1] === m.outFeatures) out.set(m.name, { ...f, entry: e, transposed: true });
      if (out.has(m.name)) break;
    }
  }
  return out;
}

async function readBaseTensor(t: BaseTensor): Promise<Matrix> {
  const data = await readTensorFloat32(t.file, t.header, t.entry.name);
  const m: Matrix = { shape: [t.entry.shape[0], t.entry.shape[1]], data };
  return t.transposed ? transpose(m) : m;
}

/** Where a run's or an adapter's base model may be: the run's baseModel, the adapter's (relative to it). */
function baseCandidates(p: string, source: { run?: RunInfo; adapter?: AdapterSummary }): string[] {
  const candidates: string[] = [];
  if (source.run?.baseModel) candidates.push(source.run.baseModel);
  if (source.adapter?.baseModel) {
    const b = source.adapter.baseModel;
    const here = fs.statSync(p).isDirectory() ? p : path.dirname(p);
    candidates.push(path.isAbsolute(b) ? b : path.resolve(here, b));
  }
  return candidates;
}

/** The base model folder of a run or an adapter, when it is on disk. */
function baseModelDir(p: string, source: { run?: RunInfo; adapter?: AdapterSummary }): string | undefined {
  return baseCandidates(p, source).find((d) => fs.existsSync(path.join(d, 'config.json')) && (fs.existsSync(path.join(d, 'model.safetensors')) || fs.existsSync(path.join(d, 'model.safetensors.index.json'))));
}

/** A folder holding the base model's config.json (the weights need not be there to know its shapes). */
function baseConfigDir(p: string, source: { run?: RunInfo; adapter?: AdapterSummary }): string | undefined {
  return baseCandidates(p, source).find((d) => fs.existsSync(path.join(d, 'config.json')));
}

/**
 * The base model's layers (with their biases) and total size, from the same shape tables as the
 * parameter-count hovers: the built-in experiment's model, or the base folder's config.json.
 */
function baseShape(p: string, source: { run?: RunInfo; adapter?: AdapterSummary; config?: ExperimentConfig }): ModelShape | undefined {
  try {
    const fromConfig = source.config && source.config.kind !== 'causal-lm' ? experimentModelShape(source.config) : undefined;
    if (fromConfig) return fromConfig;
    const dir = baseConfigDir(p, source);
    if (!dir) return undefined;
    const file = path.join(dir, 'config.json');
    return hfModelShape(parseHfConfig(fs.readFileSync(file, 'utf8'), file));
  } catch {
    return undefined;
  }
}

/** Whether the adapted layer has a bias in the base model; false when the base model is unknown. */
function biasOf(shape: ModelShape | undefined, module: string): boolean {
  const l = shape?.linears.find((x) => x.name === module) ?? shape?.linears.find((x) => module.endsWith(`.${x.name}`) || x.name.endsWith(`.${module}`));
  return l?.hasBias ?? false;
}

/** Parameters of the base model (all tensors of its safetensors), when its folder is on disk. */
async function baseParamCount(p: string, source: { run?: RunInfo; adapter?: AdapterSummary }): Promise<number | undefined> {
  try {
    const dir = baseModelDir(p, source);
    if (!dir) return undefined;
    let n = 0;
    for (const f of await baseModelHeaders(dir)) for (const t of f.header.tensors) n += t.shape.reduce((a, b) => a * b, 1);
    return n;
  } catch {
    return undefined;
  }
}

async function baseReferences(p: string, source: { run?: RunInfo; adapter?: AdapterSummary; modules: ModuleSummary[] }, have: ReferenceInfo[]): Promise<ReferenceInfo[]> {
  const dir = baseModelDir(p, source);
  if (!dir) return [];
  const want = source.modules.filter((m) => m.drawable !== false && !have.some((r) => r.module === m.name && r.kind === 'base'));
  return [...(await findBaseTensors(dir, want)).keys()].map((module) => {
    const m = want.find((x) => x.name === module)!;
    return { module, kind: 'base' as const, shape: [m.outFeatures, m.inFeatures] as [number, number] };
  });
}

/** The base W (from truth/ or the base model) or the true ΔW of one module of a run or adapter. */
export async function readReference(p: string, module: string, kind: ReferenceInfo['kind']): Promise<Matrix> {
  if (isRunDir(p)) {
    const truth = RunFolder.open(p).readTruth();
    const modules = await runModules(p);
    for (const [name, t] of Object.entries(truth ?? {})) {
      const c = classifyTruth(name, modules);
      if (c && c.module === module && c.kind === kind && t.shape.length === 2) return { shape: [t.shape[0], t.shape[1]], data: t.data };
    }
  }
  if (kind === 'base') {
    const source = isRunDir(p) ? { run: RunFolder.open(p).runInfo, modules: await runModules(p) } : isTrainerRunDir(p) ? await loadTrainerRunSource(p) : await loadAdapterSource(p);
    const dir = baseModelDir(p, source);
    const m = source.modules.find((x) => x.name === module);
    const t = dir && m ? (await findBaseTensors(dir, [m])).get(module) : undefined;
    if (t) return await readBaseTensor(t);
  }
  throw new DashboardDataError(`${p}: no ${kind === 'truth' ? 'true ΔW' : 'base weight'} for module '${module}'`);
}

/** Module summaries of a run from its newest checkpoint (cheaper than loadRunSource). */
async function runModules(runDir: string): Promise<ModuleSummary[]> {
  const folder = RunFolder.open(runDir);
  const steps = folder.listCheckpoints();
  const step = steps.length ? steps[steps.length - 1] : folder.runInfo.step;
  try {
    const config = folder.readConfig();
    const shape = baseShape(runDir, { run: folder.runInfo, config });
    return (await readRunFactors(runDir, step)).map((f) => moduleSummary(f, config, shape));
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- adapters
// The summary (format, base model, warnings, metadata, module kinds) is the interop engineer's pure
// inspectAdapter report, the same the adapter tree and `lora-lab inspect` show. Plain A/B modules
// travel as factors (spectra from their Gram matrices); LoHa/LoKr/LoCon modules as their ΔW.

const ADAPTER_WEIGHT_FILES = ['adapter_model.safetensors', 'adapters.safetensors', 'pytorch_lora_weights.safetensors'];
/** ΔW of non-A/B modules (LoHa, LoKr, LoCon) is shipped whole: keep it to sizes a heatmap can use. */
const MAX_DELTA_ELEMENTS = 2_500_000;
const MAX_DELTA_TOTAL = 4_000_000;

/** Which non-A/B modules get their ΔW shipped: greedily in file order, within the caps. */
function planDeltas(modules: InspectReport['modules'], hasFactors: (m: InspectReport['modules'][number]) => boolean): Set<string> {
  const out = new Set<string>();
  let budget = MAX_DELTA_TOTAL;
  for (const m of modules) {
    if (hasFactors(m)) continue;
    const n = m.deltaShape.reduce((a, b) => a * b, 1);
    if (n <= MAX_DELTA_ELEMENTS && n <= budget) {
      out.add(m.name);
      budget -= n;
    }
  }
  return out;
}

interface ReadAdapter {
  report: InspectReport;
  configText?: string;
  factors: (ModuleFactors & { summary: ModuleSummary })[];
  notes: string[];
}

type Values = (name: string) => Float32Array;

/** A and B of a plain LoRA module from the roles inspectAdapter found (mlx-lm stores them transposed). */
function loraFactorsOf(format: string, m: InspectReport['modules'][number], values: Values): { a: Matrix; b: Matrix } | undefined {
  const t = m.tensors;
  const mat = (info: { name: string; shape: number[] }) => as2d(info.shape, values(info.name), info.name);
  if (format === 'mlx' && t.lora_a && t.lora_b) return { a: transpose(mat(t.lora_a)), b: transpose(mat(t.lora_b)) };
  const down = t.lora_down ?? t.lora_A ?? t.down;
  const up = t.lora_up ?? t.lora_B ?? t.up;
  if (!down || !up || t.lora_mid) return undefined;
  return { a: mat(down), b: mat(up) };
}

/**
 * Reads an adapter through the same reader and report as `lora-lab inspect` (loadInspectInput +
 * inspectAdapter): one path for headers, tensor bytes, warnings and module roles.
 */
async function readAdapter(p: string, opts: { deltas: boolean }): Promise<ReadAdapter> {
  const input = await loadInspectInput(p, { readValues: true });
  const report = inspectAdapter(input);
  const notes: string[] = [];
  const factors: ReadAdapter['factors'] = [];
  const read = input.weights?.values;
  if (read && report.format !== 'unreadable') {
    const values: Values = (n) => {
      const v = read(n);
      if (!v) throw new DashboardDataError(`${input.weights?.name ?? p}: tensor "${n}" is listed by the report but not in the file`);
      return v;
    };
    const abOf = new Map(report.modules.map((m) => [m.name, m.kind === 'lora' ? loraFactorsOf(report.format, m, values) : undefined]));
    const fits = (m: InspectReport['modules'][number]) => {
      const ab = abOf.get(m.name);
      const inF = m.deltaShape.slice(1).reduce((a, b) => a * b, 1);
      return !!ab && ab.a.shape[1] === inF && ab.b.shape[0] === m.deltaShape[0] && ab.b.shape[1] === ab.a.shape[0];
    };
    const withDelta = planDeltas(report.modules, fits);
    let skipped = 0;
    for (const m of report.modules) {
      const out = m.deltaShape[0];
      const inF = m.deltaShape.slice(1).reduce((a, b) => a * b, 1);
      const drawable = fits(m) || withDelta.has(m.name);
      const summary: ModuleSummary = {
        name: cleanModuleName(m.name),
        inFeatures: inF,
        outFeatures: out,
        r: m.rank,
        alpha: m.alpha ?? m.rank,
        scale: m.scale,
        hasBias: false,
        kind: m.kind,
        dtype: m.dtype,
        storedParams: m.paramCount,
        drawable,
      };
      const ab = abOf.get(m.name);
      if (ab && fits(m)) {
        factors.push({ module: summary.name, scale: m.scale, a: ab.a, b: ab.b, summary });
      } else if (!drawable) {
        skipped++;
        factors.push({ module: summary.name, scale: 1, summary });
      } else if (!opts.deltas) {
        factors.push({ module: summary.name, scale: 1, summary });
      } else {
        try {
          const d = deltaW(report.format, m, values);
          factors.push({ module: summary.name, scale: 1, delta: { shape: [out, inF], data: d.data }, summary });
        } catch (e) {
          notes.push(`${m.name}: ΔW not computed (${(e as Error).message})`);
        }
      }
    }
    if (skipped) notes.push(`ΔW of ${skipped} module(s) without A/B factors not drawn: the heatmap takes at most ${MAX_DELTA_ELEMENTS.toLocaleString('en-US')} values per module and ${MAX_DELTA_TOTAL.toLocaleString('en-US')} in all`);
  }
  return { report, configText: input.configText, factors, notes };
}

/** `…/llama-tiny/adapter` reads better than `adapter`. */
function adapterLabel(p: string): string {
  const base = path.basename(p);
  if (ADAPTER_WEIGHT_FILES.includes(base)) return adapterLabel(path.dirname(p));
  return /^(adapter|adapters|lora|checkpoint[-\w]*)$/i.test(base) ? `${path.basename(path.dirname(p))}/${base}` : base;
}

/** Reads an adapter (PEFT folder, or a single .safetensors LoRA file) as a SourceSnapshot. */
export async function loadAdapterSource(p: string): Promise<SourceSnapshot> {
  const { report, configText, factors, notes } = await readAdapter(p, { deltas: false });
  const metadata: MetadataEntry[] = Object.entries(report.metadata).map(([key, value]) => ({ key, value }));
  const warnings = [...report.errors, ...report.warnings, ...notes];
  if (report.format !== 'unreadable' && report.modules.length === 0) warnings.push('No LoRA modules found in this file.');
  const adapter: AdapterSummary = {
    format: report.formatLabel,
    baseModel: report.baseModel,
    baseModelNote: report.baseModelStatement || 'An adapter only stores the update ΔW; it cannot run without the base model it was trained on.',
    metadata,
    warnings,
    configText,
  };
  const spectra: ModuleSpectra[] = [];
  for (const f of factors) {
    if (!f.a || !f.b) continue;
    spectra.push({
      module: f.module,
      samples: [{ step: 0, ...loraSpectrum({ rows: f.a.shape[0], cols: f.a.shape[1], data: f.a.data }, { rows: f.b.shape[0], cols: f.b.shape[1], data: f.b.data }, f.scale) }],
    });
  }
  const shape = baseShape(p, { adapter });
  const modules = factors.map((f) => ({ ...f.summary, hasBias: biasOf(shape, f.summary.name) }));
  return {
    totalParams: (await baseParamCount(p, { adapter })) ?? shape?.totalParams,
    id: sourceIdOf(p),
    kind: 'adapter',
    label: adapterLabel(p),
    path: path.resolve(p),
    checkpoints: factors.length ? [0] : [],
    modules,
    spectra,
    references: await withBase(p, { adapter, modules }, []),
    adapter,
  };
}

/** The factors (or ΔW) of an adapter's modules (its only "step" is 0). */
export async function readAdapterFactors(p: string): Promise<ModuleFactors[]> {
  return (await readAdapter(p, { deltas: true })).factors.filter((f) => f.delta || (f.a && f.b))
    .map(({ summary: _s, ...f }) => f);
}

/** A run folder has run.json; anything else is treated as an adapter. */
export function isRunDir(p: string): boolean {
  return fs.existsSync(path.join(p, 'run.json'));
}

export async function loadSource(p: string): Promise<SourceSnapshot> {
  return isRunDir(p) ? loadRunSource(p) : isTrainerRunDir(p) ? loadTrainerRunSource(p) : loadAdapterSource(p);
}

export async function readFactors(p: string, step: number): Promise<ModuleFactors[]> {
  return isRunDir(p) ? readRunFactors(p, step) : isTrainerRunDir(p) ? readTrainerFactors(p, step) : readAdapterFactors(p);
}

// ---------------------------------------------------------------- snapshot + report

export async function buildSnapshot(paths: string[], opts: { title?: string; live: boolean }): Promise<DashboardSnapshot> {
  const sources: SourceSnapshot[] = [];
  for (const p of paths) sources.push(await loadSource(p));
  return {
    title: opts.title ?? dashboardTitle(sources),
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    live: opts.live,
    sources,
  };
}

/** Names every source (runs by their label, which carries the rank), so a comparison says what it compares. */
export function dashboardTitle(sources: readonly SourceSnapshot[]): string {
  if (sources.length === 0) return 'LoRA Lab';
  const uniq = [...new Set(sources.map((s) => s.label))];
  return `LoRA Lab: ${uniq.join(', ')}`;
}

/** Everything the static report needs: the snapshot plus every factor and reference matrix the views may ask for. */
export async function buildReportData(paths: string[], title?: string): Promise<ReportData> {
  const snapshot = await buildSnapshot(paths, { title, live: false });
  const metrics: NonNullable<ReportData['metrics']> = {};
  snapshot.sources = snapshot.sources.map(({ metrics: m, ...rest }) => {
    if (m) metrics[rest.id] = packMetrics(m);
    return rest;
  });
  const factors: ReportData['factors'] = {};
  const references: ReportData['references'] = {};
  let refBudget = 8_388_608;
  for (const [i, s] of snapshot.sources.entries()) {
    const p = paths[i];
    factors[s.id] = {};
    for (const step of s.checkpoints) {
      try {
        factors[s.id][String(step)] = (await readFactors(p, step)).map(encodeFactors);
      } catch {
        // pruned meanwhile: the view says it cannot draw that step
      }
    }
    // Reference matrices are whole k×d arrays: cap what one report carries.
    const kept: ReferenceInfo[] = [];
    references[s.id] = [];
    for (const r of s.references) {
      const n = r.shape[0] * r.shape[1];
      if (n > refBudget) continue;
      refBudget -= n;
      kept.push(r);
      references[s.id].push({ module: r.module, kind: r.kind, matrix: encodeMatrix(await readReference(p, r.module, r.kind)) });
    }
    s.references = kept;
  }
  return { snapshot, metrics, factors, references };
}
