// ΔW heatmaps per module: learned ΔW = s·B·A at a checkpoint (scrubber), next to the true U·V and
// the error learned − true (low-rank-recovery), the frozen W and W + ΔW when the base is known.
// Diverging colours centred on zero, a colour scale per panel (or shared between panels of the same
// kind, as an option), the value under the cursor. The panels fill the pane; the wheel zooms (about
// the cursor), a drag pans, a double-click resets, all panels together: a zoomed window is computed
// again at full detail (down to single values), not magnified. Grids are computed in a Web Worker.
import type { Matrix, ModuleFactors, SourceSnapshot } from '../../../src/protocol/webview';
import type { DataSource } from '../dataSource';
import { clear, h, select } from '../dom';
import { divergingRgb, paintGrid } from '../heatmap/colormap';
import type { HeatmapGrid, HeatmapJob } from '../heatmap/compute';
import { computeOffThread, heatmapMode } from '../heatmap/workerClient';
import { formatValue } from '../series';
import { panWindow, sliceMatrix, zoomWindow, type MatrixWindow } from '../heatmap/window';

const MAX_CELLS = 256;

export interface HeatmapSelection {
  sourceId?: string;
  module?: string;
  step?: number;
  mode: 'maxabs' | 'mean';
  /** One colour scale for ΔW, true ΔW and the error (and one for W, W + ΔW); default: one per panel. */
  sharedScale?: boolean;
}

interface Panel {
  title: string;
  testId: string;
  grid: HeatmapGrid;
  /** The colour scale: ±maxAbs. */
  maxAbs: number;
  window: MatrixWindow;
}

export class HeatmapView {
  readonly el = h('section', { class: 'view heatmap-view', 'data-testid': 'heatmap-view' });
  private readonly controls = h('div', { class: 'toolbar' });
  private readonly panels = h('div', { class: 'heatmaps' });
  private readonly status = h('p', { class: 'hint', 'data-testid': 'heatmap-status' });
  private sources: SourceSnapshot[] = [];
  private readonly factorCache = new Map<string, Promise<ModuleFactors[]>>();
  private readonly refCache = new Map<string, Promise<Matrix>>();
  private drawSeq = 0;
  /** The zoomed window and what it belongs to (a new module or source starts whole). */
  private window: { key: string; w: MatrixWindow } | undefined;
  /** Colour scales of the whole matrices, so zooming does not change the colours. */
  private readonly fullScale = new Map<string, number>();
  /** Drawn only while its tab shows: a hidden view would request factors for every new checkpoint. */
  private visible = false;
  private stale = true;
  /** What the panels on screen were laid out for: a resize sizes them again from this. */
  private drawn: { n: number; gridRows: number; gridCols: number } | undefined;

  constructor(private readonly data: DataSource, private sel: HeatmapSelection, private readonly onSelection: (s: HeatmapSelection) => void) {
    this.el.append(this.controls, this.status, this.panels);
    // The panels fill the pane, but the grids do not depend on its size: a resize (the page sends
    // one on every tab switch) only sizes the canvases again. Computing the grids again would
    // replace the canvases and show 'Computing…' after the view has said it is ready.
    let resized = 0;
    window.addEventListener('resize', () => {
      cancelAnimationFrame(resized);
      resized = requestAnimationFrame(() => this.relayout());
    });
  }

  setSources(sources: SourceSnapshot[]): void {
    this.sources = sources.filter((s) => s.modules.length > 0 && s.checkpoints.length > 0);
    this.renderControls();
    this.redraw();
  }

  /** Show one module of one source (from the adapter view's table). */
  focus(sourceId: string, module: string): void {
    this.sel = { ...this.sel, sourceId, module, step: undefined };
    this.renderControls();
    this.redraw();
  }

  /** The tab was shown or hidden. */
  setVisible(visible: boolean): void {
    this.visible = visible;
    if (visible && this.stale) this.redraw();
    else if (visible) this.relayout();
  }

  /** Sizes the panels on screen to the pane (no new grids). */
  private relayout(): void {
    if (!this.visible || !this.drawn) return;
    const size = this.panelSize(this.drawn.n, this.drawn.gridRows, this.drawn.gridCols);
    for (const viewport of this.panels.querySelectorAll<HTMLElement>('.heatmap-viewport')) {
      for (const el of [viewport, viewport.querySelector<HTMLElement>('canvas.heatmap')]) {
        if (!el) continue;
        el.style.width = `${size.width}px`;
        el.style.height = `${size.height}px`;
      }
    }
  }

