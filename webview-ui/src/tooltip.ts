// A tooltip at the cursor for the charts: a header line and one row per series with its colour,
// sorted by value (highest first, the order the lines appear in on the chart). Fixed-position, so it
// follows the cursor wherever the chart is scrolled; it flips left/up near the window's edges.
import { clear, h } from './dom';
import { formatValue } from './series';

export interface TooltipRow {
  label: string;
  value: number | null;
  color: string;
  dashed?: boolean;
  /** Extra text after the value, e.g. "(step 400)" for the nearest eval point. */
  note?: string;
}

/** Rows with a value, highest first; ties keep their order. */
export function sortRows(rows: readonly TooltipRow[]): TooltipRow[] {
  return rows.filter((r) => r.value !== null && Number.isFinite(r.value)).sort((a, b) => (b.value as number) - (a.value as number));
}

export class ChartTooltip {
  readonly el: HTMLDivElement;

  constructor(testId: string) {
    this.el = h('div', { class: 'chart-tooltip', role: 'tooltip', 'data-testid': testId });
    this.el.hidden = true;
    document.body.append(this.el);
  }

  /** Shows `header` and the sorted rows next to the client point (x, y). */
  show(x: number, y: number, header: string, rows: readonly TooltipRow[]): void {
    clear(this.el);
    this.el.append(h('div', { class: 'tt-head' }, header));
    for (const r of sortRows(rows)) {
      const sw = h('span', { class: `tt-swatch${r.dashed ? ' dashed' : ''}` });
      sw.style.borderColor = r.color;
      // A newline before each row keeps textContent readable as lines ("step 12\\nrun train: 0.5").
      this.el.append(h('div', { class: 'tt-row' }, '\n', sw, h('span', { class: 'tt-label' }, `${r.label}: `), h('span', { class: 'tt-value' }, formatValue(r.value)), r.note ? ` ${r.note}` : ''));
    }
    this.el.hidden = false;
    const pad = 14;
    const { width, height } = this.el.getBoundingClientRect();
    const left = x + pad + width > window.innerWidth ? Math.max(0, x - pad - width) : x + pad;
    const top = y + pad + height > window.innerHeight ? Math.max(0, y - pad - height) : y + pad;
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }

  hide(): void {
    this.el.hidden = true;
  }
}
