// Loss curves: train loss (solid) and eval loss (dashed) per run, with EMA smoothing, log scale,
// drag-to-zoom (double-click resets; the range is saved in the webview state, so it survives a
// reload), a tooltip at the cursor, and small learning-rate and grad-norm charts that share the
// cursor. The x axis is the step or the wall-clock time since the run started. Several runs overlay
// with a legend (rank sweeps) beside a table of the hyperparameters that differ between them. Each
// chart exports its data (CSV) and its picture (PNG).
//
// Speed (a 100,000-point run must redraw without a visible pause; the budget is in test/bench/README.md
// and `npm run bench:ui` checks it): the EMA is extended incrementally and
// recomputed only when the weight changes; runs longer than EXACT_MAX points are reduced to min/max
// per pixel column of the visible x range (`bucketMinMax`), so uPlot draws ~2 points per pixel per
// series whatever the run length, and a zoom re-buckets the visible range instead of drawing a
// coarse full-range reduction. The read-out always reads the raw columns.
import uPlot from 'uplot';
import type { SourceSnapshot } from '../../../src/protocol/webview';
import { xAxis, yAxis } from '../chartAxes';
import type { DataSource } from '../dataSource';
import { PALETTE, h, clear } from '../dom';
import { chartPng, csvLine, legendOf, safeFileName } from '../exportChart';
import { IncrementalEma, bucketColumn, bucketize, backendLabel, formatDuration, formatValue, lowerBound, nearestIndex, type Buckets } from '../series';
import { ChartTooltip, type TooltipRow } from '../tooltip';
import { differingHyperparameters } from '../hyperparams';

/** Runs up to this many points are drawn point for point; longer ones per pixel column. */
const EXACT_MAX = 4000;

type Tables = [uPlot.AlignedData, uPlot.AlignedData, uPlot.AlignedData];
type ColumnName = 'train' | 'raw' | 'eval' | 'lr' | 'gradNorm';
type TooltipKind = 'loss' | 'lr' | 'gradNorm';

/**
 * One run's columns as Float64Arrays (extended as points arrive) and its per-pixel reductions,
 * cached by range and data length: a smoothing change re-reduces only the smoothed column, a zoom
 * re-reduces all five.
 */
class RunColumns {
  private readonly arrays = new Map<ColumnName, IncrementalEma>();
  private seconds: { n: number; last: number; col: Float64Array } | undefined;

  /** The x column: steps, or seconds since the run started (elapsedMs / 1000). */
  xs(s: SourceSnapshot, mode: XMode): ArrayLike<number> {
    const m = s.metrics!;
    if (mode === 'step') return m.step;
    const n = m.elapsedMs.length;
    const last = n ? m.elapsedMs[n - 1] : 0;
    if (this.seconds?.n !== n || this.seconds.last !== last) {
      const col = new Float64Array(n);
      for (let i = 0; i < n; i++) col[i] = m.elapsedMs[i] / 1000;
      this.seconds = { n, last, col };
    }
    return this.seconds.col;
  }
  /** Recent bucketings and reductions by key: the full range in both x modes stays cached beside a zoom. */
  private readonly bks = new Map<string, Buckets>();
  private readonly reduced = new Map<string, (number | null)[]>();

  /** The column (smoothed for `train`, as is otherwise; NaN for gaps). */
  column(s: SourceSnapshot, name: ColumnName, smoothing: number): Float64Array {
    let e = this.arrays.get(name);
    if (!e) this.arrays.set(name, (e = new IncrementalEma()));
    const m = s.metrics!;
    // The EMA reads the packed raw column (a Float64Array, NaN for gaps) rather than the host's
    // array of numbers and nulls: recomputing it for a new weight is several times faster so.
    const values = name === 'train' ? this.column(s, 'raw', 0) : name === 'raw' ? m.loss : name === 'eval' ? m.evalLoss : name === 'lr' ? m.lr : m.gradNorm;
    return e.update(values, name === 'train' ? smoothing : 0, m.step);
  }

