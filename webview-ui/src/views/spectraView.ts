// Spectra: singular values of ΔW per module (from the r×r Gram matrices, computed by the host),
// at a chosen step and over training steps, with effective rank and top-k energy. The σ-by-index
// chart overlays every source that has the module (a rank sweep side by side); charts use the full
// width, one distinct colour per σ_i, titled axes, and export as PNG and CSV.
import uPlot from 'uplot';
import type { SourceSnapshot, SpectrumSample } from '../../../src/protocol/webview';
import { axisColours, xAxis, yAxis } from '../chartAxes';
import type { DataSource } from '../dataSource';
import { PALETTE, clear, h, select } from '../dom';
import { chartPng, csvLine, legendOf, safeFileName } from '../exportChart';
import { formatValue } from '../series';

/** n clearly distinct colours: the palette, then evenly spaced hues (σ3 and σ7 must not match). */
export function distinctColours(n: number): string[] {
  if (n <= PALETTE.length) return PALETTE.slice(0, n);
  return Array.from({ length: n }, (_, i) => `hsl(${Math.round((360 * i) / n)}, 70%, 52%)`);
}

export class SpectraView {
  readonly el = h('section', { class: 'view spectra-view', 'data-testid': 'spectra-view' });
  private readonly controls = h('div', { class: 'toolbar' });
  private readonly body = h('div', {});
  private charts: uPlot[] = [];
  private sources: SourceSnapshot[] = [];
  private sourceId?: string;
  private module?: string;

  constructor(private readonly data?: DataSource) {
    this.el.append(this.controls, this.body);
  }

  setSources(sources: SourceSnapshot[]): void {
    this.sources = sources.filter((s) => s.spectra.length > 0);
    this.render();
  }

  focus(sourceId: string, module: string): void {
    this.sourceId = sourceId;
    this.module = module;
    this.render();
  }

  /** The theme changed: axes and grid take the new colours. */
  restyle(): void {
    if (this.charts.length) this.render();
  }

