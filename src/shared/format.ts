// How losses, durations and sizes read everywhere: the status bar, the Runs and Adapters views, the CLI's
// progress lines and the dashboard webview. Pure: no tfjs, no node built-ins, no vscode.

/**
 * A loss to four significant digits: 0.01235, 1.500e-6 (exponent form below 1e-3 and from 1e4 on, so a
 * diverging or nearly-zero loss keeps its digits); '-' when there is none yet.
 */
export function formatLoss(x: number | undefined): string {
  if (x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? x.toExponential(3) : x.toPrecision(4);
}

/**
 * A duration in milliseconds with its units, never a bare clock that could be m:ss or h:mm:
 * "42.5 s", "3 min 05 s", "2 h 04 min"; '–' for a negative or non-finite one (an ETA not known yet).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const seconds = ms / 1000;
  if (seconds < 60) return `${Number(seconds.toPrecision(3))} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${String(Math.floor(seconds - 60 * m)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/**
 * A size in bytes, 1024-based with the IEC units that say so: "870 MiB" for 912,556,812 bytes,
 * "1.5 KiB", "12 bytes" below 1 KiB; three significant digits at most.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return `${n} bytes`;
  if (n < 1024) return `${n} byte${n === 1 ? '' : 's'}`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? Math.round(v) : Number(v.toPrecision(3))} ${units[u]}`;
}
