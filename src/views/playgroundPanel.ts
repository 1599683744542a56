// "LoRA Lab: Try Adapter": a WebviewPanel with a prompt box that generates from the base model and from
// base + adapter side by side. The model runs in its own worker_threads Worker (dist/playgroundWorker.js),
// never on the extension host; closing the panel terminates it. Strict CSP as the dashboard's (the page
// and its policy: dashboard/webviewPage.ts; localResourceRoots = dist/webview + media).
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { FromPlaygroundWorker, PlaygroundRequest, ToPlaygroundWebview, ToPlaygroundWorker } from '../protocol/playground';
import { log } from '../util/log';
import { PlaygroundHost, type PlaygroundWorkerPort } from '../playground/host';
import { panelPageHtml } from '../dashboard/webviewPage';

export interface PlaygroundShowOptions {
  /** The base model folder (config.json + model.safetensors). */
  modelDir: string;
  /** A PEFT adapter folder; without one, only the base generates. */
  adapterDir?: string;
}

function workerPort(file: string): PlaygroundWorkerPort {
  const w = new Worker(file, { stdout: false, stderr: false });
  return {
    postMessage: (m: ToPlaygroundWorker) => w.postMessage(m),
    onMessage: (l) => w.on('message', (m: FromPlaygroundWorker) => l(m)),
    onExit: (l) => {
      w.on('error', (e) => log.error(`playground worker: ${e.message}`));
      w.on('exit', (code) => l(code));
    },
    terminate: () => void w.terminate(),
  };
}

export class PlaygroundPanel {
  static readonly viewType = 'loraLab.playground';
  private static readonly panels = new Set<PlaygroundPanel>();

  private host: PlaygroundHost;
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly context: vscode.ExtensionContext,
    opts: PlaygroundShowOptions,
  ) {
    panel.iconPath = vscode.Uri.joinPath(context.extensionUri, 'media', 'lora-lab.svg');
    panel.webview.html = this.html();
    this.host = this.startHost(opts);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m) => this.host.handleMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
    PlaygroundPanel.panels.add(this);
  }

  private startHost(opts: PlaygroundShowOptions): PlaygroundHost {
    const dist = vscode.Uri.joinPath(this.context.extensionUri, 'dist');
    this.panel.title = opts.adapterDir ? `Try ${path.basename(opts.adapterDir)}` : `Try ${path.basename(opts.modelDir)}`;
    return new PlaygroundHost(
      workerPort(vscode.Uri.joinPath(dist, 'playgroundWorker.js').fsPath),
      opts.modelDir,
      opts.adapterDir,
      {
        post: (m) => void this.panel.webview.postMessage(m),
        log: (level, message) => log[level](message),
        choose: (what) => void this.choose(what),
      },
      { wasmDir: vscode.Uri.joinPath(dist, 'wasm').fsPath },
    );
  }

  /** The page's "Change…" buttons: pick a folder, then load it in a fresh worker. */
  private async choose(what: 'adapter' | 'model'): Promise<void> {
    const picked = await vscode.window.showOpenDialog({
      canSelectFolders: true,
      canSelectFiles: false,
      title: what === 'adapter' ? 'PEFT adapter folder (adapter_config.json + adapter_model.safetensors)' : 'Base model folder (config.json + model.safetensors)',
      defaultUri: vscode.Uri.file(what === 'adapter' ? (this.host.adapterDir ?? this.host.modelDir) : this.host.modelDir),
    });
    const dir = picked?.[0]?.fsPath;
    if (!dir || this.disposed) return;
    const next = what === 'adapter' ? { modelDir: this.host.modelDir, adapterDir: dir } : { modelDir: dir, adapterDir: this.host.adapterDir };
    this.host.dispose();
    this.host = this.startHost(next);
  }

  private static options(context: vscode.ExtensionContext): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    return {
      enableScripts: true,
      // The host keeps the page's state and replays it when the page asks ('ready').
      retainContextWhenHidden: false,
      localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(context.extensionUri, 'media')],
    };
  }

  /** Opens a playground for this model + adapter, or reveals the one already showing them. */
  static show(context: vscode.ExtensionContext, opts: PlaygroundShowOptions): PlaygroundPanel {
    for (const p of PlaygroundPanel.panels) {
      if (p.host.modelDir === opts.modelDir && p.host.adapterDir === opts.adapterDir) {
        p.panel.reveal();
        return p;
      }
    }
    const panel = vscode.window.createWebviewPanel(PlaygroundPanel.viewType, 'Try Adapter', vscode.ViewColumn.Active, PlaygroundPanel.options(context));
    return new PlaygroundPanel(panel, context, opts);
  }

  /** Panels currently open (tests). */
  static get openPanels(): readonly PlaygroundPanel[] {
    return [...PlaygroundPanel.panels];
  }

  get modelDir(): string {
    return this.host.modelDir;
  }

  get adapterDir(): string | undefined {
    return this.host.adapterDir;
  }

  /** What the page shows now (tests read it; the page gets the same messages). */
  get history(): readonly ToPlaygroundWebview[] {
    return this.host.history;
  }

  /** Generates as the page's Generate button does (scripts and tests). */
  generate(request: PlaygroundRequest): number {
    return this.host.generate(request);
  }

  private html(): string {
    const webview = this.panel.webview;
    const dist = vscode.Uri.joinPath(this.context.extensionUri, 'dist', 'webview');
    return panelPageHtml('playground', webview.cspSource, (file) => webview.asWebviewUri(vscode.Uri.joinPath(dist, file)).toString());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    PlaygroundPanel.panels.delete(this);
    this.host.dispose();
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
