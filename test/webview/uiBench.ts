// UI bench, in headless Chromium on the standalone report: how long 100,000 loss points per run take
// to redraw (smoothing change, drag-zoom, the tooltip following the cursor, switching the x axis to
// wall-clock time) and how long a 1024×1024 and a 4096×4096 ΔW heatmap take to compute and draw, to
// zoom (wheel) and to pan (drag): input to the next frame (the page stays responsive while the
// worker computes) and input to the canvases filled. Prints medians; `--json` prints one JSON object instead.
// Timings are printed, never asserted: `npm run bench:ui [-- --json] [--only loss|heatmap]`;
// BENCH_REPEATS=N for more repeats.
//
// A redraw is timed inside the page from the input event to the end of the next frame's rendering
// (a task queued from requestAnimationFrame runs after that frame is painted and committed:
// Chromium rasterises canvas drawing at the commit, so the JavaScript alone would flatter us);
// `…WorkMs` is the JavaScript part alone (the handler and uPlot's microtask commit; near zero where
// the redraw itself waits for an animation frame). Heatmaps: from the control change to the canvas filled (`data-ready`
// set again).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeReport } from '../../src/cli/commands/report';
import { chromiumAvailable, openPage, screenshot } from './support/browser';
import { ensureWebviewBuilt } from './support/build';
import { tempDir, tinyRun } from './support/runs';
import { writeBigRun, writeSquareAdapter } from './support/synthetic';

const json = process.argv.includes('--json');
const REPEATS = Number(process.env.BENCH_REPEATS ?? 9);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function log(line: string): void {
  if (!json) console.log(line);
}

/** In-page timing helpers, installed once per page. */
const PAGE_HELPERS = `(() => {
  // [JavaScript work, until the next frame] after an action started at t.
  const settle = async (t) => {
    await Promise.resolve();
    const work = performance.now() - t;
    // After the next frame's rendering (its canvas raster and commit included): a task queued from
    // inside requestAnimationFrame runs once that frame is done.
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return [work, performance.now() - t];
  };
  window.__bench = {
    async smoothing(v) {
      const el = document.querySelector('[data-testid=smoothing]');
      const t = performance.now();
      el.value = String(v);
      el.dispatchEvent(new Event('input'));
      return settle(t);
    },
    async drag(f0, f1) {
      const over = document.querySelector('[data-testid=loss-chart] .u-over');
      const b = over.getBoundingClientRect();
      // uPlot ignores a move without movement while dragging (a Chrome quirk it works around).
      const at = (f) => ({ clientX: b.left + b.width * f, clientY: b.top + 40, movementX: 5, button: 0, buttons: 1, bubbles: true });
      over.dispatchEvent(new MouseEvent('mousedown', at(f0)));
      over.dispatchEvent(new MouseEvent('mousemove', at((f0 + f1) / 2)));
      over.dispatchEvent(new MouseEvent('mousemove', at(f1)));
      const t = performance.now();
      document.dispatchEvent(new MouseEvent('mouseup', at(f1)));
      return settle(t);
    },
    async hover(f) {
      const over = document.querySelector('[data-testid=loss-chart] .u-over');
      const b = over.getBoundingClientRect();
      over.dispatchEvent(new MouseEvent('mouseenter', { clientX: b.left + b.width * f, clientY: b.top + 60 }));
      const t = performance.now();
      over.dispatchEvent(new MouseEvent('mousemove', { clientX: b.left + b.width * f, clientY: b.top + 60, bubbles: true }));
      return settle(t);
    },
    async xAxis(mode) {
      const sel = document.querySelector('[data-testid=x-axis]');
      const t = performance.now();
      sel.value = mode;
      sel.dispatchEvent(new Event('change'));
      return settle(t);
    },
    /** [input to the next frame, input to the canvases filled] for a heatmap interaction. */
    async heatmapInput(kind, i) {
      const view = document.querySelector('[data-testid=heatmap-view]');
      const c = document.querySelector('canvas[data-testid=heatmap-delta]');
      const b = c.getBoundingClientRect();
      const at = (fx, fy) => ({ clientX: b.left + b.width * fx, clientY: b.top + b.height * fy, bubbles: true, cancelable: true, button: 0 });
      const t = performance.now();
      if (kind === 'wheel') c.dispatchEvent(new WheelEvent('wheel', { ...at(0.3 + 0.04 * (i % 5), 0.6), deltaY: i % 2 ? 100 : -100 }));
      else {
        c.dispatchEvent(new MouseEvent('mousedown', at(0.5, 0.5)));
        window.dispatchEvent(new MouseEvent('mousemove', at(0.4, 0.45)));
        window.dispatchEvent(new MouseEvent('mouseup', at(0.4 - 0.02 * (i % 3), 0.45)));
      }
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      const frame = performance.now() - t;
      await new Promise((resolve) => {
        const check = () => (view.dataset.ready === 'true' ? resolve() : setTimeout(check, 0));
        check();
      });
      return [frame, performance.now() - t];
    },
    async resetZoom() {
      const t = performance.now();
      document.querySelector('[data-testid=reset-zoom]').click();
      return settle(t);
    },
    async heatmapTab() {
      const view = document.querySelector('[data-testid=heatmap-view]');
      const t = performance.now();
      document.querySelector('[data-testid=tab-heatmaps]').click();
      await new Promise((resolve) => {
        const check = () => (view.dataset.ready === 'true' ? resolve() : setTimeout(check, 0));
        check();
      });
      const ready = performance.now() - t;
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      return [ready, performance.now() - t];
    },
    async heatmapMode(mode) {
      const view = document.querySelector('[data-testid=heatmap-view]');
      const sel = document.querySelector('[data-testid=heatmap-mode]');
      const t = performance.now();
      sel.value = mode;
      sel.dispatchEvent(new Event('change'));
      await new Promise((resolve) => {
        const check = () => (view.dataset.ready === 'true' ? resolve() : setTimeout(check, 0));
        check();
      });
      return performance.now() - t;
    },
  };
})()`;

