// Adapter view (the sidebar's Inspect action, or adapters passed to the report): format, the base
// model it needs, warnings, modules table, metadata and config AS TEXT.
import type { SourceSnapshot } from '../../../src/protocol/webview';
import { clear, h } from '../dom';
import { formatCount, formatValue } from '../series';

export class AdapterView {
  readonly el = h('section', { class: 'view adapter-view', 'data-testid': 'adapter-view' });

  constructor(private readonly onModule: (sourceId: string, module: string) => void) {}

  setSources(sources: SourceSnapshot[]): void {
    clear(this.el);
    const adapters = sources.filter((s) => s.adapter);
    if (adapters.length === 0) {
      this.el.append(h('p', { class: 'empty' }, 'No adapter opened.'));
      return;
    }
    for (const s of adapters) this.el.append(this.block(s));
  }

  private block(s: SourceSnapshot): HTMLElement {
    const a = s.adapter!;
    const block = h('div', { class: 'source-block', 'data-testid': 'adapter-block' });
    block.append(
      h('h2', {}, s.label),
      h('p', { class: 'path' }, s.path),
      h('table', { class: 'grid kv' },
        h('tr', {}, h('th', {}, 'Format'), h('td', { 'data-testid': 'adapter-format' }, a.format)),
        h('tr', {}, h('th', {}, 'Base model needed'), h('td', { 'data-testid': 'adapter-base' }, a.baseModel ?? 'unknown')),
        h('tr', {}, h('th', {}, 'Modules'), h('td', {}, s.modules.length)),
        h('tr', {}, h('th', {}, 'Stored LoRA parameters'), h('td', {}, formatCount(s.modules.reduce((x, m) => x + (m.storedParams ?? 0), 0)))),
      ),
      h('p', { class: 'note', 'data-testid': 'adapter-note' }, a.baseModelNote),
    );
    if (a.warnings.length) {
      const ul = h('ul', { class: 'warnings', 'data-testid': 'adapter-warnings' });
      for (const w of a.warnings) ul.append(h('li', {}, w));
      block.append(ul);
    }
    const t = h('table', { class: 'grid', 'data-testid': 'adapter-modules' });
    t.append(h('tr', {}, ...['module', 'W (k×d)', 'r', 'alpha', 'scale', 'dtype', 'params', ''].map((x) => h('th', {}, x))));
    for (const m of s.modules) {
      // A module whose ΔW was too large to ship has no heatmap: the heatmap view would otherwise
      // fall back to another module without saying so.
      const btn =
        m.drawable === false
          ? h('span', { class: 'hint', title: 'ΔW of this module is too large to draw here' }, 'too large to draw')
          : h('vscode-button' as 'button', { secondary: true }, 'Heatmap & spectrum');
      if (m.drawable !== false) btn.addEventListener('click', () => this.onModule(s.id, m.name));
      t.append(h('tr', {}, h('td', { class: 'mono' }, m.name), h('td', {}, `${m.outFeatures}×${m.inFeatures}`), h('td', {}, m.r), h('td', {}, formatValue(m.alpha)), h('td', {}, formatValue(m.scale)), h('td', {}, m.dtype ?? ''), h('td', {}, formatCount(m.storedParams ?? 0)), h('td', {}, btn)));
    }
    block.append(h('h3', {}, 'Modules'), t);
    const meta = h('table', { class: 'grid kv', 'data-testid': 'adapter-metadata' });
    for (const e of a.metadata) meta.append(h('tr', {}, h('th', { class: 'mono' }, e.key), h('td', {}, h('pre', { class: 'meta-value' }, e.value))));
    block.append(h('h3', {}, `Metadata (${a.metadata.length} ${a.metadata.length === 1 ? 'entry' : 'entries'}, shown as text)`), a.metadata.length ? meta : h('p', { class: 'hint' }, 'none'));
    if (a.configText !== undefined) block.append(h('h3', {}, 'Config'), h('pre', { class: 'config-text', 'data-testid': 'adapter-config' }, a.configText));
    return block;
  }
}
