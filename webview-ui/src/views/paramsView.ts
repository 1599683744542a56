// Trainable parameters: whole model and per module, full fine-tune vs LoRA, in both conventions;
// plus Adam state memory saved. Counts are bars on a log scale (LoRA is often 100× smaller); the two
// trainable-% conventions are shares of different wholes, so each gets its own linear bar. A causal-lm
// run also shows its memory estimate: the tensor heap's parts on a linear bar against the limit the
// run is judged by (the wasm heap's usable share, else the machine's memory), and the numbers.
import type { MemorySummary, SourceSnapshot } from '../../../src/protocol/webview';
import { heapLimitText, memoryOverText, memoryParts, memoryRemediesText, memoryShapeText } from '../../../src/shared/memorySummary';
import { clear, h } from '../dom';
import { modelParams, moduleRow } from '../params';
import { formatBytes, formatCount, formatPercent } from '../series';

export class ParamsView {
  readonly el = h('section', { class: 'view params-view', 'data-testid': 'params-view' });

  setSources(sources: SourceSnapshot[]): void {
    clear(this.el);
    const withModules = sources.filter((s) => s.modules.length > 0 || s.memory);
    if (withModules.length === 0) {
      this.el.append(h('p', { class: 'empty' }, 'No LoRA modules found yet (the first checkpoint or the adapter will list them).'));
      return;
    }
    for (const s of withModules) this.el.append(this.sourceBlock(s));
  }

  private sourceBlock(s: SourceSnapshot): HTMLElement {
    const memory = s.memory ? memoryBlock(s.memory) : undefined;
    // A run before its first checkpoint: the estimate is known, the modules not yet.
    if (s.modules.length === 0) return h('div', { class: 'source-block' }, h('h2', {}, s.label), memory);
    const mp = modelParams(s.modules, s.totalParams);
    const fullLabel = mp.totalKnown ? 'Full fine-tune (whole model)' : 'Full fine-tune (adapted layers only)';
    const peftLabel = mp.totalKnown ? 'Trainable % (PEFT: of base + LoRA)' : 'Trainable % (PEFT convention, over the adapted layers only: base model not on disk)';
    const maxVal = Math.max(mp.total, 1);
    const countBar = (label: string, value: number, cls: string, testId: string) => {
      const fill = h('div', { class: `bar-fill ${cls}` });
      fill.style.width = `${value > 0 ? Math.max(0.5, (100 * Math.log10(value + 1)) / Math.log10(maxVal + 1)) : 0}%`;
      return h('div', { class: 'bar-row', 'data-testid': testId }, h('span', { class: 'bar-label' }, label), h('div', { class: 'bar-track' }, fill), h('span', { class: 'bar-value' }, formatCount(value)));
    };
    // A share of a whole on a linear scale: 0.24 % is a sliver, 7 % is visibly 30× more.
    const shareBar = (label: string, percent: number, cls: string, testId: string) => {
      const fill = h('div', { class: `bar-fill ${cls}` });
      fill.style.width = `${Math.min(100, Math.max(0, percent))}%`;
      fill.style.minWidth = percent > 0 ? '2px' : '0';
      return h('div', { class: 'bar-row', 'data-testid': testId }, h('span', { class: 'bar-label' }, label), h('div', { class: 'bar-track' }, fill), h('span', { class: 'bar-value' }, formatPercent(percent)));
    };
    const summary = h(
      'table',
      { class: 'grid kv', 'data-testid': 'params-summary' },
      h('tr', {}, h('th', {}, fullLabel), h('td', { 'data-testid': 'full-params' }, formatCount(mp.total))),
      h('tr', {}, h('th', {}, 'LoRA trainable (bias frozen, PEFT)'), h('td', { 'data-testid': 'lora-params' }, formatCount(mp.loraBiasFrozen))),
      h('tr', {}, h('th', {}, 'LoRA trainable (bias trained, reference LoRA code)'), h('td', { 'data-testid': 'lora-params-bias' }, formatCount(mp.loraBiasTrained))),
      h('tr', {}, h('th', { 'data-testid': 'percent-peft-label' }, peftLabel), h('td', { 'data-testid': 'percent-peft' }, formatPercent(mp.percentPeft))),
      h('tr', {}, h('th', {}, 'Trainable % (reference LoRA code: of the adapted layers, bias trained)'), h('td', { 'data-testid': 'percent-reference' }, formatPercent(mp.percentReference))),
      h('tr', {}, h('th', {}, 'Reduction'), h('td', { 'data-testid': 'reduction' }, `${mp.reduction.toFixed(1)}× fewer`)),
      h('tr', {}, h('th', {}, 'Adam state (m, v in float32): full → LoRA'), h('td', { 'data-testid': 'adam-saved' }, `${formatBytes(mp.adamBytesFull)} → ${formatBytes(mp.adamBytesLora)} (saves ${formatBytes(mp.adamBytesSaved)})`)),
    );
    const bars = h(
      'div',
      { class: 'bars' },
      h('h3', {}, 'Parameters (log scale)'),
      countBar(fullLabel, mp.total, 'full', 'bar-full'),
      countBar('LoRA (bias frozen)', mp.loraBiasFrozen, 'lora', 'bar-lora'),
      countBar('LoRA (bias trained)', mp.loraBiasTrained, 'lora2', 'bar-lora-bias'),
      h('h3', {}, 'Trainable share (linear scale, each of its own whole)'),
      shareBar(mp.totalKnown ? 'PEFT: of base + LoRA' : 'PEFT: of adapted layers + LoRA', mp.percentPeft, 'lora', 'share-peft'),
      shareBar('Reference LoRA code: of adapted layers', mp.percentReference, 'lora2', 'share-reference'),
    );
    const table = h('table', { class: 'grid', 'data-testid': 'params-modules' });
    table.append(
      h('tr', {}, ...['module', 'W (k×d)', 'bias', 'r', 'full', 'LoRA (bias frozen)', '%', 'reduction', 'LoRA (bias trained)', '%', 'reduction'].map((t) => h('th', {}, t))),
    );
    for (const m of s.modules) {
      const r = moduleRow(m);
      if (!r) {
        table.append(h('tr', {}, h('td', { class: 'mono' }, m.name), h('td', {}, `${m.outFeatures}×${m.inFeatures}`), h('td', {}, m.hasBias ? `[${m.outFeatures}]` : 'none'), h('td', {}, m.r), h('td', { colspan: 7, class: 'hint' }, `no A/B count for a ${m.kind} module of rank ${m.r}`)));
        continue;
      }
      table.append(
        h(
          'tr',
          { 'data-module': m.name },
          h('td', { class: 'mono' }, r.name),
          h('td', {}, r.shape),
          h('td', { 'data-testid': 'module-bias' }, m.hasBias ? `[${m.outFeatures}]` : 'none'),
          h('td', {}, r.r),
          h('td', { 'data-testid': 'module-full' }, formatCount(r.full)),
          h('td', {}, formatCount(r.loraBiasFrozen)),
          h('td', {}, formatPercent(r.percent)),
          h('td', {}, `${r.reduction.toFixed(1)}×`),
          // Without a bias both conventions train the same A and B.
          h('td', { 'data-testid': 'module-lora-bias' }, formatCount(r.loraBiasTrained)),
          h('td', {}, formatPercent(r.percentBiasTrained)),
          h('td', {}, `${r.reductionBiasTrained.toFixed(1)}×`),
        ),
      );
    }
    return h('div', { class: 'source-block' }, h('h2', {}, s.label), h('div', { class: 'params-top' }, summary, bars), memory, h('h3', {}, 'Per module'), table);
  }
}

