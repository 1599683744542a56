// Where the dashboard's data comes from: the extension host (VS Code webview, via MessageHandler)
// or the JSON embedded in a standalone report. The views only see this interface.
import { MessageHandler } from '../../src/protocol/messageHandler';
import { bytesToBase64, decodeFactors, decodeMatrix, unpackMetrics } from '../../src/shared/reportEncoding';
import {
  type DashboardSnapshot,
  type ExportMime,
  type FromWebview,
  type Matrix,
  type ModuleFactors,
  type ReferenceInfo,
  type ReportData,
  type ToWebview,
} from '../../src/protocol/webview';

export interface DataSource {
  /** Resolves with the first full snapshot. */
  start(onMessage: (m: ToWebview) => void): Promise<DashboardSnapshot>;
  factors(sourceId: string, step: number): Promise<ModuleFactors[]>;
  reference(sourceId: string, module: string, kind: ReferenceInfo['kind']): Promise<Matrix>;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** Saves a chart export; resolves with where it went (undefined: cancelled). */
  exportFile(fileName: string, mime: ExportMime, data: string | Uint8Array): Promise<string | undefined>;
  /** Persisted UI state (tab, selections) across reloads. */
  saveState(state: unknown): void;
  loadState(): unknown;
}

interface VsCodeApi {
  postMessage(msg: unknown, transfer?: unknown[]): void;
  getState(): unknown;
  setState(s: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

export function hasVsCodeApi(): boolean {
  return typeof (globalThis as { acquireVsCodeApi?: unknown }).acquireVsCodeApi === 'function';
}

export class HostDataSource implements DataSource {
  private readonly api = acquireVsCodeApi();
  private readonly channel: MessageHandler<FromWebview, ToWebview>;
  private onMessage: (m: ToWebview) => void = () => {};

  constructor() {
    this.channel = new MessageHandler<FromWebview, ToWebview>(
      (env) => this.api.postMessage(env),
      (body) => {
        this.onMessage(body);
        return undefined;
      },
    );
    window.addEventListener('message', (e: MessageEvent) => void this.channel.handleMessage(e.data));
  }

  async start(onMessage: (m: ToWebview) => void): Promise<DashboardSnapshot> {
    this.onMessage = onMessage;
    const reply = await this.channel.sendRequest({ type: 'ready' });
    if (reply.type !== 'didSnapshot') throw new Error(`expected didSnapshot in reply to ready, got ${reply.type}`);
    return reply.snapshot;
  }

  async factors(sourceId: string, step: number): Promise<ModuleFactors[]> {
    const reply = await this.channel.sendRequest({ type: 'factorsRequest', sourceId, step });
    if (reply.type !== 'factorsResponse') throw new Error(`expected factorsResponse, got ${reply.type}`);
    return reply.modules;
  }

  async reference(sourceId: string, module: string, kind: ReferenceInfo['kind']): Promise<Matrix> {
    const reply = await this.channel.sendRequest({ type: 'referenceRequest', sourceId, module, kind });
    if (reply.type !== 'referenceResponse') throw new Error(`expected referenceResponse, got ${reply.type}`);
    return reply.matrix;
  }

  log(level: 'info' | 'warn' | 'error', message: string): void {
    this.channel.sendEvent({ type: 'log', level, message: message.slice(0, 4000) });
  }

  async exportFile(fileName: string, mime: ExportMime, data: string | Uint8Array): Promise<string | undefined> {
    const reply = await this.channel.sendRequest({ type: 'saveExport', fileName, mime, data: typeof data === 'string' ? data : bytesToBase64(data) });
    if (reply.type !== 'exportSaved') throw new Error(`expected exportSaved, got ${reply.type}`);
    return reply.path;
  }

  saveState(state: unknown): void {
    this.api.setState(state);
  }

  loadState(): unknown {
    return this.api.getState();
  }
}

/** The report: everything is in the page already. */
export class StaticDataSource implements DataSource {
  private state: unknown;
  constructor(private readonly data: ReportData) {}

  async start(): Promise<DashboardSnapshot> {
    const packed = this.data.metrics ?? {};
    return { ...this.data.snapshot, sources: this.data.snapshot.sources.map((s) => (packed[s.id] ? { ...s, metrics: unpackMetrics(packed[s.id]) } : s)) };
  }

  async factors(sourceId: string, step: number): Promise<ModuleFactors[]> {
    const f = this.data.factors[sourceId]?.[String(step)];
    if (!f) throw new Error(`this report has no factors for step ${step}`);
    return f.map(decodeFactors);
  }

  async reference(sourceId: string, module: string, kind: ReferenceInfo['kind']): Promise<Matrix> {
    const r = this.data.references[sourceId]?.find((x) => x.module === module && x.kind === kind);
    if (!r) throw new Error(`this report has no ${kind} matrix for ${module}`);
    return decodeMatrix(r.matrix);
  }

  log(level: 'info' | 'warn' | 'error', message: string): void {
    (level === 'error' ? console.error : console.log)(message);
  }

  /** A browser download (the report is a plain page). */
  async exportFile(fileName: string, mime: ExportMime, data: string | Uint8Array): Promise<string | undefined> {
    const blob = new Blob([typeof data === 'string' ? data : new Uint8Array(data)], { type: mime });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = fileName;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    return fileName;
  }

  saveState(state: unknown): void {
    this.state = state;
  }

  loadState(): unknown {
    return this.state;
  }
}
