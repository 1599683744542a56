// Loss curves: train loss (solid) and eval loss (dashed) per run, with EMA smoothing, log scale,
// drag-to-zoom (double-click resets), a cursor read-out, and small learning-rate and grad-norm
// charts that share the cursor. Several runs overlay with a legend (rank sweeps).
import uPlot from 'uplot';
import type { SourceSnapshot } from '../../../src/protocol/webview';
import { PALETTE, cssVar, h, clear } from '../dom';
import { decimateIndices, ema, formatValue, pick } from '../series';

/** Points per run handed to uPlot at most (min/max decimation keeps spikes). */
const MAX_BUCKETS = 4000;

function isPow10(v: number): boolean {
  const e = Math.log10(v);
  return Number.isFinite(e) && Math.abs(e - Math.round(e)) < 1e-9;
}

/** Compact axis labels: 1e-4, 0.05, 12. */
function formatAxis(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

export interface LossOptions {
  smoothing: number;
  log: boolean;
  showRaw: boolean;
}

export class LossView {
  readonly el = h('section', { class: 'view loss-view', 'data-testid': 'loss-view' });
  private charts: uPlot[] = [];
  private sources: SourceSnapshot[] = [];
  private readonly chartBox = h('div', { class: 'charts' });
  private readonly readout = h('div', { class: 'readout', 'data-testid': 'loss-readout' });
  private readonly summary = h('div', { class: 'run-summary' });
  private pendingRedraw = 0;
  /** Zoom range kept across live updates. */
  private xRange: [number, number] | undefined;

  constructor(private opts: LossOptions, private readonly onOptions: (o: LossOptions) => void) {
    const smooth = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: opts.smoothing, 'data-testid': 'smoothing' });
    const smoothVal = h('span', { class: 'value' }, opts.smoothing.toFixed(2));
    smooth.addEventListener('input', () => {
      const before = this.opts.smoothing > 0;
      this.opts = { ...this.opts, smoothing: Number(smooth.value) };
      smoothVal.textContent = this.opts.smoothing.toFixed(2);
      this.onOptions(this.opts);
      // The raw series exists only while smoothing is on: a change of series needs a new chart.
      if (this.opts.showRaw && before !== this.opts.smoothing > 0) this.rebuild();
      else this.scheduleRedraw(true);
    });
    const log = h('vscode-checkbox' as 'input', { 'data-testid': 'log-scale', label: 'Log scale' }) as unknown as HTMLInputElement;
    log.checked = opts.log;
    log.addEventListener('change', () => {
      this.opts = { ...this.opts, log: log.checked };
      this.onOptions(this.opts);
      this.rebuild();
    });
    const raw = h('vscode-checkbox' as 'input', { 'data-testid': 'show-raw', label: 'Raw under smoothed' }) as unknown as HTMLInputElement;
    raw.checked = opts.showRaw;
    raw.addEventListener('change', () => {
      this.opts = { ...this.opts, showRaw: raw.checked };
      this.onOptions(this.opts);
      this.rebuild();
    });
    const reset = h('vscode-button' as 'button', { secondary: true, 'data-testid': 'reset-zoom' }, 'Reset zoom');
    reset.addEventListener('click', () => {
      this.xRange = undefined;
      this.rebuild();
    });
    this.el.append(
      h('div', { class: 'toolbar' }, h('label', { class: 'control' }, h('span', {}, 'Smoothing (EMA)'), smooth, smoothVal), log, raw, reset),
      h('p', { class: 'hint' }, 'Drag across a chart to zoom, double-click to reset. Dashed lines are eval loss.'),
      this.chartBox,
      this.readout,
      this.summary,
    );
    window.addEventListener('resize', () => this.resize());
  }

  setSources(sources: SourceSnapshot[]): void {
    this.sources = sources.filter((s) => s.kind === 'run' && s.metrics);
    this.rebuild();
  }

  /** New points arrived: redraw at most once per animation frame, keeping the zoom. */
  metricsChanged(): void {
    this.scheduleRedraw(false);
  }

  private scheduleRedraw(resetScales: boolean): void {
    if (this.pendingRedraw) return;
    this.pendingRedraw = requestAnimationFrame(() => {
      this.pendingRedraw = 0;
      if (this.charts.length === 0) return this.rebuild();
      const [loss, lr, gn] = this.buildData();
      this.charts[0].setData(loss, resetScales && !this.xRange);
      this.charts[1]?.setData(lr, !this.xRange);
      this.charts[2]?.setData(gn, !this.xRange);
      if (this.xRange) for (const c of this.charts) c.setScale('x', { min: this.xRange[0], max: this.xRange[1] });
      this.renderSummary();
    });
  }

  private width(): number {
    return Math.max(320, (this.el.clientWidth || document.body.clientWidth || 800) - 24);
  }

  private resize(): void {
    const w = this.width();
    for (const c of this.charts) c.setSize({ width: w, height: c.height });
  }

  /** [loss table, lr table, grad-norm table] aligned on step (uPlot.join). */
  private buildData(): [uPlot.AlignedData, uPlot.AlignedData, uPlot.AlignedData] {
    const lossTables: uPlot.AlignedData[] = [];
    const lrTables: uPlot.AlignedData[] = [];
    const gnTables: uPlot.AlignedData[] = [];
    for (const s of this.sources) {
      const m = s.metrics!;
      const smoothed = ema(m.loss, this.opts.smoothing);
      const idx = decimateIndices(m.loss, MAX_BUCKETS);
      const x = pick(m.step, idx);
      const cols: (number | null)[][] = [pick(smoothed, idx)];
      if (this.opts.showRaw && this.opts.smoothing > 0) cols.push(pick(m.loss, idx));
      // Eval points are sparse: keep every one of them.
      const evalIdx: number[] = [];
      m.evalLoss.forEach((v, i) => v !== null && evalIdx.push(i));
      const evalTable: uPlot.AlignedData = [pick(m.step, evalIdx), pick(m.evalLoss, evalIdx) as number[]];
      lossTables.push([x, ...cols] as uPlot.AlignedData, evalTable);
      lrTables.push([x, pick(m.lr, idx)]);
      gnTables.push([x, pick(m.gradNorm, idx)]);
    }
    const join = (t: uPlot.AlignedData[]): uPlot.AlignedData => (t.length ? uPlot.join(t) : [[]]);
    return [join(lossTables), join(lrTables), join(gnTables)];
  }

  private rebuild(): void {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    clear(this.chartBox);
    if (this.sources.length === 0) {
      this.chartBox.append(h('p', { class: 'empty' }, 'No training runs to show.'));
      this.renderSummary();
      return;
    }
    const [loss, lr, gn] = this.buildData();
    const lossSeries: uPlot.Series[] = [{ label: 'step' }];
    this.sources.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      lossSeries.push({ label: `${s.label} train`, stroke: color, width: 1.5, spanGaps: true, value: (_u, v) => formatValue(v) });
      if (this.opts.showRaw && this.opts.smoothing > 0) lossSeries.push({ label: `${s.label} raw`, stroke: color + '40', width: 1, spanGaps: true, value: (_u, v) => formatValue(v) });
      lossSeries.push({ label: `${s.label} eval`, stroke: color, width: 2, dash: [6, 4], spanGaps: true, points: { show: true, size: 4 }, value: (_u, v) => formatValue(v) });
    });
    const sync = uPlot.sync('loss-lab');
    const fg = cssVar('--fg', '#333');
    const grid = cssVar('--grid', 'rgba(128,128,128,0.2)');
    const common = (title: string, height: number, log: boolean, readout = false): Partial<uPlot.Options> => ({
      title,
      width: this.width(),
      height,
      cursor: { sync: { key: sync.key }, drag: { x: true, y: false } },
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [
        { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } },
        {
          stroke: fg,
          grid: { stroke: grid },
          ticks: { stroke: grid },
          size: 64,
          values: (_u, vals) => vals.map((v) => (v === null ? '' : formatAxis(v))),
          // On a log scale spanning decades, grid lines and labels only at powers of ten.
          filter: log ? (_u, splits) => (splits.filter(isPow10).length >= 2 ? splits.map((v) => (isPow10(v) ? v : null)) : splits) : undefined,
        },
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width > 2) {
              const min = u.posToVal(u.select.left, 'x');
              const max = u.posToVal(u.select.left + u.select.width, 'x');
              this.xRange = [min, max];
            }
          },
        ],
        // Cursors are synced across the three charts; the read-out follows the loss chart.
        setCursor: readout ? [(u) => this.showReadout(u)] : [],
      },
    });
    const lossChart = new uPlot({ ...(common('Loss', 320, this.opts.log, true) as uPlot.Options), series: lossSeries }, loss, this.chartBox);
    lossChart.root.setAttribute('data-testid', 'loss-chart');
    const mini = (title: string, data: uPlot.AlignedData, testId: string): uPlot => {
      const series: uPlot.Series[] = [{ label: 'step' }];
      this.sources.forEach((s, i) => series.push({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.2, spanGaps: true, value: (_u, v) => formatValue(v) }));
      const c = new uPlot({ ...(common(title, 160, false) as uPlot.Options), series }, data, this.chartBox);
      c.root.setAttribute('data-testid', testId);
      return c;
    };
    this.charts = [lossChart, mini('Learning rate', lr, 'lr-chart'), mini('Gradient norm', gn, 'gradnorm-chart')];
    if (this.xRange) for (const c of this.charts) c.setScale('x', { min: this.xRange[0], max: this.xRange[1] });
    for (const c of this.charts) c.root.addEventListener('dblclick', () => (this.xRange = undefined));
    this.renderSummary();
  }

  private showReadout(u: uPlot): void {
    const i = u.cursor.idx;
    if (i === null || i === undefined) return;
    const step = u.data[0][i];
    const parts: string[] = [`step ${step}`];
    u.series.forEach((s, k) => {
      if (k === 0 || !s.show) return;
      const v = u.data[k][i];
      if (v !== null && v !== undefined) parts.push(`${s.label}: ${formatValue(v)}`);
    });
    this.readout.textContent = parts.join('   ');
  }

  private renderSummary(): void {
    clear(this.summary);
    if (this.sources.length === 0) return;
    const table = h('table', { class: 'grid', 'data-testid': 'runs-table' });
    table.append(h('tr', {}, ...['run', 'status', 'step', 'last loss', 'last eval', 'backend', 'folder'].map((t) => h('th', {}, t))));
    this.sources.forEach((s, i) => {
      const m = s.metrics!;
      const n = m.loss.length;
      let lastEval: number | null = null;
      for (let j = n - 1; j >= 0 && lastEval === null; j--) lastEval = m.evalLoss[j];
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = PALETTE[i % PALETTE.length];
      table.append(
        h(
          'tr',
          {},
          h('td', {}, swatch, s.label),
          h('td', { 'data-testid': 'run-status' }, s.run?.status ?? ''),
          h('td', {}, `${n ? m.step[n - 1] : 0} / ${s.run?.totalSteps ?? '?'}`),
          h('td', { 'data-testid': 'last-loss' }, formatValue(n ? m.loss[n - 1] : null)),
          h('td', {}, formatValue(lastEval)),
          h('td', {}, s.run?.backend?.name ?? ''),
          h('td', { class: 'path' }, s.path),
        ),
      );
    });
    this.summary.append(table);
  }
}