/** The estimate's parts, in the order and colours of the bar. */
const PART_CLASS = { frozenWeights: 'full', lora: 'lora', activations: 'lora2', loss: 'loss' } as const;

function memoryBlock(m: MemorySummary): HTMLElement {
  const parts = memoryParts(m);
  // What the heap is judged by: the bounded heap's usable share, else the machine's memory.
  const limit = m.heapLimit ? m.heapLimit.usableShare * m.heapLimit.bytes : m.machineBytes;
  const scale = Math.max(m.heap, limit ?? 0, 1);
  const track = h('div', { class: 'mem-track', 'data-testid': 'memory-bar' });
  for (const p of parts) {
    const seg = h('div', { class: `bar-fill ${PART_CLASS[p.key]}`, title: `${p.label}: ${formatBytes(p.bytes)}` });
    seg.style.width = `${(100 * p.bytes) / scale}%`;
    track.append(seg);
  }
  if (limit !== undefined) {
    const mark = h('div', { class: 'mem-limit', title: m.heapLimit ? `usable limit ${formatBytes(limit)} ${heapLimitText(m)}` : `this machine's ${formatBytes(limit)}` });
    mark.style.left = `${(100 * limit) / scale}%`;
    track.append(mark);
  }
  const legend = h('div', { class: 'mem-legend' }, ...parts.map((p) => h('span', {}, h('span', { class: `swatch bar-fill ${PART_CLASS[p.key]}` }), p.label)));
  const bytesCell = (testId: string, bytes: number, extra = '') => h('td', { 'data-testid': testId, 'data-bytes': bytes }, formatBytes(bytes), extra ? h('span', { class: 'hint' }, ` ${extra}`) : undefined);
  const table = h(
    'table',
    { class: 'grid kv', 'data-testid': 'memory-table' },
    ...parts.map((p) => h('tr', { 'data-part': p.key }, h('th', {}, p.label), bytesCell(`memory-${p.key}`, p.bytes))),
    h('tr', {}, h('th', {}, 'Tensor heap (these and the backend\'s own data)'), bytesCell('memory-heap', m.heap, heapLimitText(m))),
    h('tr', {}, h('th', {}, 'Weight files, held outside the heap'), bytesCell('memory-host', m.host)),
    h('tr', {}, h('th', {}, 'Total, with the runtime'), bytesCell('memory-total', m.total, m.machineBytes !== undefined ? `of this machine's ${formatBytes(m.machineBytes)}` : '')),
    h('tr', {}, h('th', {}, 'Backend'), h('td', { 'data-testid': 'memory-assumption' }, m.assumption)),
    h(
      'tr',
      {},
      h('th', {}, 'Verdict'),
      m.remedies
        ? h('td', { 'data-testid': 'memory-verdict', class: 'warnings' }, `would not fit: ${memoryOverText(m)}. To fit: ${memoryRemediesText(m)}.`)
        : h('td', { 'data-testid': 'memory-verdict' }, 'fits'),
    ),
  );
  return h('div', { class: 'memory-estimate', 'data-testid': 'memory-estimate' }, h('h3', {}, `Memory estimate (${memoryShapeText(m)})`), track, legend, table);
}
