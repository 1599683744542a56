// Runs on disk (layout in src/protocol/runFormat.ts). Everything a reader may see is either written
// atomically (run.json, metrics rewrites: temp file + rename) or appended (metrics.jsonl, whose torn
// last line readers skip), and checkpoints/adapters are built in a temp folder and renamed into place,
// so a process killed at any instant leaves a run that `loadRun` reads and `trainRun` can resume.
// Every write goes through a RunFs (src/runs/runFs.ts): complete, fsync'd, renamed, folder fsync'd. A
// checkpoint carries a manifest (size and SHA-256 of each file), checked when it is written, before
// older ones are pruned, and on resume.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { ExperimentConfig } from '../formats/experimentTypes';
import type { CheckpointInfo, MetricPoint, RunInfo, RunStatus } from '../protocol/runFormat';
import { parseSafetensors, serializeSafetensors } from '../formats/safetensors';
import { RunError } from './runErrors';
import { appendAll, ioError, mkdirs, nodeRunFs, syncDir, writeFileAtomicSync, writeFileSynced, type RunFs } from './runFs';
import { acquireRunLock, type RunLock } from './runLock';

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
const CHECKPOINT_MANIFEST_FILE = 'manifest.json';
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
  let buf: Uint8Array;
  try {
    buf = new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    throw new RunError('bad-run-file', `${file}: cannot read: ${(e as Error).message}`, { path: file, cause: e });
  }
  const st = parseSafetensors(buf, file);
  const out: TensorMap = {};
  for (const name of st.names()) out[name] = { shape: st.entry(name).shape, data: st.toFloat32(name) };
  return out;
}

function rename(rfs: RunFs, from: string, to: string): void {
  try {
    rfs.renameSync(from, to);
  } catch (e) {
    throw ioError(e, to, `rename ${path.basename(from)} to ${path.basename(to)}`);
  }
}

/**
 * Build `target` by letting `fill` write into a fresh temp folder next to it, then swap it in. The
 * temp name starts with '.tmp-' so readers and `listCheckpoints` never mistake a half-written one.
 */
function replaceFolder(rfs: RunFs, target: string, fill: (tmp: string) => void): void {
  const parent = path.dirname(target);
  mkdirs(rfs, parent);
  const tmp = path.join(parent, `.tmp-${path.basename(target)}-${randomBytes(4).toString('hex')}`);
  try {
    rfs.mkdirSync(tmp);
  } catch (e) {
    throw ioError(e, tmp, 'create the folder');
  }
  try {
    fill(tmp);
    syncDir(rfs, tmp);
    if (fs.existsSync(target)) {
      const old = path.join(parent, `.old-${path.basename(target)}-${randomBytes(4).toString('hex')}`);
      rename(rfs, target, old);
      try {
        rename(rfs, tmp, target);
      } catch (e) {
        // Put the previous one back rather than leave no `target` at all.
        try {
          rfs.renameSync(old, target);
        } catch {
          // it stays under its .old- name, which the next prune removes
        }
        throw e;
      }
      syncDir(rfs, parent);
      try {
        rfs.rmSync(old);
      } catch {
        // an .old- leftover is removed by the next prune
      }
    } else {
      rename(rfs, tmp, target);
    }
    syncDir(rfs, parent);
  } catch (e) {
    try {
      rfs.rmSync(tmp);
    } catch {
      // a .tmp- leftover is removed by the next prune
    }
    // Name the folder being written, not its temp name (the user never sees that one).
    if (RunError.is(e, 'io') && e.message.startsWith(tmp)) {
      throw new RunError('io', target + e.message.slice(tmp.length), { path: e.path?.replace(tmp, target), cause: e });
    }
    throw e;
  }
}

export interface ManifestEntry {
  size: number;
  sha256: string;
}