  private redraw(): void {
    this.stale = !this.visible;
    if (this.visible) void this.draw();
  }

  private current(): { source?: SourceSnapshot; module?: string; step?: number } {
    const source = this.sources.find((s) => s.id === this.sel.sourceId) ?? this.sources[0];
    if (!source) return {};
    const drawable = source.modules.filter((m) => m.drawable !== false);
    const module = drawable.find((m) => m.name === this.sel.module)?.name ?? drawable[0]?.name;
    const step = this.sel.step !== undefined && source.checkpoints.includes(this.sel.step) ? this.sel.step : source.checkpoints[source.checkpoints.length - 1];
    return { source, module, step };
  }

  private update(patch: Partial<HeatmapSelection>): void {
    this.sel = { ...this.sel, ...patch };
    this.onSelection(this.sel);
    this.renderControls();
    this.redraw();
  }

  private renderControls(): void {
    clear(this.controls);
    const { source, module, step } = this.current();
    if (!source) return;
    this.controls.append(
      select('Source', this.sources.map((s) => ({ value: s.id, text: s.label })), source.id, (v) => this.update({ sourceId: v, module: undefined, step: undefined }), 'heatmap-source'),
      select('Module', source.modules.filter((m) => m.drawable !== false).map((m) => ({ value: m.name, text: `${m.name} (${m.outFeatures}×${m.inFeatures}, r=${m.r})` })), module ?? '', (v) => this.update({ module: v }), 'heatmap-module'),
      select('Blocks', [{ value: 'maxabs', text: 'largest |value|' }, { value: 'mean', text: 'mean' }], this.sel.mode, (v) => this.update({ mode: v as HeatmapSelection['mode'] }), 'heatmap-mode'),
      select('Colour scale', [{ value: 'panel', text: 'one per panel' }, { value: 'shared', text: 'shared by panels of a kind' }], this.sel.sharedScale ? 'shared' : 'panel', (v) => this.update({ sharedScale: v === 'shared' }), 'heatmap-scale'),
    );
    const reset = h('button', { class: 'link-button', 'data-testid': 'heatmap-reset-zoom' }, 'Whole matrix');
    reset.addEventListener('click', () => this.setWindow(undefined));
    this.controls.append(reset);
    if (source.checkpoints.length > 1) {
      const idx = Math.max(0, source.checkpoints.indexOf(step ?? -1));
      const range = h('input', { type: 'range', min: 0, max: source.checkpoints.length - 1, step: 1, value: idx, 'data-testid': 'checkpoint-scrubber' });
      const label = h('span', { class: 'value', 'data-testid': 'checkpoint-step' }, `step ${step}`);
      range.addEventListener('input', () => {
        const s = source.checkpoints[Number(range.value)];
        label.textContent = `step ${s}`;
        this.sel = { ...this.sel, step: s };
        this.onSelection(this.sel);
        this.redraw();
      });
      this.controls.append(h('label', { class: 'control' }, h('span', {}, 'Checkpoint'), range, label));
    } else if (source.kind === 'run') {
      this.controls.append(h('span', { class: 'hint' }, `step ${step}`));
    }
  }

  private factors(sourceId: string, step: number): Promise<ModuleFactors[]> {
    const key = `${sourceId}@${step}`;
    let p = this.factorCache.get(key);
    if (!p) {
      p = this.data.factors(sourceId, step);
      p.catch(() => this.factorCache.delete(key));
      this.factorCache.set(key, p);
    }
    return p;
  }

  private reference(sourceId: string, module: string, kind: 'base' | 'truth'): Promise<Matrix> {
    const key = `${sourceId}/${module}/${kind}`;
    let p = this.refCache.get(key);
    if (!p) {
      p = this.data.reference(sourceId, module, kind);
      p.catch(() => this.refCache.delete(key));
      this.refCache.set(key, p);
    }
    return p;
  }

  /** A checkpoint was added or replaced: forget cached factors of that source. */
  invalidate(sourceId: string): void {
    for (const k of [...this.factorCache.keys()]) if (k.startsWith(`${sourceId}@`)) this.factorCache.delete(k);
  }

