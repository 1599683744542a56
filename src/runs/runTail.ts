// The training time of a run without reading its whole metrics.jsonl (Runs view, pickers): node fs only.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The last metric point's elapsedMs, from the tail of metrics.jsonl (a torn last line is skipped). */
export function lastElapsedMs(dir: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path.join(dir, 'metrics.jsonl'), 'r');
    const size = fs.fstatSync(fd).size;
    const n = Math.min(size, 4096);
    const buf = Buffer.alloc(n);
    fs.readSync(fd, buf, 0, n, size - n);
    const lines = buf.toString('utf8').split('\n').filter((l) => l.trim());
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const p = JSON.parse(lines[i]) as { elapsedMs?: unknown };
        if (typeof p.elapsedMs === 'number' && Number.isFinite(p.elapsedMs)) return p.elapsedMs;
      } catch {
        // a torn (or, at the 4 KiB cut, partial) line: try the one before
      }
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Training time for the Runs view: the last metric point's elapsedMs; for a run stopped before its first
 * logged step, the wall time from start to end (no pause can be in it: it was never resumed).
 */
export function trainingTimeMs(dir: string, info: { createdAt: string; finishedAt?: string; resumedAt?: unknown[] }): number | undefined {
  const logged = lastElapsedMs(dir);
  if (logged !== undefined) return logged;
  if (!info.finishedAt || (info.resumedAt && info.resumedAt.length > 0)) return undefined;
  const ms = Date.parse(info.finishedAt) - Date.parse(info.createdAt);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}
