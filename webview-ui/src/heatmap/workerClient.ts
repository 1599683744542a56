// Runs computeHeatmap off the UI thread. The worker is created from a blob: URL holding the
// function's own source text (computeHeatmap is self-contained), which works both inside the VS Code
// webview and in a report opened from file://. CSP: `worker-src blob:`. If a worker cannot be
// created, the work runs on the main thread and `mode` says so (tests read it).
import { computeHeatmap, type HeatmapGrid, type HeatmapJob } from './compute';

let worker: Worker | undefined;
let workerFailed = false;
let nextId = 1;
const pending = new Map<number, { resolve(g: HeatmapGrid): void; reject(e: Error): void }>();

export let heatmapMode: 'worker' | 'main-thread' | 'unused' = 'unused';

function getWorker(): Worker | undefined {
  if (worker || workerFailed) return worker;
  try {
    const src = `const computeHeatmap = ${computeHeatmap.toString()};
self.onmessage = (e) => {
  const { id, job } = e.data;
  try {
    const g = computeHeatmap(job);
    self.postMessage({ id, grid: g }, [g.grid.buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err && err.message || err) });
  }
};`;
    const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
    worker = new Worker(url);
    worker.onmessage = (e: MessageEvent) => {
      const { id, grid, error } = e.data as { id: number; grid?: HeatmapGrid; error?: string };
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      if (grid) p.resolve(grid);
      else p.reject(new Error(error ?? 'heatmap worker failed'));
    };
    worker.onerror = () => {
      workerFailed = true;
      worker = undefined;
      for (const [, p] of pending) p.reject(new Error('heatmap worker failed to start'));
      pending.clear();
    };
  } catch {
    workerFailed = true;
    worker = undefined;
  }
  return worker;
}

/** Starts the worker ahead of the first heatmap, so its boot and the compiling of its loops do not delay that draw. */
export function warmUpHeatmapWorker(): void {
  if (!getWorker()) return;
  const d = 128;
  void computeOffThread({ a: new Float32Array(4 * d), b: new Float32Array(d * 4), r: 4, scale: 1, rows: d, cols: d, maxRows: 32, maxCols: 32, mode: 'maxabs' }).catch(() => undefined);
}

export function computeOffThread(job: HeatmapJob): Promise<HeatmapGrid> {
  const w = getWorker();
  if (!w) {
    heatmapMode = 'main-thread';
    return Promise.resolve().then(() => computeHeatmap(job));
  }
  heatmapMode = 'worker';
  const id = nextId++;
  return new Promise<HeatmapGrid>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    // Copies (not transfers): the caller keeps its factors for the next checkpoint/mode.
    w.postMessage({ id, job });
  }).catch(() => {
    heatmapMode = 'main-thread';
    return computeHeatmap(job);
  });
}
