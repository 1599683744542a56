// The sidebar adapter browser: every adapter in the workspace, from headers only, refreshed by a file
// watcher, in groups: our runs, then third-party adapters by format (PEFT folders, kohya / LyCORIS / mlx /
// other safetensors LoRA files), then files that cannot be read or hold no LoRA factors, with the reason. File metadata is
// shown as plain labels (never HTML or trusted markdown).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { Disposable } from '../util/disposable';
import { log } from '../util/log';
import type { InspectModule } from '../formats/adapters';
import { adapterDescription, adapterTooltip, checkAdapterValues, groupAdapters, isMergeable, moduleDescription, scanAdapters, type AdapterGroup, type AdapterInfo } from '../insight/adapterScan';

export { adapterDescription, moduleDescription };

export type AdapterNode =
  | { kind: 'group'; group: AdapterGroup }
  | { kind: 'adapter'; info: AdapterInfo }
  | { kind: 'base'; info: AdapterInfo }
  | { kind: 'warning'; text: string }
  | { kind: 'metadata'; info: AdapterInfo }
  | { kind: 'meta'; key: string; value: string }
  | { kind: 'module'; info: AdapterInfo; module: InspectModule }
  | { kind: 'empty'; text: string };

// .jobs/ holds the jobs Run Experiment On… exported: their init/ adapter is the job's input (LoRA Lab's
// initial weights), not a trained adapter, and would be listed once per run otherwise.
const EXCLUDE = '{**/node_modules/**,**/.git/**,**/.vscode-test/**,**/.jobs/**}';

/** Warnings shown as children; the rest are summarised (a mismatched file can warn once per module). */
const MAX_WARNINGS = 8;

export class AdapterTreeProvider extends Disposable implements vscode.TreeDataProvider<AdapterNode> {
  private readonly _onDidChangeTreeData = this._register(new vscode.EventEmitter<AdapterNode | undefined>());
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;
  private _adapters: AdapterInfo[] | undefined;
  private _scanning: Promise<AdapterInfo[]> | undefined;
  private _valuesChecked: Promise<void> = Promise.resolve();
  private _timer: NodeJS.Timeout | undefined;
  /** Milliseconds the last full scan took (shown in the log; the test reads it). */
  lastScanMs = 0;

  constructor() {
    super();
    const watcher = this._register(vscode.workspace.createFileSystemWatcher('**/*.{safetensors,json}'));
    const onChange = (uri: vscode.Uri) => {
      const p = uri.fsPath;
      // Checkpoints and reference tensors of running trainings change every few seconds and are not
      // adapters; a finished run's adapter/ arrives by folder rename and JobManager.onDidFinish refreshes.
      if (/[\\/](checkpoints|truth|\.tmp[^\\/]*)[\\/]/.test(p)) return;
      if (/\.safetensors$|adapter_config\.json$|[\\/]config\.json$/.test(p)) this.refreshSoon();
    };
    this._register(watcher.onDidCreate(onChange));
    this._register(watcher.onDidChange(onChange));
    this._register(watcher.onDidDelete(onChange));
    this._register(vscode.workspace.onDidChangeWorkspaceFolders(() => this.refreshSoon()));
    this._register({ dispose: () => clearTimeout(this._timer) });
  }

