// The dashboard in VS Code: a WebviewPanel running the webview-ui bundle, restored after a window
// reload by a WebviewPanelSerializer. Strict CSP (the page and its policy: dashboard/webviewPage.ts;
// localResourceRoots = dist/webview + media). The host logic (history, validation, batching) is in
// DashboardSession; this file is the VS Code glue.
//
// Live runs: each panel polls the folders of the runs it shows (metrics.jsonl, checkpoints/,
// run.json) every 500 ms, so a run started anywhere (CLI included) grows on screen. The job manager
// may also call DashboardPanel.notifyProgress(runDir, points) / notifyRunChanged(runDir) for
// immediate updates.
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { MetricPoint } from '../protocol/runFormat';
import { log } from '../util/log';
import { DashboardSession } from '../dashboard/dashboardSession';
import { panelPageHtml } from '../dashboard/webviewPage';

export interface DashboardShowOptions {
  runDirs?: string[];
  adapterPath?: string;
  /** Several adapters in one panel, side by side (the adapter browser's "Compare with…"). */
  adapterPaths?: string[];
}

/** What the webview persists (vscode.setState) and the serializer gets back after a reload. */
interface PersistedState {
  paths?: unknown;
}

export class DashboardPanel {
  static readonly viewType = 'loraLab.dashboard';
  private static readonly panels = new Set<DashboardPanel>();

  private readonly session: DashboardSession;
  private readonly disposables: vscode.Disposable[] = [];
  private disposed = false;

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly context: vscode.ExtensionContext,
    paths: string[],
  ) {
    this.session = new DashboardSession({
      post: (env) => void panel.webview.postMessage(env),
      log: (level, message) => (level === 'error' ? log.error(message) : level === 'warn' ? log.warn(message) : log.info(message)),
      saveExport: async (fileName, bytes) => {
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
        const ext = fileName.endsWith('.png') ? 'png' : 'csv';
        const uri = await vscode.window.showSaveDialog({
          defaultUri: folder ? vscode.Uri.joinPath(folder, fileName) : undefined,
          filters: ext === 'png' ? { 'PNG image': ['png'] } : { CSV: ['csv'] },
          title: `Export ${fileName}`,
        });
        if (!uri) return undefined;
        await vscode.workspace.fs.writeFile(uri, bytes);
        return uri.fsPath;
      },
    });
    panel.webview.options = DashboardPanel.webviewOptions(context);
    panel.iconPath = vscode.Uri.joinPath(context.extensionUri, 'media', 'lora-lab.svg');
    panel.webview.html = this.html();
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m) => void this.session.handleMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
    const ok = paths.filter((p) => fs.existsSync(p));
    if (ok.length) {
      this.session
        .add(ok)
        // The tab names what it shows (every run compared), like the page's own title.
        .then(() => !this.disposed && (this.panel.title = this.session.snapshot().title))
        .catch((e: unknown) => void vscode.window.showErrorMessage(`LoRA Lab dashboard: ${(e as Error).message}`));
    }
    DashboardPanel.panels.add(this);
  }

  private static webviewOptions(context: vscode.ExtensionContext): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    return {
      enableScripts: true,
      // The host keeps the history and the webview asks for a snapshot when it (re)loads.
      retainContextWhenHidden: false,
      localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(context.extensionUri, 'media')],
    };
  }

  /**
   * Opens (or reveals) a dashboard. Runs are overlaid in one panel; an adapter opens in its own.
   * A panel already showing exactly these paths is revealed instead of duplicated.
   */
  static show(context: vscode.ExtensionContext, opts: DashboardShowOptions): DashboardPanel {
    const paths = [...(opts.runDirs ?? []), ...(opts.adapterPath ? [opts.adapterPath] : []), ...(opts.adapterPaths ?? [])];
    for (const p of DashboardPanel.panels) {
      if (paths.length > 0 && paths.every((x) => p.session.has(x)) && p.session.paths.length === paths.length) {
        p.panel.reveal();
        return p;
      }
    }
    const title = opts.adapterPath && !opts.runDirs?.length ? 'LoRA Lab: Adapter' : 'LoRA Lab Dashboard';
    const panel = vscode.window.createWebviewPanel(DashboardPanel.viewType, title, vscode.ViewColumn.Active, DashboardPanel.webviewOptions(context));
    return new DashboardPanel(panel, context, paths);
  }

  /** Restores dashboards after a window reload. Returns the registration (push it to subscriptions). */
  static registerSerializer(context: vscode.ExtensionContext): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(DashboardPanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        // The state comes from the webview: untrusted. Keep only strings naming existing folders/files.
        const raw = (state as PersistedState | undefined)?.paths;
        const paths = Array.isArray(raw) ? raw.filter((p): p is string => typeof p === 'string' && p.length < 4096 && fs.existsSync(p)).slice(0, 32) : [];
        new DashboardPanel(panel, context, paths);
      },
    });
  }

  /** New metric points of a running run: every panel showing it updates (batched). */
  static notifyProgress(runDir: string, points: readonly MetricPoint[]): void {
    for (const p of DashboardPanel.panels) p.session.notifyProgress(runDir, points);
  }

  /** A checkpoint was written or the run ended: panels showing it reload its checkpoints and status. */
  static notifyRunChanged(runDir: string): void {
    for (const p of DashboardPanel.panels) p.session.notifyRunChanged(runDir);
  }

  /** Panels currently open (tests). */
  static get openPanels(): readonly DashboardPanel[] {
    return [...DashboardPanel.panels];
  }

  get paths(): string[] {
    return this.session.paths;
  }

  /** What the panel shows now (the session's snapshot: runs, their points and status). */
  snapshot(): ReturnType<DashboardSession['snapshot']> {
    return this.session.snapshot();
  }

  private html(): string {
    const webview = this.panel.webview;
    const dist = vscode.Uri.joinPath(this.context.extensionUri, 'dist', 'webview');
    return panelPageHtml('dashboard', webview.cspSource, (file) => webview.asWebviewUri(vscode.Uri.joinPath(dist, file)).toString());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    DashboardPanel.panels.delete(this);
    this.session.dispose();
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