async function benchLoss(template: string, work: string, runs: number, points: number): Promise<Record<string, number>> {
  const dirs = Array.from({ length: runs }, (_, k) => writeBigRun(template, path.join(work, `big-${runs}-${k}`), k, points));
  const html = path.join(work, `loss-${runs}.html`);
  await writeReport(dirs, html);
  const t0 = Date.now();
  const o = await openPage(`file://${html}`);
  const loadMs = Date.now() - t0;
  try {
    await o.page.evaluate(PAGE_HELPERS);
    const t: Record<string, [number, number][]> = { smoothing: [], dragZoom: [], resetZoom: [], tooltip: [], xAxisSwitch: [] };
    for (let i = 0; i < REPEATS; i++) {
      t.smoothing.push(await o.page.evaluate(`window.__bench.smoothing(${i % 2 ? 0.9 : 0.6})`));
      t.dragZoom.push(await o.page.evaluate(`window.__bench.drag(${0.1 + 0.02 * i}, ${0.5 + 0.02 * i})`));
      t.tooltip.push(await o.page.evaluate(`window.__bench.hover(${0.2 + 0.05 * i})`));
      t.resetZoom.push(await o.page.evaluate('window.__bench.resetZoom()'));
      t.xAxisSwitch.push(await o.page.evaluate(`window.__bench.xAxis('${i % 2 ? 'step' : 'time'}')`));
    }
    await o.page.evaluate(`window.__bench.xAxis('step')`);
    if (o.pageErrors.length) throw new Error(`page errors: ${o.pageErrors.join('; ')}`);
    await screenshot(o.page, `bench-loss-${runs}x${points}`);
    const out: Record<string, number> = { loadMs };
    for (const [k, v] of Object.entries(t)) {
      out[`${k}Ms`] = median(v.map((x) => x[1]));
      out[`${k}WorkMs`] = median(v.map((x) => x[0]));
    }
    return out;
  } finally {
    await o.close();
  }
}