  private async draw(): Promise<void> {
    const seq = ++this.drawSeq;
    const t0 = performance.now();
    const { source, module, step } = this.current();
    if (!source || !module || step === undefined) {
      clear(this.panels);
      this.drawn = undefined;
      this.status.textContent = this.sources.length ? '' : 'No ΔW to draw yet: heatmaps appear with the first checkpoint.';
      return;
    }
    this.status.textContent = 'Computing…';
    this.el.dataset.ready = 'false';
    try {
      const all = await this.factors(source.id, step);
      const tFactors = performance.now();
      const f = all.find((x) => x.module === module);
      if (!f) throw new Error(`module ${module} has no factors at step ${step}`);
      const summary = source.modules.find((m) => m.name === module)!;
      const rows = summary.outFeatures;
      const cols = summary.inFeatures;
      const winKey = `${source.id}/${module}`;
      if (this.window?.key !== winKey) this.window = undefined;
      const win = this.window?.w ?? { r0: 0, r1: rows, c0: 0, c1: cols };
      const whole = win.r0 === 0 && win.c0 === 0 && win.r1 === rows && win.c1 === cols;
      const wr = win.r1 - win.r0;
      const wc = win.c1 - win.c0;
      const base: Omit<HeatmapJob, 'scale'> = { rows: wr, cols: wc, maxRows: MAX_CELLS, maxCols: MAX_CELLS, mode: this.sel.mode };
      const r = f.a?.shape[0] ?? 0;
      // The window's factors: B's rows r0..r1 (contiguous), A's columns c0..c1.
      const aWin = f.a ? sliceMatrix(f.a.data, r, cols, { r0: 0, r1: r, c0: win.c0, c1: win.c1 }) : undefined;
      const bWin = f.b ? f.b.data.subarray(win.r0 * r, win.r1 * r) : undefined;
      const factorJob = (extra: Partial<HeatmapJob> = {}): HeatmapJob =>
        aWin && bWin ? { ...base, scale: f.scale, a: aWin, b: bWin, r, ...extra } : { ...base, scale: 1, matrix: sliceMatrix(f.delta!.data, rows, cols, win), ...extra };
      const sub = (m: Float32Array) => sliceMatrix(m, rows, cols, win);
      const refs = source.references.filter((x) => x.module === module);
      const truthRef = refs.find((x) => x.kind === 'truth');
      const baseRef = refs.find((x) => x.kind === 'base');
      const truthM = truthRef ? this.reference(source.id, module, 'truth').then((m) => sub(m.data)) : undefined;
      const baseM = baseRef ? this.reference(source.id, module, 'base').then((m) => sub(m.data)) : undefined;
      const [learned, truth, error, w, merged] = await Promise.all([
        computeOffThread(factorJob()),
        truthM?.then((m) => computeOffThread({ ...base, scale: 1, matrix: m })),
        // learned − true: −U·V as the "base" of s·B·A (or the difference of two dense matrices).
        truthM?.then((m) => {
          const neg = Float32Array.from(m, (v) => -v);
          if (aWin && bWin) return computeOffThread(factorJob({ base: neg }));
          const d = sliceMatrix(f.delta!.data, rows, cols, win);
          for (let i = 0; i < neg.length; i++) neg[i] += d[i];
          return computeOffThread({ ...base, scale: 1, matrix: neg });
        }),
        baseM?.then((m) => computeOffThread({ ...base, scale: 1, matrix: m })),
        baseM && aWin && bWin ? baseM.then((m) => computeOffThread(factorJob({ base: m }))) : undefined,
      ]);
      if (seq !== this.drawSeq) return;
      const tCompute = performance.now();
      // Colour scales from the whole matrices (kept while zoomed), one per panel unless shared.
      const scaleOf = (id: string, g: HeatmapGrid | undefined) => {
        if (!g) return 0;
        const key = `${winKey}@${step}/${id}/${this.sel.mode}`;
        if (whole) this.fullScale.set(key, g.maxAbs);
        return this.fullScale.get(key) ?? g.maxAbs;
      };
      const own = { delta: scaleOf('delta', learned), truth: scaleOf('truth', truth), error: scaleOf('error', error), base: scaleOf('base', w), merged: scaleOf('merged', merged) };
      const deltaShared = Math.max(own.delta, own.truth, own.error);
      const wShared = Math.max(own.base, own.merged);
      const pick = (mine: number, shared: number) => (this.sel.sharedScale ? shared : mine);
      const panels: Panel[] = [{ title: `${source.kind === 'run' ? 'Learned ' : ''}${f.a && f.b ? `ΔW = s·B·A (s = ${formatValue(f.scale)})` : `ΔW (${summary.kind})`}${source.kind === 'run' ? ` at step ${step}` : ''}`, testId: 'heatmap-delta', grid: learned, maxAbs: pick(own.delta, deltaShared), window: win }];
      if (truth) panels.push({ title: 'True ΔW = U·V', testId: 'heatmap-truth', grid: truth, maxAbs: pick(own.truth, deltaShared), window: win });
      if (error) panels.push({ title: 'Error: learned − true', testId: 'heatmap-error', grid: error, maxAbs: pick(own.error, deltaShared), window: win });
      if (w) panels.push({ title: 'Frozen W', testId: 'heatmap-base', grid: w, maxAbs: pick(own.base, wShared), window: win });
      if (merged) panels.push({ title: 'W + ΔW', testId: 'heatmap-merged', grid: merged, maxAbs: pick(own.merged, wShared), window: win });
      clear(this.panels);
      const size = this.panelSize(panels.length, learned.gridRows, learned.gridCols);
      for (const p of panels) this.panels.append(this.panel(p, size, rows, cols));
      this.drawn = { n: panels.length, gridRows: learned.gridRows, gridCols: learned.gridCols };
      const down = learned.blockRows > 1 || learned.blockCols > 1;
      const shown = whole ? '' : `, showing rows ${win.r0}–${win.r1 - 1}, cols ${win.c0}–${win.c1 - 1}`;
      this.status.textContent = `${module}: ${rows}×${cols}${shown}${down ? `, shown in ${learned.blockRows}×${learned.blockCols} blocks (${this.sel.mode === 'maxabs' ? 'largest |value|' : 'mean'} per block)` : ''}. Wheel to zoom, drag to pan, double-click for the whole matrix.`;
      this.el.dataset.window = `${win.r0},${win.r1},${win.c0},${win.c1}`;
      this.el.dataset.compute = heatmapMode;
      // Selection to painted canvases, read by the UI bench.
      const t1 = performance.now();
      this.el.dataset.drawMs = (t1 - t0).toFixed(1);
      this.el.dataset.drawPhases = `factors ${(tFactors - t0).toFixed(1)}, compute ${(tCompute - tFactors).toFixed(1)}, paint ${(t1 - tCompute).toFixed(1)}`;
      this.el.dataset.ready = 'true';
    } catch (e) {
      if (seq !== this.drawSeq) return;
      this.status.textContent = `Cannot draw ${module} at step ${step}: ${(e as Error).message}`;
      this.data.log('warn', this.status.textContent);
    }
  }

