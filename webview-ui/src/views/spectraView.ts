// Spectra: singular values of ΔW per module (from the r×r Gram matrices, computed by the host),
// at a chosen step and over training steps, with effective rank and top-k energy.
import uPlot from 'uplot';
import type { SourceSnapshot, SpectrumSample } from '../../../src/protocol/webview';
import { axisColours, xAxis, yAxis } from '../chartAxes';
import { PALETTE, clear, h, select } from '../dom';
import { formatValue } from '../series';

export class SpectraView {
  readonly el = h('section', { class: 'view spectra-view', 'data-testid': 'spectra-view' });
  private readonly controls = h('div', { class: 'toolbar' });
  private readonly body = h('div', {});
  private charts: uPlot[] = [];
  private sources: SourceSnapshot[] = [];
  private sourceId?: string;
  private module?: string;

  constructor() {
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
    const width = Math.max(320, Math.min(700, (this.el.clientWidth || 800) - 24));
    // σ_i at the last step, by index i (log scale).
    const r = last.singularValues.length;
    const idx = Array.from({ length: r }, (_, i) => i + 1);
    const positive = last.singularValues.map((v) => (v > 0 ? v : null));
    const bySeries: uPlot.Series[] = [{ label: 'i' }, { label: `σ at step ${last.step}`, stroke: PALETTE[0], width: 2, points: { show: true, size: 6, fill: PALETTE[0] }, value: (_u, v) => formatValue(v) }];
    const byIndexBox = h('div', { 'data-testid': 'spectrum-by-index' });
    this.body.append(h('h3', {}, `${spectra.module}: singular values of ΔW${source.kind === 'run' ? ` at step ${last.step}` : ''}`), byIndexBox);
    if (positive.some((v) => v !== null)) {
      const intAxis: uPlot.Axis = { ...axes[0], incrs: [1, 2, 4, 8, 16, 32, 64, 128, 256], values: (_u, v) => v.map((x) => String(x)) };
      this.charts.push(new uPlot({ width, height: 220, series: bySeries, axes: [intAxis, axes[1]], scales: { x: { time: false }, y: { distr: 3 } } }, [idx, positive as number[]], byIndexBox));
    } else {
      byIndexBox.append(h('p', { class: 'hint' }, 'ΔW is exactly zero here (B = 0 at initialisation).'));
    }
    // σ_i over steps (runs with more than one sample).
    if (samples.length > 1) {
      const steps = samples.map((s) => s.step);
      const series: uPlot.Series[] = [{ label: 'step' }];
      const data: (number | null)[][] = [steps];
      for (let i = 0; i < r; i++) {
        series.push({ label: `σ${i + 1}`, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: { show: true, size: 4, fill: PALETTE[i % PALETTE.length] }, value: (_u, v) => formatValue(v) });
        data.push(samples.map((s) => (s.singularValues[i] > 0 ? s.singularValues[i] : null)));
      }
      series.push({ label: 'effective rank', stroke: fg, dash: [4, 4], width: 1.5, scale: 'rank', points: { fill: fg }, value: (_u, v) => formatValue(v) });
      data.push(samples.map((s) => s.effectiveRank));
      const box = h('div', { 'data-testid': 'spectrum-over-steps' });
      this.body.append(h('h3', {}, 'Over training steps'), box);
      this.charts.push(
        new uPlot(
          { width, height: 240, series, axes: [...axes, { scale: 'rank', side: 1, stroke: fg, grid: { show: false }, size: 40 }], scales: { x: { time: false }, y: { distr: 3 }, rank: { range: [0, r] } } },
          data as uPlot.AlignedData,
          box,
        ),
      );
    }
    this.body.append(h('h3', {}, 'Per step'), this.sampleTable(samples, r));
    if (source.spectra.length > 1) this.body.append(h('h3', {}, `All modules (last step)`), this.moduleTable(source));
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
