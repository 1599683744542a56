// The host side of one dashboard, without VS Code: it keeps the authoritative history (so hiding,
// moving or reloading the webview loses nothing), answers the webview's requests, validates every
// message from it, and pushes metric batches at most a few times per second. DashboardPanel wires it
// to a WebviewPanel; the webview tests drive it from Node against the real bundle in Chromium.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageHandler, type Envelope } from '../protocol/messageHandler';
import type { MetricPoint } from '../protocol/runFormat';
import { mergeMetricColumns, toMetricColumns } from '../shared/metricColumns';
import { base64ToBytes } from '../shared/reportEncoding';
import {
  validateFromWebview,
  type DashboardSnapshot,
  type FromWebview,
  type MetricColumns,
  type SourceSnapshot,
  type ToWebview,
} from '../protocol/webview';
import { dashboardTitle, isRunDir, loadSource, readFactors, readReference, sourceIdOf } from './dashboardData';
import { isTrainerRunDir, trainerRunKey } from '../runs/hfTrainerRun';

export interface DashboardSessionOptions {
  /** Sends one envelope to the webview (panel.webview.postMessage). */
  post(envelope: Envelope<ToWebview>): void;
  /** Logs problems (the extension's output channel). */
  log?(level: 'info' | 'warn' | 'error', message: string): void;
  /** Metric batches go out at most this often (default 500 ms: ≤ 2 per second). */
  flushIntervalMs?: number;
  /** How often running runs' folders are checked for new metrics/checkpoints (default 500 ms; 0 = never). */
  pollIntervalMs?: number;
  title?: string;
  /** Writes a chart export where the user chooses; resolves with the path, or undefined when cancelled. */
  saveExport?(fileName: string, bytes: Uint8Array): Promise<string | undefined>;
}

interface Tracked {
  path: string;
  source: SourceSnapshot;
  /** Bytes of metrics.jsonl already read. */
  metricsOffset: number;
  /** Points not yet sent to the webview. */
  unsent?: MetricColumns;
  checkpointsKey: string;
  runJsonMtime: number;
  reloading?: Promise<void>;
  reloadAgain?: boolean;
}

export class DashboardSession {
  private readonly channel: MessageHandler<ToWebview, FromWebview>;
  private readonly tracked = new Map<string, Tracked>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private lastFlush = 0;
  private disposed = false;
  private readonly title: string | undefined;

  constructor(private readonly opts: DashboardSessionOptions) {
    this.title = opts.title;
    this.channel = new MessageHandler<ToWebview, FromWebview>(
      (env) => opts.post(env),
      (msg) => this.onRequest(msg),
      (raw) => {
        try {
          return validateFromWebview(raw);
        } catch (e) {
          this.log('warn', `dashboard: rejected a webview message: ${(e as Error).message}`);
          throw e;
        }
      },
    );
    const poll = opts.pollIntervalMs ?? 500;
    if (poll > 0) this.pollTimer = setInterval(() => this.poll(), poll);
  }

  /** Paths shown (runs and adapters), for the serializer's state. */
  get paths(): string[] {
    return [...this.tracked.values()].map((t) => t.path);
  }

  has(p: string): boolean {
    return this.tracked.has(sourceIdOf(p));
  }

  /** Adds runs/adapters (already shown ones are reloaded); the webview gets a fresh snapshot. */
  async add(paths: string[]): Promise<void> {
    for (const p of paths) {
      try {
        await this.track(p);
      } catch (e) {
        this.log('error', `dashboard: cannot show ${p}: ${(e as Error).message}`);
        throw e;
      }
    }
    this.channel.sendEvent({ type: 'didSnapshot', snapshot: this.snapshot() });
  }

  private async track(p: string): Promise<Tracked> {
    const abs = path.resolve(p);
    // The offset is taken before the source is read: lines written meanwhile are read again by the
    // next poll and skipped as already seen, rather than lost.
    const metricsFile = path.join(abs, 'metrics.jsonl');
    const metricsOffset = isRunDir(abs) && fs.existsSync(metricsFile) ? completeLinesLength(fs.readFileSync(metricsFile)) : 0;
    const source = await loadSource(abs);
    const t: Tracked = {
      path: abs,
      source,
      metricsOffset,
      checkpointsKey: isTrainerRunDir(abs) ? trainerRunKey(abs) : listSteps(path.join(abs, 'checkpoints')).join(','),
      runJsonMtime: mtime(path.join(abs, 'run.json')),
    };
    this.tracked.set(source.id, t);
    return t;
  }