  /** The host replaced points (a resumed run): start over. */
  reset(): void {
    this.seconds = undefined;
    for (const e of this.arrays.values()) e.reset();
    this.bks.clear();
    this.reduced.clear();
  }

  reduce(s: SourceSnapshot, name: ColumnName, smoothing: number, range: [number, number], buckets: number, mode: XMode): { x: number[]; col: (number | null)[] } {
    const st = this.xs(s, mode);
    const bkKey = `${mode}/${range[0]}/${range[1]}/${buckets}/${st.length}/${st[st.length - 1]}`;
    const bk = recall(this.bks, bkKey) ?? remember(this.bks, bkKey, bucketize(st, range[0], range[1], buckets), 4);
    const key = `${name}/${bkKey}/${name === 'train' ? smoothing : ''}`;
    const col = recall(this.reduced, key) ?? remember(this.reduced, key, bucketColumn(bk, this.column(s, name, smoothing)), 32);
    return { x: bk.x, col };
  }
}

/** A cached value, made the most recently used. */
function recall<T>(cache: Map<string, T>, key: string): T | undefined {
  const v = cache.get(key);
  if (v !== undefined) {
    cache.delete(key);
    cache.set(key, v);
  }
  return v;
}

/** Adds to a small cache, dropping the least recently used entry beyond `max`. */
function remember<T>(cache: Map<string, T>, key: string, value: T, max: number): T {
  cache.set(key, value);
  if (cache.size > max) cache.delete(cache.keys().next().value as string);
  return value;
}

/** NaN (a gap in packed metrics) as null: uPlot's gap marker. */
function gapsAsNull(xs: ArrayLike<number | null>): (number | null)[] {
  const out: (number | null)[] = new Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    out[i] = v === null || !Number.isFinite(v) ? null : v;
  }
  return out;
}

export type XMode = 'step' | 'time';

export interface LossOptions {
  smoothing: number;
  log: boolean;
  showRaw: boolean;
  /** The x axis: training step (default) or wall-clock seconds since the run started. */
  x?: XMode;
  /** The zoomed x range in steps, shared by the three charts; absent: the whole run. */
  xRange?: [number, number];
}

/** A saved range, if it is one: the state may come from an older webview, so nothing is assumed. */
function validRange(r: unknown): [number, number] | undefined {
  if (!Array.isArray(r) || r.length !== 2) return undefined;
  const [lo, hi] = r as unknown[];
  return typeof lo === 'number' && typeof hi === 'number' && Number.isFinite(lo) && Number.isFinite(hi) && lo < hi ? [lo, hi] : undefined;
}

export class LossView {
  readonly el = h('section', { class: 'view loss-view', 'data-testid': 'loss-view' });
  private charts: uPlot[] = [];
  private sources: SourceSnapshot[] = [];
  private readonly chartBox = h('div', { class: 'charts' });
  /** The differing hyperparameters of compared runs, beside the charts. */
  private readonly side = h('aside', { class: 'compare-side', 'data-testid': 'hyperparams' });
  private readonly tooltip = new ChartTooltip('loss-readout');
  /** The chart under the mouse (cursors are synced; only that one shows the tooltip). */
  private hovered: uPlot | undefined;
  private readonly summary = h('div', { class: 'run-summary' });
  private pendingRedraw = 0;
  /** Zoom range kept across live updates. */
  private xRange: [number, number] | undefined;
  /**
   * A range restored from the webview state, applied once there are data to compare it with: a
   * range entirely outside the runs shown (the panel now shows another run) is dropped.
   */
  private restoredRange: [number, number] | undefined;
  /** Columns and reductions per source id. */
  private readonly runs = new Map<string, RunColumns>();
  /** The last tables handed to uPlot and what they were built from. */
  private built: { keys: string[]; tables: Tables; exact: boolean } | undefined;

