// The dashboard webview (also the standalone report). Talks to the host only through
// src/protocol/webview.ts; in a report the same views read the JSON embedded in the page.
import 'uplot/dist/uPlot.min.css';
import './main.css';
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import type { DashboardSnapshot, ReportData, SourceSnapshot, ToWebview } from '../../src/protocol/webview';
import { mergeMetricColumns } from '../../src/shared/metricColumns';
import { HostDataSource, StaticDataSource, hasVsCodeApi, type DataSource } from './dataSource';
import { h } from './dom';
import { subtitleText } from './header';
import { AdapterView } from './views/adapterView';
import { warmUpHeatmapWorker } from './heatmap/workerClient';
import { HeatmapView, type HeatmapSelection } from './views/heatmapView';
import { LossView, type LossOptions } from './views/lossView';
import { ParamsView } from './views/paramsView';
import { SpectraView } from './views/spectraView';

interface UiState {
  /** What the panel shows: the host's serializer reopens these after a window reload. */
  paths?: string[];
  tab?: string;
  /** Smoothing, scales and the zoomed x range of the loss charts. */
  loss?: LossOptions;
  heatmap?: HeatmapSelection;
}

function pickDataSource(): DataSource {
  const embedded = document.getElementById('lora-lab-data');
  if (embedded) return new StaticDataSource(JSON.parse(embedded.textContent ?? '{}') as ReportData);
  if (hasVsCodeApi()) return new HostDataSource();
  throw new Error('LoRA Lab dashboard: no data (neither a VS Code webview nor a report)');
}

async function main(): Promise<void> {
  const root = document.getElementById('app') ?? document.body.appendChild(h('div', { id: 'app' }));
  const data = pickDataSource();
  warmUpHeatmapWorker();
  window.addEventListener('error', (e) => data.log('error', `webview: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => data.log('error', `webview: ${String((e as PromiseRejectionEvent).reason)}`));
  const state: UiState = (data.loadState() as UiState | undefined) ?? {};
  const save = () => data.saveState(state);

  let sources: SourceSnapshot[] = [];
  const loss = new LossView(state.loss ?? { smoothing: 0.6, log: true, showRaw: true }, (o) => { state.loss = o; save(); }, data);
  const params = new ParamsView();
  const heatmaps = new HeatmapView(data, state.heatmap ?? { mode: 'maxabs' }, (s) => { state.heatmap = s; save(); });
  const spectra = new SpectraView(data);
  const adapter = new AdapterView((id, module) => {
    heatmaps.focus(id, module);
    spectra.focus(id, module);
    selectTab('heatmaps');
  });

  const title = h('h1', {}, 'LoRA Lab');
  const subtitle = h('p', { class: 'hint', 'data-testid': 'subtitle' });
  const tabs = h('vscode-tabs' as 'div', { panel: true, 'data-testid': 'tabs' });
  const tabIds = ['loss', 'params', 'heatmaps', 'spectra', 'adapter'];
  const tabNames = ['Loss curves', 'Parameters', 'ΔW heatmaps', 'Spectra', 'Adapter'];
  const views = [loss.el, params.el, heatmaps.el, spectra.el, adapter.el];
  tabIds.forEach((id, i) => {
    tabs.append(h('vscode-tab-header' as 'div', { slot: 'header', id: `tab-${id}`, 'data-testid': `tab-${id}` }, tabNames[i]));
    tabs.append(h('vscode-tab-panel' as 'div', { 'data-testid': `panel-${id}` }, views[i]));
  });
  const selectTab = (id: string) => {
    const i = Math.max(0, tabIds.indexOf(id));
    (tabs as unknown as { selectedIndex: number }).selectedIndex = i;
    state.tab = tabIds[i];
    save();
    document.body.dataset.tab = tabIds[i];
    heatmaps.setVisible(tabIds[i] === 'heatmaps');
  };
  tabs.addEventListener('vsc-tabs-select', (e) => {
    const i = (e as CustomEvent<{ selectedIndex: number }>).detail.selectedIndex;
    state.tab = tabIds[i];
    document.body.dataset.tab = tabIds[i];
    heatmaps.setVisible(tabIds[i] === 'heatmaps');
    save();
    // uPlot sizes itself from the container, which was hidden until now.
    window.dispatchEvent(new Event('resize'));
  });
  root.append(title, subtitle, tabs);

  // A theme change (VS Code swaps the body class and the variables on <html>) recolours the canvases:
  // uPlot draws axes with colours read once, at construction.
  let restyle = 0;
  const onTheme = new MutationObserver(() => {
    cancelAnimationFrame(restyle);
    restyle = requestAnimationFrame(() => {
      loss.restyle();
      spectra.restyle();
    });
  });
  for (const el of [document.documentElement, document.body]) onTheme.observe(el, { attributes: true, attributeFilter: ['class', 'style'] });

  /** The snapshot's title and what it shows; a later snapshot (runs added to the panel) updates it. */
  let header: Omit<DashboardSnapshot, 'sources'> = { title: 'LoRA Lab', generatedAt: '', live: false };
  const renderHeader = () => {
    document.title = header.title;
    title.textContent = header.title;
    subtitle.textContent = subtitleText(header, sources);
  };

  const render = () => {
    renderHeader();
    state.paths = sources.map((s) => s.path);
    save();
    loss.setSources(sources);
    params.setSources(sources);
    heatmaps.setSources(sources);
    spectra.setSources(sources);
    adapter.setSources(sources);
    document.body.dataset.points = String(sources.reduce((n, s) => n + (s.metrics?.step.length ?? 0), 0));
  };

  const onMessage = (m: ToWebview) => {
    switch (m.type) {
      case 'didSnapshot':
        ({ sources, ...header } = m.snapshot);
        render();
        break;
      case 'didAppendMetrics': {
        const s = sources.find((x) => x.id === m.sourceId);
        if (!s) break;
        const wasRunning = s.run?.status === 'running';
        if (!s.metrics) s.metrics = { step: [], loss: [], evalLoss: [], lr: [], gradNorm: [], elapsedMs: [] };
        const before = s.metrics.step.length;
        const from = mergeMetricColumns(s.metrics, m.metrics);
        if (m.run) s.run = m.run;
        // A resumed run replaced points from `from` on: cached smoothing/reductions are stale.
        loss.metricsChanged(from < before ? s.id : undefined);
        document.body.dataset.points = String(sources.reduce((n, x) => n + (x.metrics?.step.length ?? 0), 0));
        if (wasRunning !== (s.run?.status === 'running')) renderHeader();
        break;
      }
      case 'didUpdateSource': {
        const i = sources.findIndex((x) => x.id === m.source.id);
        const next = { ...m.source, metrics: m.source.metrics ?? (i >= 0 ? sources[i].metrics : undefined) };
        if (i >= 0) sources[i] = next;
        else sources.push(next);
        heatmaps.invalidate(next.id);
        render();
        break;
      }
      case 'factorsResponse':
      case 'referenceResponse':
      case 'exportSaved':
        break; // replies are matched by MessageHandler
      default: {
        const never: never = m;
        void never;
      }
    }
  };

  ({ sources, ...header } = await data.start(onMessage));
  render();
  const onlyAdapters = sources.length > 0 && sources.every((s) => s.kind === 'adapter');
  selectTab(state.tab ?? (onlyAdapters ? 'adapter' : 'loss'));
  document.body.dataset.ready = 'true';
}

main().catch((e: unknown) => {
  document.body.dataset.ready = 'error';
  const msg = e instanceof Error ? e.message : String(e);
  document.body.append(h('pre', { class: 'fatal', 'data-testid': 'fatal' }, msg));
});
