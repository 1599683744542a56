// ΔW heatmaps per module: learned ΔW = s·B·A at a checkpoint (scrubber), next to the true U·V
// (low-rank-recovery), the frozen W and W + ΔW when the base is known. Diverging colours centred
// on zero, a legend, the value under the cursor. Grids are computed in a Web Worker.
import type { Matrix, ModuleFactors, SourceSnapshot } from '../../../src/protocol/webview';
import type { DataSource } from '../dataSource';
import { clear, h, select } from '../dom';
import { divergingRgb, paintGrid } from '../heatmap/colormap';
import type { HeatmapGrid, HeatmapJob } from '../heatmap/compute';
import { computeOffThread, heatmapMode } from '../heatmap/workerClient';
import { formatValue } from '../series';

const MAX_CELLS = 256;

export interface HeatmapSelection {
  sourceId?: string;
  module?: string;
  step?: number;
  mode: 'maxabs' | 'mean';
}

interface Panel {
  title: string;
  testId: string;
  grid: HeatmapGrid;
  /** Shared colour scale with its partner panel. */
  maxAbs: number;
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
  /** Drawn only while its tab shows: a hidden view would request factors for every new checkpoint. */
  private visible = false;
  private stale = true;

  constructor(private readonly data: DataSource, private sel: HeatmapSelection, private readonly onSelection: (s: HeatmapSelection) => void) {
    this.el.append(this.controls, this.status, this.panels);
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
    );
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
      const base: Omit<HeatmapJob, 'scale'> = { rows, cols, maxRows: MAX_CELLS, maxCols: MAX_CELLS, mode: this.sel.mode };
      const factorJob = (extra: Partial<HeatmapJob> = {}): HeatmapJob =>
        f.a && f.b
          ? { ...base, scale: f.scale, a: f.a.data, b: f.b.data, r: f.a.shape[0], ...extra }
          : { ...base, scale: 1, matrix: f.delta!.data, ...extra };
      const refs = source.references.filter((r) => r.module === module);
      const truthRef = refs.find((r) => r.kind === 'truth');
      const baseRef = refs.find((r) => r.kind === 'base');
      const [learned, truth, w, merged] = await Promise.all([
        computeOffThread(factorJob()),
        truthRef ? this.reference(source.id, module, 'truth').then((m) => computeOffThread({ ...base, scale: 1, matrix: m.data })) : undefined,
        baseRef ? this.reference(source.id, module, 'base').then((m) => computeOffThread({ ...base, scale: 1, matrix: m.data })) : undefined,
        baseRef && f.a && f.b ? this.reference(source.id, module, 'base').then((m) => computeOffThread(factorJob({ base: m.data }))) : undefined,
      ]);
      if (seq !== this.drawSeq) return;
      const tCompute = performance.now();
      const deltaScale = Math.max(learned.maxAbs, truth?.maxAbs ?? 0);
      const wScale = Math.max(w?.maxAbs ?? 0, merged?.maxAbs ?? 0);
      const panels: Panel[] = [{ title: `${source.kind === 'run' ? 'Learned ' : ''}${f.a && f.b ? `ΔW = s·B·A (s = ${formatValue(f.scale)})` : `ΔW (${summary.kind})`}${source.kind === 'run' ? ` at step ${step}` : ''}`, testId: 'heatmap-delta', grid: learned, maxAbs: deltaScale }];
      if (truth) panels.push({ title: 'True ΔW = U·V', testId: 'heatmap-truth', grid: truth, maxAbs: deltaScale });
      if (w) panels.push({ title: 'Frozen W', testId: 'heatmap-base', grid: w, maxAbs: wScale });
      if (merged) panels.push({ title: 'W + ΔW', testId: 'heatmap-merged', grid: merged, maxAbs: wScale });
      clear(this.panels);
      for (const p of panels) this.panels.append(this.panel(p));
      const down = learned.blockRows > 1 || learned.blockCols > 1;
      this.status.textContent = `${module}: ${rows}×${cols}${down ? `, shown in ${learned.blockRows}×${learned.blockCols} blocks (${this.sel.mode === 'maxabs' ? 'largest |value|' : 'mean'} per block)` : ''}.`;
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

  private panel(p: Panel): HTMLElement {
    const g = p.grid;
    const canvas = h('canvas', { width: g.gridCols, height: g.gridRows, class: 'heatmap', 'data-testid': p.testId });
    canvas.dataset.maxAbs = String(p.maxAbs);
    canvas.dataset.rows = String(g.rows);
    canvas.dataset.cols = String(g.cols);
    const ctx = canvas.getContext('2d')!;
    const img = ctx.createImageData(g.gridCols, g.gridRows);
    paintGrid(g.grid, p.maxAbs, img.data);
    ctx.putImageData(img, 0, 0);
    // Display size: fit ~300 px on the long side, whole pixels per cell where possible.
    const long = Math.max(g.gridCols, g.gridRows);
    const zoom = long >= 300 ? 300 / long : Math.max(1, Math.floor(300 / long));
    canvas.style.width = `${g.gridCols * zoom}px`;
    canvas.style.height = `${g.gridRows * zoom}px`;
    const readout = h('div', { class: 'readout', 'data-testid': `${p.testId}-readout` }, 'Hover for values');
    canvas.addEventListener('mousemove', (e) => {
      const rect = canvas.getBoundingClientRect();
      const gj = Math.min(g.gridCols - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * g.gridCols)));
      const gi = Math.min(g.gridRows - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * g.gridRows)));
      const v = g.grid[gi * g.gridCols + gj];
      if (g.blockRows === 1 && g.blockCols === 1) readout.textContent = `[${gi}, ${gj}] = ${formatValue(v)}`;
      else {
        const r0 = gi * g.blockRows;
        const c0 = gj * g.blockCols;
        readout.textContent = `rows ${r0}–${Math.min(g.rows, r0 + g.blockRows) - 1}, cols ${c0}–${Math.min(g.cols, c0 + g.blockCols) - 1}: ${formatValue(v)}`;
      }
    });
    return h('figure', { class: 'heatmap-panel' }, h('figcaption', {}, p.title), canvas, this.legend(p.maxAbs, p.testId), readout, h('div', { class: 'hint' }, `min ${formatValue(g.min)}, max ${formatValue(g.max)}${g.nonFinite ? `, ${g.nonFinite} non-finite (grey)` : ''}`));
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
