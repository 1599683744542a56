// Runs on disk (layout in src/protocol/runFormat.ts). Everything a reader may see is either written
// atomically (run.json, metrics rewrites: temp file + rename) or appended (metrics.jsonl, whose torn
// last line readers skip), and checkpoints/adapters are built in a temp folder and renamed into place,
// so a process killed at any instant leaves a run that `loadRun` reads and `trainRun` can resume.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { CheckpointInfo, MetricPoint, RunInfo, RunStatus } from '../protocol/runFormat';
import { parseSafetensors, serializeSafetensors } from '../formats/safetensors';
import { writeFileAtomic } from '../io/atomic';
import { RunError } from './runErrors';

/** Tensors by name, float32 (same shape as the engine's NamedTensors). */
export interface TensorMap {
  [name: string]: { shape: number[]; data: Float32Array };
}

export const RUN_INFO_FILE = 'run.json';
export const CONFIG_FILE = 'config.json';
export const METRICS_FILE = 'metrics.jsonl';
export const CHECKPOINTS_DIR = 'checkpoints';
export const ADAPTER_DIR = 'adapter';
export const TRUTH_DIR = 'truth';
const CHECKPOINT_INFO_FILE = 'checkpoint.json';
const CHECKPOINT_TENSORS_FILE = 'tensors.safetensors';
const TRUTH_TENSORS_FILE = 'tensors.safetensors';
const ADAPTER_CONFIG_FILE = 'adapter_config.json';
const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
const STEP_DIR = /^step-(\d+)$/;

/** `<name>-<yyyymmdd-hhmmss>-<4 hex>`; the name is reduced to characters safe in any file system. */
export function makeRunId(name: string, now: Date = new Date(), hex: string = randomBytes(2).toString('hex')): string {
  const safe = name.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48) || 'run';
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `${safe}-${stamp}-${hex}`;
}

/** Whether process `pid` exists on this machine (EPERM means it exists but belongs to someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When this machine booted, in ms since the epoch (to within a second or so). */
export function hostBootTime(): number {
  return Math.round(Date.now() - os.uptime() * 1000);
}

/** Boot times further apart than this are different boots (clock adjustments stay well below it). */
const SAME_BOOT_MS = 60_000;

/**
 * The status a reader should show: a run recorded as 'running' whose process is gone (killed, crashed,
 * machine rebooted) is 'interrupted'. Runs started on another host are taken at their word.
 */
export function effectiveStatus(info: RunInfo): RunStatus {
  if (info.status !== 'running' || info.pid === undefined) return info.status;
  if (info.hostname !== undefined && info.hostname !== os.hostname()) return info.status;
  // After a reboot the recorded pid may have been given to some other process.
  if (info.bootTime !== undefined && Math.abs(hostBootTime() - info.bootTime) > SAME_BOOT_MS) return 'interrupted';
  return processAlive(info.pid) ? 'running' : 'interrupted';
}