  private render(): void {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    clear(this.controls);
    clear(this.body);
    const source = this.sources.find((s) => s.id === this.sourceId) ?? this.sources[0];
    if (!source) {
      this.body.append(h('p', { class: 'empty' }, 'No spectra yet: they appear with the first checkpoint.'));
      return;
    }
    const spectra = source.spectra.find((s) => s.module === this.module) ?? source.spectra[0];
    this.controls.append(
      select('Source', this.sources.map((s) => ({ value: s.id, text: s.label })), source.id, (v) => { this.sourceId = v; this.module = undefined; this.render(); }, 'spectra-source'),
      select('Module', source.spectra.map((s) => ({ value: s.module, text: s.module })), spectra.module, (v) => { this.module = v; this.render(); }, 'spectra-module'),
    );
    const samples = spectra.samples;
    const last = samples[samples.length - 1];
    const { fg } = axisColours();
    const axes: uPlot.Axis[] = [xAxis(), yAxis(true)];
    const width = Math.max(320, (this.el.clientWidth || document.body.clientWidth || 800) - 24);
    const yLabel = { label: 'singular value σ', labelSize: 20, size: 60 };
    // σ_i at the last step, by index i (log scale), for every source that has this module.
    const overlay = this.sources
      .map((s, k) => ({ s, k, sp: s.spectra.find((x) => x.module === spectra.module) }))
      .filter((x): x is { s: SourceSnapshot; k: number; sp: NonNullable<typeof x.sp> } => x.sp !== undefined && x.sp.samples.length > 0);
    const r = last.singularValues.length;
    const rMax = Math.max(...overlay.map((o) => o.sp.samples[o.sp.samples.length - 1].singularValues.length));
    const idx = Array.from({ length: rMax }, (_, i) => i + 1);
    const bySeries: uPlot.Series[] = [{ label: 'index i' }];
    const byData: (number | null)[][] = [idx];
    for (const o of overlay) {
      const lastO = o.sp.samples[o.sp.samples.length - 1];
      const color = PALETTE[o.k % PALETTE.length];
      bySeries.push({ label: `${o.s.label}${o.s.kind === 'run' ? ` (step ${lastO.step})` : ''}`, stroke: color, width: o.s.id === source.id ? 2.5 : 1.5, points: { show: true, size: 6, fill: color } });
      byData.push(idx.map((i) => (lastO.singularValues[i - 1] > 0 ? lastO.singularValues[i - 1] : null)));
    }
    const byIndexBox = h('div', { 'data-testid': 'spectrum-by-index' });
    this.body.append(h('h3', {}, `${spectra.module}: singular values of ΔW${overlay.length > 1 ? ` (${overlay.length} sources overlaid)` : source.kind === 'run' ? ` at step ${last.step}` : ''}`), byIndexBox);
    if (byData.slice(1).some((col) => col.some((v) => v !== null))) {
      const intAxis: uPlot.Axis = { ...axes[0], label: 'singular value index i (largest first)', labelSize: 20, incrs: [1, 2, 4, 8, 16, 32, 64, 128, 256], values: (_u, v) => v.map((x) => String(x)) };
      const title = `Singular values of ΔW: ${spectra.module}`;
      const u = new uPlot({ width, height: 240, legend: { live: false }, series: bySeries, axes: [intAxis, { ...axes[1], ...yLabel }], scales: { x: { time: false }, y: { distr: 3 } } }, byData as uPlot.AlignedData, byIndexBox);
      u.root.dataset.axes = `${intAxis.label}|${yLabel.label}`;
      this.charts.push(u);
      byIndexBox.append(this.exportBar(u, 'spectrum-by-index', title, () => this.byIndexCsv(spectra.module, overlay.map((o) => ({ label: o.s.label, sample: o.sp.samples[o.sp.samples.length - 1] })))));
    } else {
      byIndexBox.append(h('p', { class: 'hint' }, 'ΔW is exactly zero here (B = 0 at initialisation).'));
    }
    // σ_i over steps (runs with more than one sample).
    if (samples.length > 1) {
      const steps = samples.map((s) => s.step);
      const series: uPlot.Series[] = [{ label: 'step' }];
      const data: (number | null)[][] = [steps];
      const colours = distinctColours(r);
      for (let i = 0; i < r; i++) {
        series.push({ label: `σ${i + 1}`, stroke: colours[i], width: 1.5, points: { show: true, size: 4, fill: colours[i] } });
        data.push(samples.map((s) => (s.singularValues[i] > 0 ? s.singularValues[i] : null)));
      }
      series.push({ label: 'effective rank (right axis)', stroke: fg, dash: [4, 4], width: 1.5, scale: 'rank', points: { fill: fg } });
      data.push(samples.map((s) => s.effectiveRank));
      const box = h('div', { 'data-testid': 'spectrum-over-steps' });
      this.body.append(h('h3', {}, `Over training steps (${source.label})`), box);
      const u = new uPlot(
        {
          width,
          height: 260,
          legend: { live: false },
          series,
          axes: [{ ...axes[0], label: 'training step', labelSize: 20 }, { ...axes[1], ...yLabel }, { scale: 'rank', side: 1, stroke: fg, grid: { show: false }, size: 50, label: 'effective rank', labelSize: 20 }],
          scales: { x: { time: false }, y: { distr: 3 }, rank: { range: [0, r] } },
        },
        data as uPlot.AlignedData,
        box,
      );
      u.root.dataset.axes = `training step|${yLabel.label}|effective rank`;
      this.charts.push(u);
      box.append(this.exportBar(u, 'spectrum-over-steps', `Spectrum over steps: ${source.label} ${spectra.module}`, () => this.overStepsCsv(samples)));
    }
    this.body.append(h('h3', {}, 'Per step'), this.sampleTable(samples, r));
    if (source.spectra.length > 1) this.body.append(h('h3', {}, `All modules (last step)`), this.moduleTable(source));
  }

