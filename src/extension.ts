// activate(): wiring only (STYLE.md §3). Every register*/create*/on* result goes to
// context.subscriptions; long work lives in src/jobs, views in src/views, the command table in
// src/commands.ts. The host never imports tfjs: training runs in dist/worker.js, merging in dist/cli.js.
import * as vscode from 'vscode';
import { COMMANDS, registerCommands, type DashboardOpener } from './commands';
import { JobManager } from './jobs/jobManager';
import { errorMessage, initLog, log } from './util/log';
import { AdapterTreeProvider } from './views/adapterTree';
import { DashboardPanel } from './views/dashboardPanel';
import { ConfigDiagnostics } from './views/configDiagnostics';
import { ParamHoverProvider } from './views/paramHover';
import { RunsTreeProvider } from './views/runsTree';
import { RemoteRuns } from './runners/remoteRuns';
import type { ShownMessage } from './runners/runOnCommand';
import type { DashboardSnapshot } from './protocol/webview';

/** What activate() returns: used by the integration tests (and by other extensions, read-only). */
export interface LoraLabApi {
  jobs: JobManager;
  adapters: AdapterTreeProvider;
  runs: RunsTreeProvider;
  diagnostics: ConfigDiagnostics;
  commandIds: string[];
  /** Dashboard requests made by commands (the last 20), for tests and the log. */
  dashboardRequests: Parameters<DashboardOpener['show']>[0][];
  /** SSH runs followed from this window (reattached from remote.json after a reload). */
  remote: RemoteRuns;
  /** What Run Experiment On… told the user (the last 20), for tests and the log. */
  runOnMessages: ShownMessage[];
  /** What each open dashboard shows (its session's snapshot), for tests. */
  dashboardSnapshots(): DashboardSnapshot[];
}

export function activate(context: vscode.ExtensionContext): LoraLabApi {
  try {
    context.subscriptions.push(initLog());
    log.info(`LoRA Lab ${String(context.extension.packageJSON.version)} activating (${vscode.env.appName} ${vscode.version}, trusted: ${vscode.workspace.isTrusted})`);
    const jobs = new JobManager(context.extensionUri);
    const adapters = new AdapterTreeProvider();
    const runs = new RunsTreeProvider(jobs);
    const diagnostics = new ConfigDiagnostics();
    context.subscriptions.push(jobs, adapters, runs, diagnostics, new ParamHoverProvider());
    context.subscriptions.push(
      vscode.window.createTreeView('loraLab.adapters', { treeDataProvider: adapters, showCollapseAll: true }),
      vscode.window.createTreeView('loraLab.runs', { treeDataProvider: runs }),
    );
    const dashboardRequests: LoraLabApi['dashboardRequests'] = [];
    const dashboard: DashboardOpener = {
      show(opts) {
        dashboardRequests.push(opts);
        if (dashboardRequests.length > 20) dashboardRequests.shift();
        log.debug(`dashboard: ${JSON.stringify(opts)}`);
        DashboardPanel.show(context, opts);
      },
    };
    // SSH runs of earlier sessions are followed again (reattach after a reload).
    const remote = new RemoteRuns();
    context.subscriptions.push(remote, remote.onDidSync(() => runs.refresh()));
    const reattach = () => void remote.reattachAll().catch((e: unknown) => log.warn(`remote runs: ${errorMessage(e)}`));
    reattach();
    context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(reattach));
    const runOnMessages: ShownMessage[] = [];
    context.subscriptions.push(...registerCommands({ extension: context, jobs, adapters, runs, dashboard, remote, runOnMessages }));
    // The dashboard: restored after reloads, and fed live by running jobs (it also polls run folders).
    context.subscriptions.push(
      DashboardPanel.registerSerializer(context),
      jobs.onDidProgress(({ runDir, points }) => DashboardPanel.notifyProgress(runDir, points)),
      jobs.onDidWriteRun((runDir) => DashboardPanel.notifyRunChanged(runDir)),
    );
    // When a run ends its adapter appears: refresh the browser.
    context.subscriptions.push(jobs.onDidFinish(() => adapters.refreshSoon()));
    context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => log.info('workspace trusted: training, resume and merge are available')));
    const dashboardSnapshots = () => DashboardPanel.openPanels.map((p) => p.snapshot());
    return { jobs, adapters, runs, diagnostics, commandIds: COMMANDS.map((c) => c.id), dashboardRequests, remote, runOnMessages, dashboardSnapshots };
  } catch (e) {
    // Show the error and rethrow (rust-analyzer main.ts): a half-activated extension is worse.
    void vscode.window.showErrorMessage(`LoRA Lab failed to activate: ${errorMessage(e)}`);
    throw e;
  }
}

export function deactivate(): void {
  // Everything is in context.subscriptions; disposing the JobManager terminates running workers, whose
  // runs then read as 'interrupted' and can be resumed from their last checkpoint.
}
