// A run's metric history as the dashboard keeps it: in columns (compact for 100k points), built from
// logged points and merged when a resumed run re-logs steps. Used by the extension host, the CLI's
// report and the webview. Pure: no tfjs, no node built-ins, no vscode.

/** One logged step, as metrics.jsonl stores it. */
export interface MetricPoint {
  step: number;
  loss: number;
  evalLoss?: number;
  lr: number;
  gradNorm: number;
  /** Milliseconds since the run (or this resumed segment's start, offset to be continuous) began. */
  elapsedMs: number;
}

/** Metric history in columns (compact for 100k points). `null` marks a step without an eval loss. */
export interface MetricColumns {
  step: number[];
  loss: number[];
  evalLoss: (number | null)[];
  lr: number[];
  gradNorm: number[];
  elapsedMs: number[];
}

/** Metric points → columns (missing eval loss → null). */
export function toMetricColumns(points: readonly MetricPoint[]): MetricColumns {
  const c: MetricColumns = { step: [], loss: [], evalLoss: [], lr: [], gradNorm: [], elapsedMs: [] };
  for (const p of points) appendMetricPoint(c, p);
  return c;
}

export function appendMetricPoint(c: MetricColumns, p: MetricPoint): void {
  c.step.push(p.step);
  c.loss.push(p.loss);
  c.evalLoss.push(typeof p.evalLoss === 'number' && Number.isFinite(p.evalLoss) ? p.evalLoss : null);
  c.lr.push(p.lr);
  c.gradNorm.push(p.gradNorm);
  c.elapsedMs.push(p.elapsedMs);
}

/**
 * Appends `more` to `into`. A resumed run re-logs from its last checkpoint: points of `into` at or
 * after the first new step are replaced, so the history matches metrics.jsonl. Returns the index
 * from which `into` changed (its old length when nothing was replaced).
 */
export function mergeMetricColumns(into: MetricColumns, more: MetricColumns): number {
  if (more.step.length === 0) return into.step.length;
  const first = more.step[0];
  let keep = into.step.length;
  while (keep > 0 && into.step[keep - 1] >= first) keep--;
  const keys = ['step', 'loss', 'evalLoss', 'lr', 'gradNorm', 'elapsedMs'] as const;
  for (const k of keys) {
    const dst = into[k] as unknown[];
    const src = more[k] as unknown[];
    dst.length = keep;
    for (let i = 0; i < src.length; i++) dst.push(src[i]);
  }
  return keep;
}