async function benchHeatmap(work: string, d: number, r: number): Promise<Record<string, number>> {
  const dir = path.join(work, `adapter-${d}`);
  writeSquareAdapter(dir, d, r);
  const html = path.join(work, `adapter-${d}.html`);
  await writeReport([dir], html);
  const o = await openPage(`file://${html}`);
  try {
    await o.page.evaluate(PAGE_HELPERS);
    // The first draw: the tab click (heatmaps are drawn only while their tab shows) to the canvases
    // filled, then to the next frame; the view's own figure (selection to painted) beside it.
    const [tabReadyMs, tabFrameMs] = (await o.page.evaluate('window.__bench.heatmapTab()')) as [number, number];
    const firstDrawMs = Number(await o.page.evaluate(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.drawMs));
    log(`  heatmap ${d}×${d} first draw: ${await o.page.evaluate(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.drawPhases)} ms`);
    const change: number[] = [];
    for (let i = 0; i < REPEATS; i++) change.push(await o.page.evaluate(`window.__bench.heatmapMode('${i % 2 ? 'maxabs' : 'mean'}')`));
    const wheel: [number, number][] = [];
    const pan: [number, number][] = [];
    for (let i = 0; i < REPEATS; i++) {
      wheel.push((await o.page.evaluate(`window.__bench.heatmapInput('wheel', ${i})`)) as [number, number]);
      pan.push((await o.page.evaluate(`window.__bench.heatmapInput('pan', ${i})`)) as [number, number]);
    }
    await screenshot(o.page, `bench-heatmap-${d}`);
    return {
      tabClickToDrawnMs: tabReadyMs,
      tabClickToFrameMs: tabFrameMs,
      firstDrawMs,
      modeChangeMs: median(change),
      wheelZoomFrameMs: median(wheel.map((x) => x[0])),
      wheelZoomDrawnMs: median(wheel.map((x) => x[1])),
      panFrameMs: median(pan.map((x) => x[0])),
      panDrawnMs: median(pan.map((x) => x[1])),
    };
  } finally {
    await o.close();
  }
}

async function main(): Promise<void> {
  if (!chromiumAvailable()) {
    console.log('bench:ui: chromium not found at /usr/bin/chromium; nothing measured');
    return;
  }
  ensureWebviewBuilt();
  const work = tempDir('lora-lab-uibench-');
  try {
    const template = await tinyRun(work, { name: 'template', r: 2 });
    const results: Record<string, Record<string, number>> = {};
    log('UI bench (headless Chromium, standalone report; medians, ms)');
    // --only loss|heatmap runs one half.
    const only = process.argv[process.argv.indexOf('--only') + 1];
    if (!process.argv.includes('--only') || only === 'loss') {
      results['loss 1 run x 100k'] = await benchLoss(template, work, 1, 100_000);
      results['loss 4 runs x 100k'] = await benchLoss(template, work, 4, 100_000);
    }
    if (!process.argv.includes('--only') || only === 'heatmap') {
      results['heatmap 1024x1024 r=8'] = await benchHeatmap(work, 1024, 8);
      results['heatmap 4096x4096 r=16'] = await benchHeatmap(work, 4096, 16);
    }
    if (json) console.log(JSON.stringify({ targets: { lossRedrawMs: 50, heatmapMs: 200 }, results }, null, 2));
    else {
      for (const [name, r] of Object.entries(results)) log(`  ${name.padEnd(24)} ${Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(1)}`).join('  ')}`);
      log('  targets: input to frame < 50 ms (smoothing, zoom, tooltip, x axis, heatmap wheel/pan); 1024×1024 heatmap < 200 ms');
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