/** Write a file and fsync it (used inside temp folders that are renamed into place afterwards). */
function writeFileSynced(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Make renames/creates inside `dir` durable; not every platform can fsync a folder (then: no-op). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // EISDIR/EPERM on Windows: the rename already happened
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function readJson<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new RunError('bad-run-file', `${file}: cannot read ${what}: ${(e as Error).message}`, { path: file, cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new RunError('bad-run-file', `${file}: ${what} is not valid JSON: ${(e as Error).message}`, { path: file, cause: e });
  }
}

function toSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array {
  const entries: Parameters<typeof serializeSafetensors>[0] = {};
  for (const [name, t] of Object.entries(tensors)) entries[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  return serializeSafetensors(entries, metadata);
}

function fromSafetensors(file: string): TensorMap {
  const st = parseSafetensors(new Uint8Array(fs.readFileSync(file)), file);
  const out: TensorMap = {};
  for (const name of st.names()) out[name] = { shape: st.entry(name).shape, data: st.toFloat32(name) };
  return out;
}

/**
 * Build `target` by letting `fill` write into a fresh temp folder next to it, then swap it in. The
 * temp name starts with '.tmp-' so readers and `listCheckpoints` never mistake a half-written one.
 */
function replaceFolder(target: string, fill: (tmp: string) => void): void {
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.tmp-${path.basename(target)}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(tmp);
  try {
    fill(tmp);
    syncDir(tmp);
    if (fs.existsSync(target)) {
      const old = path.join(parent, `.old-${path.basename(target)}-${randomBytes(4).toString('hex')}`);
      fs.renameSync(target, old);
      fs.renameSync(tmp, target);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, target);
    }
    syncDir(parent);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Parse metrics.jsonl text: one MetricPoint per line; an unparsable (torn) final line is dropped. */
export function parseMetricsJsonl(text: string, source = METRICS_FILE): MetricPoint[] {
  const lines = text.split('\n');
  const points: MetricPoint[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    try {
      points.push(JSON.parse(line) as MetricPoint);
    } catch (e) {
      // Only the last line can be torn by a kill mid-append; anything earlier is real damage.
      const isLast = lines.slice(i + 1).every((l) => l.trim() === '');
      if (isLast) break;
      throw new RunError('bad-run-file', `${source}:${i + 1}: not a JSON metric line: ${(e as Error).message}`, { path: source });
    }
  }
  return points;
}

export interface NewRunInit {
  config: ExperimentConfig;
  /** Absolute path of the experiment file the run came from. */
  configFile?: string;
  backend: RunInfo['backend'];
  versions: RunInfo['versions'];
  totalSteps: number;
  params?: RunInfo['params'];
  baseModel?: string;
  now?: Date;
}

/** One run folder. Keeps the last RunInfo it wrote so status updates don't re-read the file. */
export class RunFolder {
  private info: RunInfo;

  private constructor(readonly dir: string, info: RunInfo) {
    this.info = info;
  }

  /** Create `<outDir>/<runId>/` with run.json (status 'running', this pid/host) and config.json. */
  static async create(outDir: string, init: NewRunInit): Promise<RunFolder> {
    const now = init.now ?? new Date();
    fs.mkdirSync(outDir, { recursive: true });
    let runId = makeRunId(init.config.name, now);
    let dir = path.join(outDir, runId);
    // Two runs started in the same second share a stamp; the 4 hex digits make a clash unlikely, retry anyway.
    for (let i = 0; fs.existsSync(dir) && i < 16; i++) {
      runId = makeRunId(init.config.name, now);
      dir = path.join(outDir, runId);
    }
    fs.mkdirSync(dir);
    const at = now.toISOString();
    const info: RunInfo = {
      formatVersion: 1,
      runId,
      name: init.config.name,
      kind: init.config.kind,
      status: 'running',
      ...(init.configFile ? { configFile: init.configFile } : {}),
      createdAt: at,
      updatedAt: at,
      step: 0,
      totalSteps: init.totalSteps,
      seed: init.config.training.seed,
      backend: init.backend,
      versions: init.versions,
      ...(init.params ? { params: init.params } : {}),
      ...(init.baseModel ? { baseModel: init.baseModel } : {}),
      pid: process.pid,
      hostname: os.hostname(),
      bootTime: hostBootTime(),
    };
    await writeFileAtomic(path.join(dir, CONFIG_FILE), JSON.stringify(init.config, null, 2) + '\n');
    const folder = new RunFolder(dir, info);
    await folder.writeInfo(info);
    return folder;
  }

  /** Open an existing run folder (throws RunError 'not-a-run' when there is no run.json). */
  static open(dir: string): RunFolder {
    const file = path.join(dir, RUN_INFO_FILE);
    if (!fs.existsSync(file)) throw new RunError('not-a-run', `${dir} is not a LoRA Lab run folder (no ${RUN_INFO_FILE})`, { path: dir });
    const info = readJson<RunInfo>(file, 'run info');
    if (info.formatVersion !== 1 || typeof info.runId !== 'string' || typeof info.status !== 'string') {
      throw new RunError('bad-run-file', `${file}: not a LoRA Lab run.json (formatVersion 1 with runId and status expected)`, { path: file });
    }
    return new RunFolder(path.resolve(dir), info);
  }

  /** The RunInfo as last written, with 'running' turned into 'interrupted' when its process is gone. */
  get runInfo(): RunInfo {
    return { ...this.info, status: effectiveStatus(this.info) };
  }

  /** The RunInfo exactly as stored. */
  get storedInfo(): RunInfo {
    return { ...this.info };
  }

  /** Rewrite run.json atomically with `patch` applied (updatedAt is set for you). */
  async update(patch: Partial<RunInfo>): Promise<RunInfo> {
    this.info = { ...this.info, ...patch, updatedAt: new Date().toISOString() };
    // JSON.stringify drops keys set to undefined, so a patch can clear a field (e.g. error on resume).
    await this.writeInfo(this.info);
    return { ...this.info };
  }

  private async writeInfo(info: RunInfo): Promise<void> {
    await writeFileAtomic(path.join(this.dir, RUN_INFO_FILE), JSON.stringify(info, null, 2) + '\n');
  }

  readConfig(): ExperimentConfig {
    return readJson<ExperimentConfig>(path.join(this.dir, CONFIG_FILE), 'resolved config');
  }

  // ---- metrics ----

  appendMetrics(points: readonly MetricPoint[]): void {
    if (points.length === 0) return;
    fs.appendFileSync(path.join(this.dir, METRICS_FILE), points.map((p) => JSON.stringify(p) + '\n').join(''));
  }

  readMetrics(): MetricPoint[] {
    const file = path.join(this.dir, METRICS_FILE);
    if (!fs.existsSync(file)) return [];
    return parseMetricsJsonl(fs.readFileSync(file, 'utf8'), file);
  }

  /** Keep only points with step ≤ `step` (and drop a torn tail), rewriting the file atomically. */
  async truncateMetrics(step: number): Promise<MetricPoint[]> {
    const kept = this.readMetrics().filter((p) => p.step <= step);
    await writeFileAtomic(path.join(this.dir, METRICS_FILE), kept.map((p) => JSON.stringify(p) + '\n').join(''));
    return kept;
  }

  // ---- checkpoints ----

  /** Steps of complete checkpoints, ascending. */
  listCheckpoints(): number[] {
    const dir = path.join(this.dir, CHECKPOINTS_DIR);
    if (!fs.existsSync(dir)) return [];
    const steps: number[] = [];
    for (const name of fs.readdirSync(dir)) {
      const m = STEP_DIR.exec(name);
      // A step-N folder only ever appears whole (renamed from a temp folder); check both files anyway.
      const complete = m && fs.existsSync(path.join(dir, name, CHECKPOINT_INFO_FILE)) && fs.existsSync(path.join(dir, name, CHECKPOINT_TENSORS_FILE));
      if (complete) steps.push(Number(m[1]));
    }
    return steps.sort((a, b) => a - b);
  }

  latestCheckpointStep(): number | undefined {
    const steps = this.listCheckpoints();
    return steps.length ? steps[steps.length - 1] : undefined;
  }

  checkpointDir(step: number): string {
    return path.join(this.dir, CHECKPOINTS_DIR, `step-${step}`);
  }

  /** Write checkpoints/step-N/ (temp folder + rename), record it in run.json, keep only the newest `keep` (0 keeps all). */
  async writeCheckpoint(c: { step: number; tensors: TensorMap; state: Record<string, unknown> }, keep = 3): Promise<string> {
    const target = this.checkpointDir(c.step);
    const info: CheckpointInfo = { step: c.step, createdAt: new Date().toISOString(), state: c.state };
    replaceFolder(target, (tmp) => {
      writeFileSynced(path.join(tmp, CHECKPOINT_TENSORS_FILE), toSafetensors(c.tensors, { step: String(c.step) }));
      writeFileSynced(path.join(tmp, CHECKPOINT_INFO_FILE), JSON.stringify(info) + '\n');
    });
    await this.update({ step: c.step, lastCheckpointStep: c.step });
    if (keep > 0) this.pruneCheckpoints(keep);
    return target;
  }

  private pruneCheckpoints(keep: number): void {
    const dir = path.join(this.dir, CHECKPOINTS_DIR);
    const steps = this.listCheckpoints();
    for (const step of steps.slice(0, Math.max(0, steps.length - keep))) {
      // Rename first: a kill during the recursive delete must not leave a half-deleted "step-N" behind.
      const doomed = path.join(dir, `.old-step-${step}-${randomBytes(4).toString('hex')}`);
      fs.renameSync(this.checkpointDir(step), doomed);
      fs.rmSync(doomed, { recursive: true, force: true });
    }
    // Leftovers of a write that was killed half-way.
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith('.tmp-') || name.startsWith('.old-')) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    }
  }

  /** Read a checkpoint (the newest when `step` is omitted). */
  readCheckpoint(step?: number): { info: CheckpointInfo; tensors: TensorMap } {
    const s = step ?? this.latestCheckpointStep();
    if (s === undefined) throw new RunError('no-checkpoint', `${this.dir} has no checkpoint yet`, { path: this.dir });
    const dir = this.checkpointDir(s);
    if (!fs.existsSync(path.join(dir, CHECKPOINT_INFO_FILE))) {
      throw new RunError('no-checkpoint', `${dir}: no checkpoint at step ${s}`, { path: dir });
    }
    const info = readJson<CheckpointInfo>(path.join(dir, CHECKPOINT_INFO_FILE), 'checkpoint info');
    if (info.step !== s) throw new RunError('bad-run-file', `${dir}: checkpoint.json says step ${info.step}, folder says ${s}`, { path: dir });
    return { info, tensors: fromSafetensors(path.join(dir, CHECKPOINT_TENSORS_FILE)) };
  }

  // ---- adapter and reference tensors ----

  get adapterDir(): string {
    return path.join(this.dir, ADAPTER_DIR);
  }

  /** adapter/ in PEFT's layout: adapter_config.json + adapter_model.safetensors. */
  writeAdapter(adapter: { config: Record<string, unknown>; tensors: TensorMap }): string {
    replaceFolder(this.adapterDir, (tmp) => {
      writeFileSynced(path.join(tmp, ADAPTER_WEIGHTS_FILE), toSafetensors(adapter.tensors, { format: 'pt' }));
      writeFileSynced(path.join(tmp, ADAPTER_CONFIG_FILE), JSON.stringify(adapter.config, null, 2) + '\n');
    });
    return this.adapterDir;
  }

  /** truth/tensors.safetensors: the experiment's reference tensors (e.g. the true U·V). */
  writeTruth(tensors: TensorMap): void {
    if (Object.keys(tensors).length === 0) return;
    replaceFolder(path.join(this.dir, TRUTH_DIR), (tmp) => {
      writeFileSynced(path.join(tmp, TRUTH_TENSORS_FILE), toSafetensors(tensors));
    });
  }

  readTruth(): TensorMap | undefined {
    const file = path.join(this.dir, TRUTH_DIR, TRUTH_TENSORS_FILE);
    return fs.existsSync(file) ? fromSafetensors(file) : undefined;
  }
}

/** Everything a viewer needs about one run. */
export interface LoadedRun {
  dir: string;
  /** With the effective status (see {@link effectiveStatus}). */
  info: RunInfo;
  config: ExperimentConfig;
  metrics: MetricPoint[];
  checkpoints: number[];
  /** Set when adapter/ holds a complete adapter. */
  adapterDir?: string;
}

export function loadRun(runDir: string): LoadedRun {
  const folder = RunFolder.open(runDir);
  const adapterComplete = fs.existsSync(path.join(folder.adapterDir, ADAPTER_CONFIG_FILE));
  return {
    dir: folder.dir,
    info: folder.runInfo,
    config: folder.readConfig(),
    metrics: folder.readMetrics(),
    checkpoints: folder.listCheckpoints(),
    ...(adapterComplete ? { adapterDir: folder.adapterDir } : {}),
  };
}

/**
 * For a host whose training thread died without a word (a crashed worker keeps the host's pid alive, so
 * {@link effectiveStatus} cannot tell): record the run as 'interrupted' so it can be resumed. No-op unless
 * run.json still says 'running'. Returns the status now on disk.
 */
export async function markInterrupted(runDir: string, error?: string): Promise<RunStatus> {
  const folder = RunFolder.open(runDir);
  if (folder.storedInfo.status !== 'running') return folder.storedInfo.status;
  await folder.update({ status: 'interrupted', ...(error ? { error } : {}) });
  return 'interrupted';
}

export interface RunListing {
  dir: string;
  info: RunInfo;
}

/** Runs directly under `outDir`, newest first. Folders without a readable run.json are skipped. */
export function listRuns(outDir: string): RunListing[] {
  if (!fs.existsSync(outDir)) return [];
  const runs: RunListing[] = [];
  for (const ent of fs.readdirSync(outDir, { withFileTypes: true })) {
    if (!ent.isDirectory()) continue;
    try {
      const folder = RunFolder.open(path.join(outDir, ent.name));
      runs.push({ dir: folder.dir, info: folder.runInfo });
    } catch (e) {
      if (!RunError.is(e)) throw e;
    }
  }
  return runs.sort((a, b) => (a.info.createdAt < b.info.createdAt ? 1 : a.info.createdAt > b.info.createdAt ? -1 : 0));
}