  private exportBar(u: uPlot, testId: string, title: string, csv: () => string): HTMLElement {
    const png = h('button', { class: 'link-button', 'data-testid': `${testId}-png` }, 'Export PNG');
    const csvBtn = h('button', { class: 'link-button', 'data-testid': `${testId}-csv` }, 'Export CSV');
    const fail = (e: unknown) => this.data?.log('warn', `export of ${title} failed: ${e instanceof Error ? e.message : String(e)}`);
    png.addEventListener('click', () => {
      void chartPng(u, title, legendOf(u)).then((bytes) => this.data?.exportFile(safeFileName(title, 'png'), 'image/png', bytes)).catch(fail);
    });
    csvBtn.addEventListener('click', () => void this.data?.exportFile(safeFileName(title, 'csv'), 'text/csv', csv()).catch(fail));
    return h('div', { class: 'export-bar' }, png, csvBtn);
  }

  private byIndexCsv(module: string, rows: { label: string; sample: SpectrumSample }[]): string {
    const lines = [csvLine(['source', 'module', 'step', 'index', 'singular_value'])];
    for (const r of rows) r.sample.singularValues.forEach((v, i) => lines.push(csvLine([r.label, module, r.sample.step, i + 1, v])));
    return lines.join('\n') + '\n';
  }

  private overStepsCsv(samples: SpectrumSample[]): string {
    const r = Math.max(0, ...samples.map((s) => s.singularValues.length));
    const lines = [csvLine(['step', ...Array.from({ length: r }, (_, i) => `sigma_${i + 1}`), 'effective_rank', 'numerical_rank', 'frobenius_norm'])];
    for (const s of samples) lines.push(csvLine([s.step, ...Array.from({ length: r }, (_, i) => s.singularValues[i]), s.effectiveRank, s.numericalRank, s.frobeniusNorm]));
    return lines.join('\n') + '\n';
  }

  private sampleTable(samples: SpectrumSample[], r: number): HTMLElement {
    const ks = [1, 2, 4, 8].filter((k) => k <= r);
    const t = h('table', { class: 'grid', 'data-testid': 'spectrum-table' });
    t.append(h('tr', {}, h('th', {}, 'step'), h('th', {}, '‖ΔW‖_F'), h('th', {}, 'effective rank'), h('th', {}, 'numerical rank'), ...ks.map((k) => h('th', {}, `energy top-${k}`)), h('th', {}, 'σ')));
    for (const s of samples) {
      t.append(
        h(
          'tr',
          {},
          h('td', {}, s.step),
          h('td', {}, formatValue(s.frobeniusNorm)),
          h('td', { 'data-testid': 'effective-rank' }, s.effectiveRank.toFixed(2)),
          h('td', {}, s.numericalRank),
          ...ks.map((k) => h('td', {}, `${(100 * (s.energy[k - 1] ?? 0)).toFixed(1)} %`)),
          h('td', { class: 'mono' }, s.singularValues.map((v) => formatValue(v)).join(', ')),
        ),
      );
    }
    return t;
  }

  private moduleTable(source: SourceSnapshot): HTMLElement {
    const t = h('table', { class: 'grid', 'data-testid': 'spectrum-modules' });
    t.append(h('tr', {}, ...['module', 'r', 'σ₁', '‖ΔW‖_F', 'effective rank', 'energy top-1'].map((x) => h('th', {}, x))));
    for (const sp of source.spectra) {
      const s = sp.samples[sp.samples.length - 1];
      const row = h('tr', { class: 'clickable' }, h('td', { class: 'mono' }, sp.module), h('td', {}, s.singularValues.length), h('td', {}, formatValue(s.singularValues[0])), h('td', {}, formatValue(s.frobeniusNorm)), h('td', {}, s.effectiveRank.toFixed(2)), h('td', {}, `${(100 * (s.energy[0] ?? 0)).toFixed(1)} %`));
      row.addEventListener('click', () => this.focus(source.id, sp.module));
      t.append(row);
    }
    return t;
  }
}
