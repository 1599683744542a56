// A tiny element builder. Text goes in through textContent only: file metadata is hostile input
// (real adapters carry `<script>` in their metadata) and must never be parsed as HTML.

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) append(el, c);
  return el;
}

export function append(el: Element, c: Child): void {
  if (c === null || c === undefined || c === false) return;
  el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** A <select> (native: it works identically in VS Code and in the report). */
export function select(label: string, options: { value: string; text: string }[], value: string, onChange: (v: string) => void, testId?: string): HTMLLabelElement {
  const s = h('select', { 'data-testid': testId });
  for (const o of options) {
    const opt = h('option', { value: o.value }, o.text);
    if (o.value === value) opt.selected = true;
    s.append(opt);
  }
  s.addEventListener('change', () => onChange(s.value));
  return h('label', { class: 'control' }, h('span', {}, label), s);
}

export const PALETTE = ['#3b82f6', '#ef4444', '#10b981', '#f59e0b', '#8b5cf6', '#ec4899', '#14b8a6', '#f97316', '#6366f1', '#84cc16'];

/** A CSS custom property's current value (canvas drawing cannot use var()). */
export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}
