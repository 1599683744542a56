// The dashboard's subtitle: what it shows and whether anything is still training. Pure.
import type { DashboardSnapshot, SourceSnapshot } from '../../src/protocol/webview';

/**
 * "Live" only while a run shown is training; afterwards the runs' states. An adapter alone is a
 * static file ("Adapter · name"); a report says when it was generated.
 */
export function subtitleText(header: Omit<DashboardSnapshot, 'sources'>, sources: readonly SourceSnapshot[]): string {
  const runs = sources.filter((s) => s.kind === 'run');
  const adapters = sources.filter((s) => s.kind === 'adapter');
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const counts = [runs.length ? plural(runs.length, 'run') : '', adapters.length ? plural(adapters.length, 'adapter') : ''].filter(Boolean).join(', ') || 'nothing shown yet';
  if (!header.live) return `Report · ${counts} · generated ${header.generatedAt}`;
  if (runs.length === 0) return adapters.length === 1 ? `Adapter · ${adapters[0].label}` : counts;
  const running = runs.filter((s) => s.run?.status === 'running').length;
  if (running > 0) return `Live · ${counts} (${running} training)`;
  const states = [...new Set(runs.map((s) => s.run?.status ?? 'unknown'))];
  return `${counts} · ${states.join(', ')}`;
}