/** checkpoints/step-N/manifest.json: written last, so a checkpoint with one is complete as written. */
export interface CheckpointManifest {
  formatVersion: 1;
  files: Record<string, ManifestEntry>;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Why the checkpoint in `dir` is not as written, or undefined when every file matches its manifest. */
function checkManifest(dir: string): string | undefined {
  const manifestFile = path.join(dir, CHECKPOINT_MANIFEST_FILE);
  if (!fs.existsSync(manifestFile)) {
    // Written before checkpoints had manifests: complete when both files are there (checked by parsing).
    return fs.existsSync(path.join(dir, CHECKPOINT_INFO_FILE)) && fs.existsSync(path.join(dir, CHECKPOINT_TENSORS_FILE))
      ? undefined
      : `no ${CHECKPOINT_MANIFEST_FILE}: the checkpoint was not written completely`;
  }
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as CheckpointManifest;
  } catch (e) {
    return `${CHECKPOINT_MANIFEST_FILE} cannot be read: ${(e as Error).message}`;
  }
  if (manifest?.formatVersion !== 1 || typeof manifest.files !== 'object' || manifest.files === null) {
    return `${CHECKPOINT_MANIFEST_FILE} is not a checkpoint manifest (formatVersion 1 with files expected)`;
  }
  for (const name of [CHECKPOINT_TENSORS_FILE, CHECKPOINT_INFO_FILE]) {
    if (!manifest.files[name]) return `${CHECKPOINT_MANIFEST_FILE} does not list ${name}`;
  }
  for (const [name, want] of Object.entries(manifest.files)) {
    if (name.includes('/') || name.includes('\\') || name.startsWith('.')) return `${CHECKPOINT_MANIFEST_FILE} lists a file outside the checkpoint: ${JSON.stringify(name)}`;
    let data: Buffer;
    try {
      data = fs.readFileSync(path.join(dir, name));
    } catch (e) {
      return `${name} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
    }
    if (data.length !== want.size) return `${name} is ${data.length} bytes, the manifest says ${want.size}`;
    if (sha256(data) !== want.sha256) return `${name} does not match the SHA-256 in ${CHECKPOINT_MANIFEST_FILE}`;
  }
  return undefined;
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
  /** The file system the run is written through (tests inject faults here). */
  fs?: RunFs;
}

/** Checkpoints that failed verification, newest first, with why. */
export interface SkippedCheckpoint {
  step: number;
  problem: string;
}

/** One run folder. Keeps the last RunInfo it wrote so status updates don't re-read the file. */
export class RunFolder {
  private info: RunInfo;
  private heldLock: RunLock | undefined;

  private constructor(
    readonly dir: string,
    info: RunInfo,
    private readonly rfs: RunFs,
  ) {
    this.info = info;
  }

  /**
   * Create `<outDir>/<runId>/` with run.json (status 'running', this pid/host) and config.json. The
   * folder's lock is taken before anything is written into it and held until {@link releaseLock}.
   */
  static async create(outDir: string, init: NewRunInit): Promise<RunFolder> {
    const rfs = init.fs ?? nodeRunFs;
    const now = init.now ?? new Date();
    mkdirs(rfs, outDir);
    let runId = makeRunId(init.config.name, now);
    let dir = path.join(outDir, runId);
    // Two runs started in the same second share a stamp; the 4 hex digits make a clash unlikely, retry anyway.
    for (let i = 0; fs.existsSync(dir) && i < 16; i++) {
      runId = makeRunId(init.config.name, now);
      dir = path.join(outDir, runId);
    }
    try {
      rfs.mkdirSync(dir);
    } catch (e) {
      throw ioError(e, dir, 'create the run folder');
    }
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
    const folder = new RunFolder(dir, info, rfs);
    try {
      folder.heldLock = acquireRunLock(dir, rfs);
      writeFileAtomicSync(rfs, path.join(dir, CONFIG_FILE), JSON.stringify(init.config, null, 2) + '\n');
      await folder.writeInfo(info);
      syncDir(rfs, outDir);
    } catch (e) {
      // Nothing was trained yet: a folder without run.json is of no use to anyone, so take it away.
      folder.releaseLock();
      try {
        rfs.rmSync(dir);
      } catch {
        // resume refuses such a folder with a clear message (see RunFolder.open)
      }
      throw e;
    }
    return folder;
  }

  /** Open an existing run folder (throws RunError 'not-a-run' when there is no run.json). */
  static open(dir: string, rfs: RunFs = nodeRunFs): RunFolder {
    const file = path.join(dir, RUN_INFO_FILE);
    if (!fs.existsSync(file)) {
      const cutOff = fs.existsSync(path.join(dir, CONFIG_FILE)) || (fs.existsSync(dir) && fs.readdirSync(dir).some((n) => /^\.?run\.lock\./.test(n)));
      if (cutOff) {
        throw new RunError(
          'cut-off',
          `${dir}: this run was cut off while it was being created, before its ${RUN_INFO_FILE} was written; no step was trained, so there is nothing to resume. Start it again from its experiment file (lora-lab train CONFIG) and delete this folder`,
          { path: dir },
        );
      }
      throw new RunError('not-a-run', `${dir} is not a LoRA Lab run folder (no ${RUN_INFO_FILE})`, { path: dir });
    }
    const info = readJson<RunInfo>(file, 'run info');
    if (info.formatVersion !== 1 || typeof info.runId !== 'string' || typeof info.status !== 'string') {
      throw new RunError('bad-run-file', `${file}: not a LoRA Lab run.json (formatVersion 1 with runId and status expected)`, { path: file });
    }
    return new RunFolder(path.resolve(dir), info, rfs);
  }

  /** Take this run's lock (RunError 'busy' when another trainer holds it). */
  lock(): void {
    if (!this.heldLock) this.heldLock = acquireRunLock(this.dir, this.rfs);
  }

  /** Give the lock up (best effort: a holder that is gone counts as released anyway). */
  releaseLock(): void {
    const l = this.heldLock;
    this.heldLock = undefined;
    try {
      l?.release();
    } catch {
      // the lock is stale once this process ends; nothing else to do
    }
  }

  /** Re-read run.json (after taking the lock: another trainer may have changed it meanwhile). */
  reload(): RunInfo {
    const fresh = RunFolder.open(this.dir, this.rfs);
    this.info = fresh.info;
    return this.runInfo;
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
    writeFileAtomicSync(this.rfs, path.join(this.dir, RUN_INFO_FILE), JSON.stringify(info, null, 2) + '\n');
  }

  /**
   * Last resort when run.json cannot be replaced (the disk is full): turn its "running" into "failed" in
   * place. Same length, so the file needs no new block. Returns whether run.json now says failed.
   */
  markFailedInPlace(): boolean {
    const file = path.join(this.dir, RUN_INFO_FILE);
    try {
      const text = fs.readFileSync(file);
      const from = Buffer.from('"status": "running"');
      const at = text.indexOf(from);
      if (at < 0) return false;
      const to = Buffer.from('"status": "failed" ');
      const fd = this.rfs.openSync(file, 'r+');
      try {
        let done = 0;
        while (done < to.length) {
          const n = this.rfs.writeSync(fd, to, done, to.length - done, at + done);
          if (!(n > 0)) return false;
          done += n;
        }
        this.rfs.fsyncSync(fd);
      } finally {
        this.rfs.closeSync(fd);
      }
      this.info = { ...this.info, status: 'failed' };
      return true;
    } catch {
      return false;
    }
  }

  readConfig(): ExperimentConfig {
    return readJson<ExperimentConfig>(path.join(this.dir, CONFIG_FILE), 'resolved config');
  }

  // ---- metrics ----

  appendMetrics(points: readonly MetricPoint[]): void {
    if (points.length === 0) return;
    appendAll(this.rfs, path.join(this.dir, METRICS_FILE), points.map((p) => JSON.stringify(p) + '\n').join(''));
  }

  readMetrics(): MetricPoint[] {
    const file = path.join(this.dir, METRICS_FILE);
    if (!fs.existsSync(file)) return [];
    return parseMetricsJsonl(fs.readFileSync(file, 'utf8'), file);
  }

  /** Keep only points with step ≤ `step` (and drop a torn tail), rewriting the file atomically. */
  async truncateMetrics(step: number): Promise<MetricPoint[]> {
    const kept = this.readMetrics().filter((p) => p.step <= step);
    writeFileAtomicSync(this.rfs, path.join(this.dir, METRICS_FILE), kept.map((p) => JSON.stringify(p) + '\n').join(''));
    return kept;
  }

  // ---- checkpoints ----

  /** Steps of complete checkpoints, ascending (not verified: see {@link verifyCheckpoint}). */
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

  /**
   * Why checkpoint `step` cannot be restored (a file differs from its manifest, a tensor does not parse
   * or holds NaN/Infinity), or undefined when it is good.
   */
  verifyCheckpoint(step: number): string | undefined {
    const dir = this.checkpointDir(step);
    const problem = checkManifest(dir);
    if (problem) return problem;
    try {
      const { tensors } = this.readCheckpoint(step);
      for (const [name, t] of Object.entries(tensors)) {
        const bad = t.data.findIndex((x) => !Number.isFinite(x));
        if (bad >= 0) return `tensor ${name} holds ${t.data[bad]} at index ${bad}`;
      }
    } catch (e) {
      return (e as Error).message.startsWith(dir) ? (e as Error).message.slice(dir.length).replace(/^[/\\]?:?\s*/, '') : (e as Error).message;
    }
    return undefined;
  }

  /** The newest checkpoint that verifies (undefined: none does), and the newer ones skipped with why. */
  newestGoodCheckpoint(): { step: number | undefined; skipped: SkippedCheckpoint[] } {
    const skipped: SkippedCheckpoint[] = [];
    for (const step of this.listCheckpoints().reverse()) {
      const problem = this.verifyCheckpoint(step);
      if (problem === undefined) return { step, skipped };
      skipped.push({ step, problem });
    }
    return { step: undefined, skipped };
  }

  /**
   * Write checkpoints/step-N/ (temp folder + rename), read it back against its manifest, record it in
   * run.json, then keep only the newest `keep` (0 keeps all). Pruning happens only after the new
   * checkpoint verified, and never removes it, so the newest good checkpoint always stays.
   */
  async writeCheckpoint(c: { step: number; tensors: TensorMap; state: Record<string, unknown> }, keep = 3): Promise<string> {
    const target = this.checkpointDir(c.step);
    const info: CheckpointInfo = { step: c.step, createdAt: new Date().toISOString(), state: c.state };
    const tensors = toSafetensors(c.tensors, { step: String(c.step) });
    const infoBytes = Buffer.from(JSON.stringify(info) + '\n', 'utf8');
    const manifest: CheckpointManifest = {
      formatVersion: 1,
      files: {
        [CHECKPOINT_TENSORS_FILE]: { size: tensors.length, sha256: sha256(tensors) },
        [CHECKPOINT_INFO_FILE]: { size: infoBytes.length, sha256: sha256(infoBytes) },
      },
    };
    replaceFolder(this.rfs, target, (tmp) => {
      writeFileSynced(this.rfs, path.join(tmp, CHECKPOINT_TENSORS_FILE), tensors);
      writeFileSynced(this.rfs, path.join(tmp, CHECKPOINT_INFO_FILE), infoBytes);
      writeFileSynced(this.rfs, path.join(tmp, CHECKPOINT_MANIFEST_FILE), JSON.stringify(manifest) + '\n');
    });
    const problem = checkManifest(target);
    if (problem) {
      throw new RunError('io', `${target}: the checkpoint did not read back as written (${problem}); the older checkpoints are kept`, { path: target });
    }
    await this.update({ step: c.step, lastCheckpointStep: c.step });
    if (keep > 0) this.pruneCheckpoints(keep, c.step);
    return target;
  }

  private pruneCheckpoints(keep: number, verified: number): void {
    const dir = path.join(this.dir, CHECKPOINTS_DIR);
    const steps = this.listCheckpoints();
    for (const step of steps.slice(0, Math.max(0, steps.length - keep))) {
      if (step === verified) continue;
      // Rename first: a kill during the recursive delete must not leave a half-deleted "step-N" behind.
      const doomed = path.join(dir, `.old-step-${step}-${randomBytes(4).toString('hex')}`);
      rename(this.rfs, this.checkpointDir(step), doomed);
      this.rfs.rmSync(doomed);
    }
    // Leftovers of a write that was killed half-way.
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith('.tmp-') || name.startsWith('.old-')) this.rfs.rmSync(path.join(dir, name));
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
    replaceFolder(this.rfs, this.adapterDir, (tmp) => {
      writeFileSynced(this.rfs, path.join(tmp, ADAPTER_WEIGHTS_FILE), toSafetensors(adapter.tensors, { format: 'pt' }));
      writeFileSynced(this.rfs, path.join(tmp, ADAPTER_CONFIG_FILE), JSON.stringify(adapter.config, null, 2) + '\n');
    });
    return this.adapterDir;
  }

  /** truth/tensors.safetensors: the experiment's reference tensors (e.g. the true U·V). */
  writeTruth(tensors: TensorMap): void {
    if (Object.keys(tensors).length === 0) return;
    replaceFolder(this.rfs, path.join(this.dir, TRUTH_DIR), (tmp) => {
      writeFileSynced(this.rfs, path.join(tmp, TRUTH_TENSORS_FILE), toSafetensors(tensors));
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
