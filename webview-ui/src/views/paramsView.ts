// Trainable parameters: whole model and per module, full fine-tune vs LoRA, in both conventions,
// as bars (log scale, since LoRA is often 100× smaller) and a table; plus Adam state memory saved.
import type { SourceSnapshot } from '../../../src/protocol/webview';
import { clear, h } from '../dom';
import { modelParams, moduleRow } from '../params';
import { formatBytes, formatCount, formatPercent } from '../series';

export class ParamsView {
  readonly el = h('section', { class: 'view params-view', 'data-testid': 'params-view' });

  setSources(sources: SourceSnapshot[]): void {
    clear(this.el);
    const withModules = sources.filter((s) => s.modules.length > 0);
    if (withModules.length === 0) {
      this.el.append(h('p', { class: 'empty' }, 'No LoRA modules found yet (the first checkpoint or the adapter will list them).'));
      return;
    }
    for (const s of withModules) this.el.append(this.sourceBlock(s));
  }

  private sourceBlock(s: SourceSnapshot): HTMLElement {
    const mp = modelParams(s.modules, s.totalParams);
    const fullLabel = mp.totalKnown ? 'Full fine-tune (whole model)' : 'Full fine-tune (adapted layers)';
    const maxVal = Math.max(mp.total, 1);
    const bar = (label: string, value: number, cls: string, testId: string) => {
      const fill = h('div', { class: `bar-fill ${cls}` });
      // Log scale: LoRA is typically 1-3 orders of magnitude below full fine-tuning.
      fill.style.width = `${value > 0 ? Math.max(0.5, (100 * Math.log10(value + 1)) / Math.log10(maxVal + 1)) : 0}%`;
      return h('div', { class: 'bar-row', 'data-testid': testId }, h('span', { class: 'bar-label' }, label), h('div', { class: 'bar-track' }, fill), h('span', { class: 'bar-value' }, formatCount(value)));
    };
    const summary = h(
      'table',
      { class: 'grid kv', 'data-testid': 'params-summary' },
      h('tr', {}, h('th', {}, fullLabel), h('td', { 'data-testid': 'full-params' }, formatCount(mp.total))),
      h('tr', {}, h('th', {}, 'LoRA trainable (bias frozen, PEFT)'), h('td', { 'data-testid': 'lora-params' }, formatCount(mp.loraBiasFrozen))),
      h('tr', {}, h('th', {}, 'LoRA trainable (bias trained, as in the reference LoRA code)'), h('td', {}, formatCount(mp.loraBiasTrained))),
      h('tr', {}, h('th', {}, 'Trainable % (PEFT: of base + LoRA)'), h('td', { 'data-testid': 'percent-peft' }, formatPercent(mp.percentPeft))),
      h('tr', {}, h('th', {}, 'Trainable % (reference LoRA code: of adapted layers, bias trained)'), h('td', {}, formatPercent(mp.percentSeed))),
      h('tr', {}, h('th', {}, 'Reduction'), h('td', { 'data-testid': 'reduction' }, `${mp.reduction.toFixed(1)}× fewer`)),
      h('tr', {}, h('th', {}, 'Adam state (m, v in float32): full → LoRA'), h('td', { 'data-testid': 'adam-saved' }, `${formatBytes(mp.adamBytesFull)} → ${formatBytes(mp.adamBytesLora)} (saves ${formatBytes(mp.adamBytesSaved)})`)),
    );
    const bars = h(
      'div',
      { class: 'bars' },
      bar(fullLabel, mp.total, 'full', 'bar-full'),
      bar('LoRA (bias frozen)', mp.loraBiasFrozen, 'lora', 'bar-lora'),
      bar('LoRA (bias trained)', mp.loraBiasTrained, 'lora2', 'bar-lora-bias'),
      h('p', { class: 'hint' }, 'Bar lengths are on a log scale.'),
    );
    const table = h('table', { class: 'grid', 'data-testid': 'params-modules' });
    table.append(
      h('tr', {}, ...['module', 'W (k×d)', 'r', 'full', 'LoRA (bias frozen)', '%', 'reduction', 'LoRA (bias trained)', '%', 'reduction'].map((t) => h('th', {}, t))),
    );
    for (const m of s.modules) {
      const r = moduleRow(m);
      table.append(
        h(
          'tr',
          {},
          h('td', { class: 'mono' }, r.name),
          h('td', {}, r.shape),
          h('td', {}, r.r),
          h('td', {}, formatCount(r.full)),
          h('td', {}, formatCount(r.loraBiasFrozen)),
          h('td', {}, formatPercent(r.percent)),
          h('td', {}, `${r.reduction.toFixed(1)}×`),
          h('td', {}, m.hasBias ? formatCount(r.loraBiasTrained) : '– (no bias)'),
          h('td', {}, m.hasBias ? formatPercent(r.percentBiasTrained) : '–'),
          h('td', {}, m.hasBias ? `${r.reductionBiasTrained.toFixed(1)}×` : '–'),
        ),
      );
    }
    return h('div', { class: 'source-block' }, h('h2', {}, s.label), h('div', { class: 'params-top' }, summary, bars), h('h3', {}, 'Per module'), table);
  }
}