  /** Display size of each panel: the pane's width in one or two columns, the matrix's aspect kept, at most 70 % of the window's height. */
  private panelSize(n: number, gridRows: number, gridCols: number): { width: number; height: number } {
    const pane = Math.max(320, (this.el.clientWidth || document.body.clientWidth || 1000) - 8);
    const columns = n > 1 && pane >= 760 ? 2 : 1;
    const gap = 20;
    let width = Math.floor((pane - gap * (columns - 1)) / columns);
    let height = Math.round((width * gridRows) / gridCols);
    const maxH = Math.max(240, Math.floor(window.innerHeight * 0.7));
    if (height > maxH) {
      height = maxH;
      width = Math.max(1, Math.round((height * gridCols) / gridRows));
    }
    return { width, height };
  }

  /** Zooms or pans every panel to `w` (undefined: the whole matrix) and draws again. */
  private setWindow(w: MatrixWindow | undefined): void {
    const { source, module } = this.current();
    if (!source || !module) return;
    this.window = w ? { key: `${source.id}/${module}`, w } : undefined;
    this.redraw();
  }

  private panel(p: Panel, size: { width: number; height: number }, rows: number, cols: number): HTMLElement {
    const g = p.grid;
    const win = p.window;
    const canvas = h('canvas', { width: g.gridCols, height: g.gridRows, class: 'heatmap', 'data-testid': p.testId });
    canvas.dataset.maxAbs = String(p.maxAbs);
    canvas.dataset.rows = String(rows);
    canvas.dataset.cols = String(cols);
    const ctx = canvas.getContext('2d')!;
    const img = ctx.createImageData(g.gridCols, g.gridRows);
    paintGrid(g.grid, p.maxAbs, img.data);
    ctx.putImageData(img, 0, 0);
    canvas.style.width = `${size.width}px`;
    canvas.style.height = `${size.height}px`;
    const readout = h('div', { class: 'readout', 'data-testid': `${p.testId}-readout` }, 'Hover for values');
    /** The matrix cell under a client point. */
    const cellAt = (clientX: number, clientY: number) => {
      const rect = canvas.getBoundingClientRect();
      const gj = Math.min(g.gridCols - 1, Math.max(0, Math.floor(((clientX - rect.left) / rect.width) * g.gridCols)));
      const gi = Math.min(g.gridRows - 1, Math.max(0, Math.floor(((clientY - rect.top) / rect.height) * g.gridRows)));
      return { gi, gj, i: win.r0 + ((clientY - rect.top) / rect.height) * (win.r1 - win.r0), j: win.c0 + ((clientX - rect.left) / rect.width) * (win.c1 - win.c0) };
    };
    canvas.addEventListener('mousemove', (e) => {
      const { gi, gj } = cellAt(e.clientX, e.clientY);
      const v = g.grid[gi * g.gridCols + gj];
      if (g.blockRows === 1 && g.blockCols === 1) readout.textContent = `[${win.r0 + gi}, ${win.c0 + gj}] = ${formatValue(v)}`;
      else {
        const r0 = win.r0 + gi * g.blockRows;
        const c0 = win.c0 + gj * g.blockCols;
        readout.textContent = `rows ${r0}–${Math.min(win.r1, r0 + g.blockRows) - 1}, cols ${c0}–${Math.min(win.c1, c0 + g.blockCols) - 1}: ${formatValue(v)}`;
      }
    });
    canvas.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const { i, j } = cellAt(e.clientX, e.clientY);
        this.setWindow(zoomWindow(win, rows, cols, e.deltaY < 0 ? 1.5 : 1 / 1.5, i, j));
      },
      { passive: false },
    );
    // Drag to pan: the canvas follows the mouse at once; the window is computed again on release.
    canvas.addEventListener('mousedown', (e) => {
      if (e.button !== 0) return;
      const x0 = e.clientX;
      const y0 = e.clientY;
      const rect = canvas.getBoundingClientRect();
      const move = (m: MouseEvent) => (canvas.style.transform = `translate(${m.clientX - x0}px, ${m.clientY - y0}px)`);
      const up = (m: MouseEvent) => {
        window.removeEventListener('mousemove', move);
        window.removeEventListener('mouseup', up);
        canvas.style.transform = '';
        const di = (-(m.clientY - y0) / rect.height) * (win.r1 - win.r0);
        const dj = (-(m.clientX - x0) / rect.width) * (win.c1 - win.c0);
        if (Math.abs(m.clientX - x0) + Math.abs(m.clientY - y0) > 3) this.setWindow(panWindow(win, rows, cols, di, dj));
      };
      window.addEventListener('mousemove', move);
      window.addEventListener('mouseup', up);
    });
    canvas.addEventListener('dblclick', () => this.setWindow(undefined));
    const viewport = h('div', { class: 'heatmap-viewport' }, canvas);
    viewport.style.width = `${size.width}px`;
    viewport.style.height = `${size.height}px`;
    // The heatmap's axes: W is [k, d], rows are output features, columns input features.
    const axes = h('div', { class: 'hint', 'data-testid': `${p.testId}-axes` }, `rows ${win.r0}–${win.r1 - 1}: output features (k = ${rows}) · columns ${win.c0}–${win.c1 - 1}: input features (d = ${cols})`);
    return h('figure', { class: 'heatmap-panel' }, h('figcaption', {}, p.title), viewport, axes, this.legend(p.maxAbs, p.testId), readout, h('div', { class: 'hint' }, `min ${formatValue(g.min)}, max ${formatValue(g.max)}${g.nonFinite ? `, ${g.nonFinite} non-finite (grey)` : ''}${win.r1 - win.r0 < rows || win.c1 - win.c0 < cols ? ' in this window' : ''}`));
  }

  private legend(maxAbs: number, testId: string): HTMLElement {
    const c = h('canvas', { width: 200, height: 10, class: 'legend-bar' });
    const ctx = c.getContext('2d')!;
    const img = ctx.createImageData(200, 10);
    for (let x = 0; x < 200; x++) {
      const [r, g, b] = divergingRgb(((x + 0.5) / 200) * 2 - 1, 1);
      for (let y = 0; y < 10; y++) img.data.set([r, g, b, 255], (y * 200 + x) * 4);
    }
    ctx.putImageData(img, 0, 0);
    return h(
      'div',
      { class: 'legend', 'data-testid': `${testId}-legend` },
      c,
      h('div', { class: 'legend-labels' }, h('span', { 'data-testid': 'legend-min' }, formatValue(-maxAbs)), h('span', {}, '0'), h('span', { 'data-testid': 'legend-max' }, formatValue(maxAbs))),
    );
  }
}