  constructor(private opts: LossOptions, private readonly onOptions: (o: LossOptions) => void, private readonly data?: DataSource) {
    this.restoredRange = validRange(opts.xRange);
    // Until it is applied or dropped, the restored range stays in what other changes save.
    this.opts = { ...opts, xRange: this.restoredRange };
    const smooth = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: opts.smoothing, 'data-testid': 'smoothing' });
    const smoothVal = h('span', { class: 'value' }, opts.smoothing.toFixed(2));
    smooth.addEventListener('input', () => {
      const before = this.opts.smoothing > 0;
      this.opts = { ...this.opts, smoothing: Number(smooth.value) };
      smoothVal.textContent = this.opts.smoothing.toFixed(2);
      this.onOptions(this.opts);
      // The raw series exists only while smoothing is on: a change of series needs a new chart.
      if (this.opts.showRaw && before !== this.opts.smoothing > 0) this.rebuild();
      else this.redraw();
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
    reset.addEventListener('click', () => this.zoom(undefined));
    const xSel = h('select', { 'data-testid': 'x-axis' }, h('option', { value: 'step' }, 'step'), h('option', { value: 'time' }, 'wall-clock time'));
    xSel.value = this.xMode;
    xSel.addEventListener('change', () => {
      // A zoom range is in the old axis's units: drop it.
      this.xRange = undefined;
      this.restoredRange = undefined;
      this.opts = { ...this.opts, x: xSel.value === 'time' ? 'time' : 'step', xRange: undefined };
      this.onOptions(this.opts);
      this.switchXAxis();
    });
    this.el.append(
      h('div', { class: 'toolbar' }, h('label', { class: 'control' }, h('span', {}, 'Smoothing (EMA)'), smooth, smoothVal), log, raw, h('label', { class: 'control' }, h('span', {}, 'x axis'), xSel), reset),
      h('p', { class: 'hint' }, 'Drag across a chart to zoom, double-click to reset. Dashed lines are eval loss.'),
      h('div', { class: 'loss-layout' }, this.chartBox, this.side),
      this.summary,
    );
    window.addEventListener('resize', () => this.resize());
  }

  setSources(sources: SourceSnapshot[]): void {
    this.sources = sources.filter((s) => s.kind === 'run' && s.metrics);
    // New column arrays (a snapshot, a source update): nothing cached from the old ones is trusted.
    this.runs.clear();
    this.applyRestoredRange();
    this.rebuild();
  }

  /** The theme changed: axes and grid take the new colours. */
  restyle(): void {
    if (this.charts.length) this.rebuild();
  }

  /** New points arrived (`rewritten`: that source's history was replaced from some step on): redraw at most once per animation frame, keeping the zoom. */
  metricsChanged(rewritten?: string): void {
    if (rewritten !== undefined) {
      this.runs.get(rewritten)?.reset();
      this.built = undefined;
    }
    if (this.pendingRedraw) return;
    this.pendingRedraw = requestAnimationFrame(() => {
      this.pendingRedraw = 0;
      this.applyRestoredRange();
      if (this.charts.length === 0) this.rebuild();
      else this.redraw();
      this.renderSummary();
    });
  }

  /** A drag (a range) or a reset (undefined): drawn, and saved in the webview state. */
  private zoom(range: [number, number] | undefined): void {
    this.xRange = range;
    this.restoredRange = undefined;
    this.opts = { ...this.opts, xRange: range };
    this.onOptions(this.opts);
    this.redraw();
  }

  /** The restored range, once the runs have points: kept if it overlaps them, else dropped from the state too. */
  private applyRestoredRange(): void {
    const r = this.restoredRange;
    const full = r && this.fullRange();
    if (!r || !full) return;
    this.restoredRange = undefined;
    if (r[1] > full[0] && r[0] < full[1]) {
      this.xRange = r;
      return;
    }
    this.opts = { ...this.opts, xRange: undefined };
    this.onOptions(this.opts);
  }

  /** New data for the current options and zoom (same series), drawn now. */
  private redraw(): void {
    if (this.pendingRedraw) {
      cancelAnimationFrame(this.pendingRedraw);
      this.pendingRedraw = 0;
    }
    if (this.charts.length === 0) return;
    const { tables, changed } = this.tables();
    const range = this.xRange ?? this.fullRange();
    // Lines 1 px wide take Skia's hairline path, much cheaper to rasterise than 1.5 px strokes when
    // every pixel column holds a min-max segment (test/bench/README.md). Short runs keep a bolder train line.
    const trainWidth = this.built?.exact ? 1.5 : 1;
    for (const sr of this.charts[0].series) if (sr.label?.toString().endsWith(' train')) sr.width = trainWidth;
    // Only charts whose data or range changed are drawn again (a smoothing change redraws the loss
    // chart alone): rasterising the canvases is most of a redraw's cost.
    // What the loss chart was given, for tests: rows per series and the x range shown.
    this.el.dataset.rows = String(tables[0][0].length);
    this.el.dataset.xRange = range ? `${range[0]},${range[1]}` : '';
    this.charts.forEach((c, k) => {
      const moved = range !== undefined && (c.scales.x.min !== range[0] || c.scales.x.max !== range[1]);
      if (!changed[k] && !moved) return;
      c.batch(() => {
        c.setData(tables[k], range === undefined);
        // setScale on x re-ranges the y scales over the visible points.
        if (range) c.setScale('x', { min: range[0], max: range[1] });
      });
    });
  }

  /**
   * The x axis changed: the same uPlot instances take the new axis title and the new tables (both
   * modes' columns and full-range reductions stay cached), instead of being built again, which cost
   * a layout and a second reduction once uPlot had laid the new charts out.
   */
  private switchXAxis(): void {
    if (this.charts.length === 0) return this.rebuild();
    const xLabel = this.xLabel();
    for (const c of this.charts) {
      c.axes[0].label = xLabel;
      c.series[0].label = this.xMode === 'time' ? 'time' : 'step';
      c.root.dataset.axes = [xLabel, ...(c.root.dataset.axes ?? '').split('|').slice(1)].join('|');
    }
    this.redraw();
  }

  private xLabel(): string {
    return this.xMode === 'time' ? 'wall-clock time since start (s)' : 'training step';
  }

  private get xMode(): XMode {
    return this.opts.x === 'time' ? 'time' : 'step';
  }

  private width(): number {
    return Math.max(320, (this.chartBox.clientWidth || this.el.clientWidth || document.body.clientWidth || 800) - 8);
  }

  private resize(): void {
    const w = this.width();
    for (const c of this.charts) c.setSize({ width: w, height: c.height });
    if (this.built && !this.built.exact) this.redraw();
  }

  private fullRange(): [number, number] | undefined {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of this.sources) {
      const st = this.run(s).xs(s, this.xMode);
      if (st.length === 0) continue;
      lo = Math.min(lo, st[0]);
      hi = Math.max(hi, st[st.length - 1]);
    }
    return lo < hi ? [lo, hi] : undefined;
  }

  private run(s: SourceSnapshot): RunColumns {
    let r = this.runs.get(s.id);
    if (!r) this.runs.set(s.id, (r = new RunColumns()));
    return r;
  }

  private smoothed(s: SourceSnapshot): Float64Array {
    return this.run(s).column(s, 'train', this.opts.smoothing);
  }

  private get withRaw(): boolean {
    return this.opts.showRaw && this.opts.smoothing > 0;
  }

  /**
   * [loss, lr, grad-norm] tables. Short runs: every point, aligned on step (uPlot.join), built
   * once per data/smoothing change (a zoom only moves the scale). Long runs: min/max per pixel
   * column of the visible range, rebuilt per zoom.
   */
  private tables(): { tables: Tables; changed: boolean[] } {
    const exact = this.sources.every((s) => s.metrics!.step.length <= EXACT_MAX);
    const range = this.xRange ?? this.fullRange();
    // One bucket per pixel of the plot area (uPlot lays it out in a microtask after construction:
    // until then, the chart width less the 64 px y axis and uPlot's padding).
    const buckets = Math.max(64, this.charts[0]?.over.clientWidth || this.width() - 107);
    const lengths = this.sources.map((s) => `${s.id}:${s.metrics!.step.length}:${s.metrics!.step[s.metrics!.step.length - 1]}`).join(',');
    const base = `${this.xMode}|${lengths}|${exact || !range ? 'exact' : `${range[0]}-${range[1]}/${buckets}`}`;
    const keys = [`${base}|${this.opts.smoothing}|${this.withRaw}`, base, base];
    const old = this.built;
    if (old && keys.every((k, i) => k === old.keys[i])) return { tables: old.tables, changed: [false, false, false] };
    const tables = exact || !range ? this.exactTables() : this.bucketTables(range, buckets);
    const changed = keys.map((k, i) => k !== old?.keys[i]);
    // Unchanged charts keep their table (same data, so no redraw).
    if (old) changed.forEach((c, i) => !c && (tables[i] = old.tables[i]));
    this.built = { keys, tables, exact };
    return { tables, changed };
  }

  private exactTables(): Tables {
    const lossTables: uPlot.AlignedData[] = [];
    const lrTables: uPlot.AlignedData[] = [];
    const gnTables: uPlot.AlignedData[] = [];
    for (const s of this.sources) {
      const m = s.metrics!;
      const x = Array.from(this.run(s).xs(s, this.xMode));
      const cols: (number | null)[][] = [gapsAsNull(this.smoothed(s))];
      if (this.withRaw) cols.push(gapsAsNull(m.loss));
      cols.push(gapsAsNull(m.evalLoss));
      lossTables.push([x, ...cols] as uPlot.AlignedData);
      lrTables.push([x, gapsAsNull(m.lr)] as uPlot.AlignedData);
      gnTables.push([x, gapsAsNull(m.gradNorm)] as uPlot.AlignedData);
    }
    const join = (t: uPlot.AlignedData[]): uPlot.AlignedData => (t.length ? uPlot.join(t) : [[]]);
    return [join(lossTables), join(lrTables), join(gnTables)];
  }

  private bucketTables(range: [number, number], buckets: number): Tables {
    let x: number[] = [];
    const loss: (number | null)[][] = [];
    const lr: (number | null)[][] = [];
    const gn: (number | null)[][] = [];
    for (const s of this.sources) {
      const rc = this.run(s);
      const col = (name: ColumnName) => {
        const r = rc.reduce(s, name, this.opts.smoothing, range, buckets, this.xMode);
        x = r.x;
        return r.col;
      };
      loss.push(col('train'));
      if (this.withRaw) loss.push(col('raw'));
      loss.push(col('eval'));
      lr.push(col('lr'));
      gn.push(col('gradNorm'));
    }
    return [[x, ...loss] as uPlot.AlignedData, [x, ...lr] as uPlot.AlignedData, [x, ...gn] as uPlot.AlignedData];
  }

  private rebuild(): void {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    this.built = undefined;
    clear(this.chartBox);
    if (this.sources.length === 0) {
      this.chartBox.append(h('p', { class: 'empty' }, 'No training runs to show.'));
      this.tooltip.hide();
      this.renderSide();
      this.renderSummary();
      return;
    }
    const [loss, lr, gn] = this.tables().tables;
    const lossSeries: uPlot.Series[] = [{ label: this.xMode === 'time' ? 'time' : 'step' }];
    this.sources.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      // Point markers filled with the line's colour (uPlot's default white fill shows as white
      // dots on dark and high-contrast themes); the faint raw line has none.
      lossSeries.push({ label: `${s.label} train`, stroke: color, width: 1, spanGaps: true, points: { fill: color } });
      // The raw line sits under the smoothed one: faint, but still visible on a dark background.
      if (this.withRaw) lossSeries.push({ label: `${s.label} raw`, stroke: color + '73', width: 1, spanGaps: true, points: { show: false } });
      lossSeries.push({ label: `${s.label} eval`, stroke: color, width: 2, dash: [6, 4], spanGaps: true, points: { show: true, size: 4, fill: color } });
    });
    const sync = uPlot.sync('loss-lab');
    const xLabel = this.xLabel();
    const common = (title: string, yLabel: string, height: number, log: boolean, kind: TooltipKind): Partial<uPlot.Options> => ({
      title,
      width: this.width(),
      height,
      // The read-out below the charts gives exact values; live legend values would be per-pixel ones.
      legend: { live: false },
      cursor: {
        // Cursor moves are shared; drags are not (each chart would zoom again from its own select).
        sync: { key: sync.key, filters: { pub: (type) => type !== 'mousedown' && type !== 'mouseup' } },
        // Zoom is ours: a drag re-buckets the new range; uPlot's own double-click reset is off.
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => null },
      },
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [xAxis({ label: xLabel, labelSize: 20 }), yAxis(log, { label: yLabel, labelSize: 20, size: 60 })],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width <= 2) return;
            const min = u.posToVal(u.select.left, 'x');
            const max = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.zoom([min, max]);
          },
        ],
        // Cursors are synced across the three charts; the tooltip follows the one under the mouse.
        setCursor: [(u) => this.showTooltip(u, kind)],
      },
    });
    const lossBox = h('div', { class: 'chart-box' });
    this.chartBox.append(lossBox);
    const lossChart = new uPlot({ ...(common('Loss', this.lossUnit(), 320, this.opts.log, 'loss') as uPlot.Options), series: lossSeries }, loss, lossBox);
    lossChart.root.setAttribute('data-testid', 'loss-chart');
    // Axis titles are drawn on the canvas: the DOM says what they are (tests, screen readers).
    lossChart.root.dataset.axes = `${xLabel}|${this.lossUnit()}`;
    lossBox.append(this.exportBar(lossChart, 'loss-chart', 'Loss'));
    const mini = (title: string, yLabel: string, data: uPlot.AlignedData, testId: string, kind: TooltipKind): uPlot => {
      const series: uPlot.Series[] = [{ label: this.xMode === 'time' ? 'time' : 'step' }];
      this.sources.forEach((s, i) => series.push({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1, spanGaps: true, points: { fill: PALETTE[i % PALETTE.length] } }));
      const box = h('div', { class: 'chart-box' });
      this.chartBox.append(box);
      const c = new uPlot({ ...(common(title, yLabel, 160, false, kind) as uPlot.Options), series }, data, box);
      c.root.setAttribute('data-testid', testId);
      c.root.dataset.axes = `${xLabel}|${yLabel}`;
      box.append(this.exportBar(c, testId, title));
      return c;
    };
    this.charts = [lossChart, mini('Learning rate', 'learning rate', lr, 'lr-chart', 'lr'), mini('Gradient norm', 'gradient L2 norm', gn, 'gradnorm-chart', 'gradNorm')];
    for (const c of this.charts) {
      c.over.addEventListener('dblclick', () => this.zoom(undefined));
      c.over.addEventListener('mouseenter', () => (this.hovered = c));
      c.over.addEventListener('mouseleave', () => {
        if (this.hovered === c) this.hovered = undefined;
        this.tooltip.hide();
      });
    }
    this.renderSide();
    this.redraw();
    // uPlot lays the plot out in a microtask: then the buckets match its pixel columns exactly.
    queueMicrotask(() => this.charts.length && this.redraw());
    this.renderSummary();
  }

  /** The loss's unit: cross-entropy for causal-LM runs, mean squared error for the built-in experiments. */
  private lossUnit(): string {
    const kinds = new Set(this.sources.map((s) => (s.config as { kind?: string } | undefined)?.kind));
    if (kinds.size === 1 && kinds.has('causal-lm')) return 'loss (cross-entropy, nats/token)';
    if (kinds.size > 0 && !kinds.has('causal-lm') && !kinds.has(undefined)) return 'loss (mean squared error)';
    return 'loss';
  }

  /**
   * Exact values of every run at the x nearest the cursor (never the per-pixel reduction), in a
   * tooltip at the cursor, sorted by value, in the runs' colours.
   */
  private showTooltip(u: uPlot, kind: TooltipKind): void {
    const left = u.cursor.left;
    if (u !== this.hovered) return;
    if (left === undefined || left < 0 || this.sources.length === 0) {
      this.tooltip.hide();
      return;
    }
    const idx = u.cursor.idx;
    const at = this.built?.exact && idx !== null && idx !== undefined ? (u.data[0][idx] as number) : u.posToVal(left, 'x');
    // Eval points are sparse: the one nearest the cursor within a pixel or two.
    const slack = Math.abs(u.posToVal(left + 2, 'x') - at);
    // Series hidden from the legend are left out of the tooltip too.
    const shown = (label: string) => u.series.find((x) => x.label === label)?.show !== false;
    const rows: TooltipRow[] = [];
    let header = '';
    this.sources.forEach((s, k) => {
      const m = s.metrics!;
      if (m.step.length === 0) return;
      const xs = this.run(s).xs(s, this.xMode);
      const i = nearestIndex(xs, at);
      if (!header) header = `step ${m.step[i]}${this.xMode === 'time' ? ` · ${formatDuration(m.elapsedMs[i])}` : ''}`;
      const color = PALETTE[k % PALETTE.length];
      if (kind === 'lr' || kind === 'gradNorm') {
        if (shown(s.label)) rows.push({ label: s.label, value: kind === 'lr' ? m.lr[i] : m.gradNorm[i], color });
        return;
      }
      if (shown(`${s.label} train`)) rows.push({ label: `${s.label} train`, value: this.smoothed(s)[i], color });
      if (this.withRaw && shown(`${s.label} raw`)) rows.push({ label: `${s.label} raw`, value: m.loss[i], color: color + '99' });
      if (!shown(`${s.label} eval`)) return;
      let e = -1;
      for (let j = lowerBound(xs, at - slack); j < xs.length && xs[j] <= at + slack; j++) {
        if (m.evalLoss[j] !== null && Number.isFinite(m.evalLoss[j]) && (e < 0 || Math.abs(xs[j] - at) < Math.abs(xs[e] - at))) e = j;
      }
      if (e >= 0) rows.push({ label: `${s.label} eval`, value: m.evalLoss[e], color, dashed: true, note: m.step[e] === m.step[i] ? undefined : `(step ${m.step[e]})` });
    });
    const box = u.over.getBoundingClientRect();
    this.tooltip.show(box.left + left, box.top + (u.cursor.top ?? 0), header, rows);
  }

  /** PNG and CSV buttons under a chart. */
  private exportBar(u: uPlot, testId: string, title: string): HTMLElement {
    const png = h('button', { class: 'link-button', 'data-testid': `${testId}-png`, title: `Save "${title}" as a PNG image` }, 'Export PNG');
    const csv = h('button', { class: 'link-button', 'data-testid': `${testId}-csv`, title: `Save the data of "${title}" as CSV` }, 'Export CSV');
    const stem = `${title}-${this.sources.map((s) => s.label).join('-')}`;
    const run = (what: string, f: () => Promise<unknown>) =>
      void f().catch((e: unknown) => this.data?.log('warn', `export of ${title} as ${what} failed: ${e instanceof Error ? e.message : String(e)}`));
    png.addEventListener('click', () =>
      run('PNG', async () => {
        await this.data?.exportFile(safeFileName(stem, 'png'), 'image/png', await chartPng(u, title, legendOf(u)));
      }),
    );
    csv.addEventListener('click', () => run('CSV', async () => this.data?.exportFile(safeFileName(stem, 'csv'), 'text/csv', this.csv(testId))));
    return h('div', { class: 'export-bar' }, png, csv);
  }

  /** A chart's data, every point (not the per-pixel reduction): one row per run and step. */
  csv(testId: string): string {
    const lines: string[] = [];
    const cols = testId === 'lr-chart' ? ['lr'] : testId === 'gradnorm-chart' ? ['grad_norm'] : ['loss', 'loss_smoothed', 'eval_loss'];
    lines.push(csvLine(['run', 'step', 'elapsed_s', ...cols]));
    for (const s of this.sources) {
      const m = s.metrics!;
      const smooth = testId === 'loss-chart' ? this.smoothed(s) : undefined;
      for (let i = 0; i < m.step.length; i++) {
        const vals = testId === 'lr-chart' ? [m.lr[i]] : testId === 'gradnorm-chart' ? [m.gradNorm[i]] : [m.loss[i], smooth![i], m.evalLoss[i]];
        lines.push(csvLine([s.label, m.step[i], m.elapsedMs[i] / 1000, ...vals]));
      }
    }
    return lines.join('\n') + '\n';
  }

  /** The hyperparameters that differ between the runs shown (nothing for a single run). */
  private renderSide(): void {
    clear(this.side);
    const runs = this.sources.filter((s) => s.config);
    const rows = runs.length > 1 ? differingHyperparameters(runs.map((s) => s.config)) : [];
    this.side.hidden = runs.length < 2;
    if (runs.length < 2) return;
    this.side.append(h('h3', {}, 'Hyperparameters that differ'));
    if (rows.length === 0) {
      this.side.append(h('p', { class: 'hint' }, 'None: these runs share every setting.'));
      return;
    }
    const t = h('table', { class: 'grid' });
    const head = h('tr', {}, h('th', {}, 'setting'));
    runs.forEach((s) => {
      const sw = h('span', { class: 'swatch' });
      sw.style.background = PALETTE[this.sources.indexOf(s) % PALETTE.length];
      head.append(h('th', {}, sw, s.label));
    });
    t.append(head);
    for (const r of rows) t.append(h('tr', { 'data-key': r.key }, h('td', { class: 'mono' }, r.key), ...r.values.map((v) => h('td', {}, v ?? '—'))));
    this.side.append(t);
  }

  private renderSummary(): void {
    clear(this.summary);
    if (this.sources.length === 0) return;
    const table = h('table', { class: 'grid', 'data-testid': 'runs-table' });
    table.append(h('tr', {}, ...['run', 'status', 'started', 'duration', 'step', 'last loss', 'last eval', 'backend', 'folder'].map((t) => h('th', {}, t))));
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
          // Same-named runs (a sweep) are told apart by when they ran.
          h('td', { 'data-testid': 'run-started' }, s.run?.createdAt ? s.run.createdAt.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC') : ''),
          h('td', { 'data-testid': 'run-duration' }, n ? formatDuration(m.elapsedMs[n - 1]) : ''),
          h('td', {}, `${n ? m.step[n - 1] : 0} / ${s.run?.totalSteps ?? '?'}`),
          h('td', { 'data-testid': 'last-loss' }, formatValue(n ? m.loss[n - 1] : null)),
          h('td', {}, formatValue(lastEval)),
          h('td', { title: s.run?.backend ? [s.run.backend.kernels, ...s.run.backend.notes].filter(Boolean).join('\n') : '' }, backendLabel(s.run?.backend)),
          h('td', { class: 'path' }, s.path),
        ),
      );
    });
    this.summary.append(table);
  }
}