  refreshSoon(delayMs = 300): void {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.refresh(), delayMs);
  }

  refresh(): void {
    this._adapters = undefined;
    this._scanning = undefined;
    this._onDidChangeTreeData.fire(undefined);
  }

  /** Adapters found in the workspace (scans once, then from cache until something changes). */
  adapters(): Promise<AdapterInfo[]> {
    if (this._adapters) return Promise.resolve(this._adapters);
    this._scanning ??= this.scan().then((a) => {
      this._adapters = a;
      this._valuesChecked = this.checkValues(a);
      return a;
    });
    return this._scanning;
  }

  /** Resolves when the background values pass (alpha values, NaN/Inf) over the current list is done. */
  async valuesChecked(): Promise<void> {
    await this.adapters();
    await this._valuesChecked;
  }

  private async checkValues(list: AdapterInfo[]): Promise<void> {
    const t0 = Date.now();
    let changed = false;
    for (const a of list) {
      if (this._adapters !== list) return; // a newer scan replaced this one
      try {
        changed = (await checkAdapterValues(a)) || changed;
      } catch (e) {
        log.warn(`adapter browser: could not read the values of ${a.path}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    log.debug(`adapter browser: values of ${list.filter((a) => a.valuesChecked).length} adapters checked (alpha, NaN/Inf) in ${Date.now() - t0} ms`);
    // Element objects are rebuilt by getChildren: refresh the whole (cached) tree once.
    if (changed && this._adapters === list) this._onDidChangeTreeData.fire(undefined);
  }

  private async scan(): Promise<AdapterInfo[]> {
    const t0 = Date.now();
    const [st, cfgs, models] = await Promise.all([
      vscode.workspace.findFiles('**/*.safetensors', EXCLUDE),
      vscode.workspace.findFiles('**/adapter_config.json', EXCLUDE),
      vscode.workspace.findFiles('**/config.json', EXCLUDE),
    ]);
    const roots = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    const out = await scanAdapters({
      safetensors: st.map((u) => u.fsPath),
      adapterConfigs: cfgs.map((u) => u.fsPath),
      modelDirs: models.map((u) => path.dirname(u.fsPath)).filter((d) => !/[\\/]checkpoints[\\/]/.test(d)),
      roots,
    });
    this.lastScanMs = Date.now() - t0;
    log.debug(`adapter browser: ${out.length} adapters from ${st.length} safetensors files in ${this.lastScanMs} ms`);
    return out;
  }

  getTreeItem(n: AdapterNode): vscode.TreeItem {
    switch (n.kind) {
      case 'group': {
        const g = n.group;
        const item = new vscode.TreeItem(g.label, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `group:${g.id}`;
        item.description = `${g.adapters.length}`;
        item.tooltip =
          g.id === 'runs'
            ? 'Adapters trained in this workspace (adapter/ of each run folder)'
            : g.id === 'problems'
              ? 'Files that cannot be read as a LoRA adapter, or hold no LoRA factors: each says why'
              : `Third-party adapters: ${g.adapters[0]?.formatLabel ?? g.label}`;
        item.iconPath = new vscode.ThemeIcon(g.id === 'runs' ? 'beaker' : g.id === 'problems' ? 'warning' : 'folder-library');
        item.contextValue = 'loraLab.adapterGroup';
        return item;
      }
      case 'adapter': {
        const a = n.info;
        const item = new vscode.TreeItem(a.label, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `adapter:${a.path}`;
        item.description = adapterDescription(a);
        item.tooltip = adapterTooltip(a);
        item.iconPath = a.problem ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground')) : new vscode.ThemeIcon(a.warnings.length ? 'warning' : a.runDir ? 'beaker' : 'layers');
        item.resourceUri = vscode.Uri.file(a.path);
        // Merge needs a PEFT adapter of a real model (a built-in experiment's run has no base to merge into).
        item.contextValue = isMergeable(a) ? 'loraLab.adapter.mergeable' : 'loraLab.adapter';
        item.command = { command: 'loraLab.inspectAdapter', title: 'Inspect Adapter', arguments: [n] };
        return item;
      }
      case 'base': {
        const a = n.info;
        // A built-in experiment's run has no named base: its frozen W is synthetic, kept in the run folder.
        const synthetic = !a.baseModel && a.runDir !== undefined && a.baseFound === a.runDir;
        const item = new vscode.TreeItem(`Base model: ${a.baseModel ?? (synthetic ? 'synthetic (built-in experiment)' : 'unknown')}`, vscode.TreeItemCollapsibleState.None);
        item.description = synthetic ? 'in the run folder (truth/)' : a.baseFound ? 'found in workspace' : 'not in workspace';
        item.tooltip = `${a.baseNote}\nAn adapter holds only the low-rank update ΔW = s·B·A; it cannot run without the base model it was trained on.`;
        item.iconPath = new vscode.ThemeIcon(a.baseFound ? 'pass' : 'question');
        return item;
      }
      case 'warning': {
        const item = new vscode.TreeItem(n.text, vscode.TreeItemCollapsibleState.None);
        item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
        item.tooltip = n.text;
        return item;
      }
      case 'metadata': {
        const item = new vscode.TreeItem(`Metadata (${n.info.metadata.length})`, vscode.TreeItemCollapsibleState.Collapsed);
        item.iconPath = new vscode.ThemeIcon('info');
        return item;
      }
      case 'meta': {
        // Label and tooltip are plain strings: VS Code renders them as text, so <script> stays text.
        const item = new vscode.TreeItem(n.key, vscode.TreeItemCollapsibleState.None);
        item.description = n.value.replace(/\s+/g, ' ');
        item.tooltip = `${n.key}: ${n.value}`;
        return item;
      }
      case 'module': {
        const item = new vscode.TreeItem(n.module.name, vscode.TreeItemCollapsibleState.None);
        item.description = moduleDescription(n.module);
        item.tooltip = `${n.module.name}\n${moduleDescription(n.module)}\ntensors: ${Object.values(n.module.tensors)
          .map((t) => `${t.name} [${t.shape.join(', ')}]`)
          .join(', ')}`;
        item.iconPath = new vscode.ThemeIcon('symbol-field');
        return item;
      }
      case 'empty':
        return new vscode.TreeItem(n.text, vscode.TreeItemCollapsibleState.None);
      default: {
        const never: never = n;
        return never;
      }
    }
  }

  async getChildren(n?: AdapterNode): Promise<AdapterNode[]> {
    if (!n) {
      const all = await this.adapters();
      return all.length ? groupAdapters(all).map((group) => ({ kind: 'group' as const, group })) : [{ kind: 'empty', text: 'No LoRA adapters found in this workspace.' }];
    }
    switch (n.kind) {
      case 'group':
        return n.group.adapters.map((info) => ({ kind: 'adapter' as const, info }));
      case 'adapter': {
        const a = n.info;
        const out: AdapterNode[] = [{ kind: 'base', info: a }];
        out.push(...a.warnings.slice(0, MAX_WARNINGS).map((text) => ({ kind: 'warning' as const, text })));
        if (a.warnings.length > MAX_WARNINGS) out.push({ kind: 'warning', text: `… and ${a.warnings.length - MAX_WARNINGS} more warnings (Inspect shows them all)` });
        if (a.metadata.length) out.push({ kind: 'metadata', info: a });
        out.push(...a.modules.map((module) => ({ kind: 'module' as const, info: a, module })));
        return out;
      }
      case 'metadata':
        return n.info.metadata.map(([key, value]) => ({ kind: 'meta' as const, key, value }));
      default:
        return [];
    }
  }
}
