// Small text formatters for the status bar and notifications (pure, unit-tested).
import { formatDuration, formatLoss } from '../shared/format';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** When a run started, as short as it can be and still tell runs apart: "14:03", "Dec 5 14:03", "2025-12-05 14:03" (local time). */
export function formatRunDate(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (d.getFullYear() !== now.getFullYear()) return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${time}`;
  if (d.getMonth() === now.getMonth() && d.getDate() === now.getDate()) return `today ${time}`;
  return `${MONTHS[d.getMonth()]} ${d.getDate()} ${time}`;
}

/** What the Runs view, the Compare picker and the Adapters view show to tell same-named runs apart. */
export interface RunSummary {
  status: string;
  createdAt: string;
  step: number;
  totalSteps: number;
  /** Training time (the last metric point's elapsedMs: pauses between stop and resume do not count). */
  elapsedMs?: number;
  lastLoss?: number;
  tags?: string[];
}

/** "completed · today 14:03 · 1 min 4 s · loss 0.01234 · #baseline" (step n/N while not completed). */
export function runDescription(r: RunSummary, now: Date = new Date()): string {
  const parts = [r.status, formatRunDate(r.createdAt, now)];
  if (r.elapsedMs !== undefined) parts.push(formatDuration(r.elapsedMs));
  if (r.status !== 'completed') parts.push(`step ${r.step}/${r.totalSteps}`);
  if (r.lastLoss !== undefined) parts.push(`loss ${formatLoss(r.lastLoss)}`);
  for (const t of r.tags ?? []) parts.push(`#${t}`);
  return parts.join(' · ');
}

/** Tags as typed ("baseline, r sweep  #fast") -> ["baseline", "r-sweep", "fast"]: trimmed, no '#', no duplicates. */
export function parseTags(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[,;]+/)) {
    const t = raw.trim().replace(/^#+/, '').trim().replace(/\s+/g, '-');
    if (t && !out.includes(t)) out.push(t);
  }
  return out;
}