  snapshot(): DashboardSnapshot {
    const sources = [...this.tracked.values()].map((t) => t.source);
    return { title: this.title ?? dashboardTitle(sources), generatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), live: true, sources };
  }

  /** Feed every message from the webview here. */
  handleMessage(raw: unknown): Promise<void> {
    return this.channel.handleMessage(raw);
  }

  private async onRequest(msg: FromWebview): Promise<ToWebview | undefined> {
    switch (msg.type) {
      case 'ready':
        // Whatever was queued is part of the snapshot now.
        for (const t of this.tracked.values()) t.unsent = undefined;
        return { type: 'didSnapshot', snapshot: this.snapshot() };
      case 'factorsRequest': {
        const t = this.tracked.get(msg.sourceId);
        if (!t) throw new Error(`unknown source ${msg.sourceId}`);
        return { type: 'factorsResponse', sourceId: msg.sourceId, step: msg.step, modules: await readFactors(t.path, msg.step) };
      }
      case 'referenceRequest': {
        const t = this.tracked.get(msg.sourceId);
        if (!t) throw new Error(`unknown source ${msg.sourceId}`);
        return { type: 'referenceResponse', sourceId: msg.sourceId, module: msg.module, kind: msg.kind, matrix: await readReference(t.path, msg.module, msg.kind) };
      }
      case 'log':
        this.log(msg.level, `dashboard webview: ${msg.message}`);
        return undefined;
      case 'saveExport': {
        if (!this.opts.saveExport) throw new Error('this dashboard cannot save files');
        const bytes = msg.mime === 'image/png' ? base64ToBytes(msg.data) : new TextEncoder().encode(msg.data);
        return { type: 'exportSaved', path: await this.opts.saveExport(msg.fileName, bytes) };
      }
      default: {
        const never: never = msg;
        throw new Error(`unhandled webview message ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Pushes metric points of a running run (from the job manager's didProgress); the history is
   * updated at once and the webview gets them in the next batch. Points already seen are skipped.
   */
  notifyProgress(runDir: string, points: readonly MetricPoint[]): void {
    const t = this.tracked.get(sourceIdOf(runDir));
    if (!t || points.length === 0) return;
    this.appendPoints(t, toMetricColumns(points));
  }

  /** A run changed on disk (checkpoint written, finished): reload what is not metrics. */
  notifyRunChanged(runDir: string): void {
    const t = this.tracked.get(sourceIdOf(runDir));
    if (t) void this.reloadSource(t);
  }

  private appendPoints(t: Tracked, cols: MetricColumns): void {
    const history = t.source.metrics ?? (t.source.metrics = toMetricColumns([]));
    const last = history.step.length ? history.step[history.step.length - 1] : -Infinity;
    const fresh = toMetricColumns([]);
    for (let i = 0; i < cols.step.length; i++) {
      if (cols.step[i] <= last && fresh.step.length === 0) continue;
      fresh.step.push(cols.step[i]);
      fresh.loss.push(cols.loss[i]);
      fresh.evalLoss.push(cols.evalLoss[i]);
      fresh.lr.push(cols.lr[i]);
      fresh.gradNorm.push(cols.gradNorm[i]);
      fresh.elapsedMs.push(cols.elapsedMs[i]);
    }
    if (fresh.step.length === 0) return;
    mergeMetricColumns(history, fresh);
    if (!t.unsent) t.unsent = toMetricColumns([]);
    mergeMetricColumns(t.unsent, fresh);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.disposed) return;
    const interval = this.opts.flushIntervalMs ?? 500;
    const wait = Math.max(0, this.lastFlush + interval - Date.now());
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.lastFlush = Date.now();
      for (const t of this.tracked.values()) {
        if (!t.unsent) continue;
        const metrics = t.unsent;
        t.unsent = undefined;
        this.channel.sendEvent({ type: 'didAppendMetrics', sourceId: t.source.id, metrics, run: t.source.run });
      }
    }, wait);
  }

  private async reloadSource(t: Tracked): Promise<void> {
    // Reloads run one at a time per source; a change seen meanwhile reloads once more afterwards.
    if (t.reloading) {
      t.reloadAgain = true;
      return t.reloading;
    }
    t.reloading = this.reloadNow(t).finally(() => {
      t.reloading = undefined;
      if (t.reloadAgain && !this.disposed) {
        t.reloadAgain = false;
        void this.reloadSource(t);
      }
    });
    return t.reloading;
  }

  private async reloadNow(t: Tracked): Promise<void> {
    try {
      const fresh = await loadSource(t.path);
      if (this.disposed) return;
      // Keep our history (it may be ahead of what loadSource read); the webview keeps its copy.
      const metrics = t.source.metrics;
      t.source = { ...fresh, metrics: metrics ?? fresh.metrics };
      t.checkpointsKey = listSteps(path.join(t.path, 'checkpoints')).join(',');
      t.runJsonMtime = mtime(path.join(t.path, 'run.json'));
      const { metrics: _omit, ...withoutMetrics } = t.source;
      void _omit;
      this.channel.sendEvent({ type: 'didUpdateSource', source: withoutMetrics });
    } catch (e) {
      this.log('warn', `dashboard: cannot reload ${t.path}: ${(e as Error).message}`);
    }
  }

  /** Checks running runs for new metric lines, checkpoints and status changes. */
  poll(): void {
    for (const t of this.tracked.values()) {
      if (t.source.kind !== 'run') continue;
      if (isTrainerRunDir(t.path)) {
        void this.pollTrainer(t);
        continue;
      }
      const file = path.join(t.path, 'metrics.jsonl');
      let size = 0;
      try {
        size = fs.statSync(file).size;
      } catch {
        continue;
      }
      if (size < t.metricsOffset) {
        // Truncated: a resume rewound to its checkpoint. Start over from the file.
        t.metricsOffset = 0;
        if (t.source.metrics) t.source.metrics = toMetricColumns([]);
        void this.reloadSource(t);
      }
      if (size > t.metricsOffset) {
        const fd = fs.openSync(file, 'r');
        try {
          const buf = Buffer.alloc(size - t.metricsOffset);
          fs.readSync(fd, buf, 0, buf.length, t.metricsOffset);
          const complete = completeLinesLength(buf);
          t.metricsOffset += complete;
          const points: MetricPoint[] = [];
          for (const line of buf.subarray(0, complete).toString('utf8').split('\n')) {
            if (!line.trim()) continue;
            try {
              const p = JSON.parse(line) as MetricPoint;
              if (typeof p.step === 'number' && typeof p.loss === 'number') points.push(p);
            } catch {
              // a line being written: next poll
            }
          }
          if (points.length) this.appendPoints(t, toMetricColumns(points));
        } finally {
          fs.closeSync(fd);
        }
      }
      const m = mtime(path.join(t.path, 'run.json'));
      const ckpts = listSteps(path.join(t.path, 'checkpoints')).join(',');
      if (m !== t.runJsonMtime || ckpts !== t.checkpointsKey) {
        t.runJsonMtime = m;
        t.checkpointsKey = ckpts;
        void this.reloadSource(t);
      }
    }
  }

  /** A Hugging Face Trainer folder: rewritten trainer_state.json files or new checkpoints bring new points and ΔW. */
  private async pollTrainer(t: Tracked): Promise<void> {
    const key = trainerRunKey(t.path);
    if (key === t.checkpointsKey) return;
    t.checkpointsKey = key;
    try {
      const fresh = await loadSource(t.path);
      if (fresh.metrics) this.appendPoints(t, fresh.metrics);
      const { metrics: _omit, ...withoutMetrics } = fresh;
      void _omit;
      t.source = { ...fresh, metrics: t.source.metrics ?? fresh.metrics };
      this.channel.sendEvent({ type: 'didUpdateSource', source: withoutMetrics });
    } catch (e) {
      this.log('warn', `dashboard: cannot reload ${t.path}: ${(e as Error).message}`);
    }
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.opts.log?.(level, message);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.channel.dispose();
  }
}

/** Length of the prefix made of complete lines (a torn last line is left for later). */
function completeLinesLength(buf: Uint8Array): number {
  const i = buf.lastIndexOf(0x0a);
  return i < 0 ? 0 : i + 1;
}

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function listSteps(dir: string): number[] {
  try {
    return fs
      .readdirSync(dir)
      .map((n) => /^step-(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}
