// The standalone report in headless Chromium, for real runs (trained in the setup) and for the
// fixture adapters: the charts and heatmaps drew what the data says, no CSP violation, hostile
// metadata stays text. Screenshots go to test/.artifacts/ (look at them).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSafetensors, serializeSafetensors } from '../../src/formats/safetensors';
import { writeReport } from '../../src/cli/commands/report';
import { divergingRgb } from '../../webview-ui/src/heatmap/colormap';
import { formatValue } from '../../webview-ui/src/series';
import { canvasPixel, chromiumAvailable, openPage, screenshot, type OpenedPage } from './support/browser';
import { ensureWebviewBuilt } from './support/build';
import { tempDir, tinyRun } from './support/runs';
import { tooltip } from './support/tooltip';
import { syntheticLoss, writeBigRun, writeSquareAdapter } from './support/synthetic';

const PEFT_ADAPTER = path.resolve(__dirname, '../fixtures/peft/llama-tiny-qkvo-r8/adapter');
const REAL_WORLD = path.resolve(__dirname, '../../../shared/fixtures/real-world');

/** ΔW = s·B·A from a checkpoint file, computed here independently of the dashboard code. */
function deltaFromCheckpoint(file: string, s: number): { rows: number; cols: number; data: Float64Array } {
  const st = parseSafetensors(fs.readFileSync(file), file);
  const a = st.toFloat32('param/linear.lora_A');
  const b = st.toFloat32('param/linear.lora_B');
  const [r, cols] = st.entry('param/linear.lora_A').shape;
  const rows = st.entry('param/linear.lora_B').shape[0];
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) for (let m = 0; m < r; m++) out[i * cols + j] += s * b[i * r + m] * a[m * cols + j];
  return { rows, cols, data: out };
}

/** Eigenvalues of a symmetric n×n matrix (cyclic Jacobi), descending: an oracle independent of src/engine/spectrum. */
function symmetricEigenvalues(m: Float64Array, n: number): number[] {
  const a = Float64Array.from(m);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off < 1e-24) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - sn * akq;
          a[k * n + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - sn * aqk;
          a[q * n + k] = sn * apk + c * aqk;
        }
      }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]).sort((x, y) => y - x);
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

function closeRgb(got: number[], want: number[], what: string): void {
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[c] - want[c]) <= 1, `${what}: got rgb(${got.slice(0, 3)}) want rgb(${want})`);
}

describe('webview report (headless Chromium)', function () {
  this.timeout(120_000);
  let work: string;
  let runR2: string;
  let runR1: string;

  before(async function () {
    if (!chromiumAvailable()) {
      console.log('    chromium not found at /usr/bin/chromium: skipping webview tests');
      this.skip();
    }
    ensureWebviewBuilt();
    work = tempDir('lora-lab-webview-');
    runR2 = await tinyRun(work, { name: 'sweep-r2', r: 2 });
    runR1 = await tinyRun(work, { name: 'sweep-r1', r: 1 });
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** The rank-sweep report (r = 1 and r = 2 overlaid), written once. */
  async function openSweep(opts: Parameters<typeof openPage>[1] = {}): Promise<OpenedPage> {
    const html = path.join(work, 'sweep.html');
    if (!fs.existsSync(html)) await writeReport([runR1, runR2], html);
    return openPage(`file://${html}`, opts);
  }

  describe('a real low-rank-recovery run', () => {
    let opened: OpenedPage;
    let html: string;
    before(async () => {
      html = path.join(work, 'run.html');
      await writeReport([runR2], html);
      opened = await openPage(`file://${html}`);
    });
    after(async () => opened?.close());

    it('is one self-contained file: no external references, nonce’d script, strict CSP', () => {
      const text = fs.readFileSync(html, 'utf8');
      assert.match(text, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'nonce-[^']+'; style-src 'nonce-[^']+'/);
      assert.equal((text.match(/<script nonce=/g) ?? []).length, 1);
      // Outside the inlined bundle, style and data block: no element loads anything.
      const markup = text
        .replace(/<script nonce="[^"]+">[\s\S]*?<\/script>/, '')
        .replace(/<style nonce="[^"]+">[\s\S]*?<\/style>/, '')
        .replace(/<script type="application\/json"[^>]*>[\s\S]*?<\/script>/, '');
      assert.doesNotMatch(markup, /\b(src|href)=/);
      assert.doesNotMatch(markup, /<script/);
    });

    it('loads with no CSP violation and no page error', async () => {
      assert.equal(await opened.page.evaluate(() => document.body.dataset.ready), 'true');
      assert.deepEqual(await opened.cspViolations(), []);
      assert.deepEqual(opened.pageErrors, []);
      await screenshot(opened.page, 'report-run-loss');
    });

    it('the runs table and the cursor read-out show the values of metrics.jsonl', async () => {
      const metrics = fs.readFileSync(path.join(runR2, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const last = metrics[metrics.length - 1];
      // The report packs metrics as float32.
      assert.equal(await opened.page.textContent('[data-testid=last-loss]'), formatValue(Math.fround(last.loss)));
      assert.equal(await opened.page.textContent('[data-testid=run-status]'), 'completed');
      // No smoothing, then hover the middle of the loss chart: the read-out is that step's raw loss.
      await opened.page.$eval('[data-testid=smoothing]', (el) => {
        (el as HTMLInputElement).value = '0';
        el.dispatchEvent(new Event('input'));
      });
      await opened.page.waitForTimeout(100);
      const over = await opened.page.$('[data-testid=loss-chart] .u-over');
      const box = (await over!.boundingBox())!;
      await opened.page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
      await opened.page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 3 });
      const tt = await tooltip(opened.page);
      const m = /^step (\d+)$/.exec(tt.header);
      assert.ok(m, `tooltip header: ${tt.header}`);
      const point = metrics.find((p: { step: number }) => p.step === Number(m![1]));
      assert.equal(tt.rows.find((r) => r.label === 'sweep-r2 r=2 train')?.value, formatValue(Math.fround(point.loss)));
    });

    it('parameter counts match run.json (PEFT percentage) and the layer shapes', async () => {
      const info = JSON.parse(fs.readFileSync(path.join(runR2, 'run.json'), 'utf8'));
      await opened.page.click('[data-testid=tab-params]');
      assert.equal(await opened.page.textContent('[data-testid=full-params]'), info.params.totalParams.toLocaleString('en-US'));
      assert.equal(await opened.page.textContent('[data-testid=lora-params]'), String(2 * (16 + 12)));
      assert.equal(await opened.page.textContent('[data-testid=percent-peft]'), `${info.params.trainablePercentPeft.toFixed(2)} %`);
      await screenshot(opened.page, 'report-run-params');
    });

    it('the ΔW heatmap pixels are s·B·A of the checkpoint, the truth U·V and the error learned − true, each on its own scale (shared as an option)', async () => {
      await opened.page.click('[data-testid=tab-heatmaps]');
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      const delta = deltaFromCheckpoint(path.join(runR2, 'checkpoints/step-60/tensors.safetensors'), 1);
      const truthFile = path.join(runR2, 'truth/tensors.safetensors');
      const truth = parseSafetensors(fs.readFileSync(truthFile), truthFile).toFloat32('true_delta_w');
      const error = delta.data.map((v, i) => Math.fround(v) - truth[i]);
      const scale = maxAbs(delta.data);
      const truthScale = maxAbs(truth);
      const errorScale = maxAbs(error);
      assert.ok(Math.abs(Number(await opened.page.getAttribute('canvas[data-testid=heatmap-truth]', 'data-max-abs')) - truthScale) < 1e-6 * truthScale);
      assert.ok(Math.abs(Number(await opened.page.getAttribute('canvas[data-testid=heatmap-error]', 'data-max-abs')) - errorScale) < 1e-3 * errorScale);
      let iMax = 0;
      let iMin = 0;
      delta.data.forEach((v, i) => {
        if (v > delta.data[iMax]) iMax = i;
        if (v < delta.data[iMin]) iMin = i;
      });
      for (const idx of [0, iMax, iMin, delta.rows * delta.cols - 1]) {
        const i = Math.floor(idx / delta.cols);
        const j = idx % delta.cols;
        closeRgb(await canvasPixel(opened.page, 'heatmap-delta', j, i), divergingRgb(delta.data[idx], scale), `ΔW[${i}, ${j}] = ${delta.data[idx]}`);
        closeRgb(await canvasPixel(opened.page, 'heatmap-truth', j, i), divergingRgb(truth[idx], truthScale), `UV[${i}, ${j}]`);
        closeRgb(await canvasPixel(opened.page, 'heatmap-error', j, i), divergingRgb(error[idx], errorScale), `error[${i}, ${j}]`);
      }
      assert.ok(delta.data[iMax] > 0 && delta.data[iMin] < 0);
      assert.equal(await opened.page.textContent('[data-testid=heatmap-delta-legend] [data-testid=legend-max]'), formatValue(scale));
      assert.equal(await opened.page.textContent('[data-testid=heatmap-delta-legend] [data-testid=legend-min]'), formatValue(-scale));
      assert.ok(await opened.page.$('[data-testid=heatmap-base]'), 'W is shown (the base is known)');
      assert.ok(await opened.page.$('[data-testid=heatmap-merged]'), 'W + ΔW is shown');
      assert.equal(await opened.page.evaluate(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.compute), 'worker');
      // Value under the cursor: hover cell (0, 0).
      const c = (await opened.page.locator('canvas[data-testid=heatmap-delta]').first().boundingBox())!;
      await opened.page.mouse.move(c.x + 2, c.y + 2);
      assert.equal(await opened.page.textContent('[data-testid=heatmap-delta-readout]'), `[0, 0] = ${formatValue(Math.fround(delta.data[0]))}`);
      assert.equal(await opened.page.textContent('[data-testid=heatmap-delta-axes]'), `rows 0–${delta.rows - 1}: output features (k = ${delta.rows}) · columns 0–${delta.cols - 1}: input features (d = ${delta.cols})`);
      // The panels fill the pane: two columns of a 1200 px window.
      const pane = (await opened.page.locator('[data-testid=heatmap-view]').first().boundingBox())!;
      assert.ok(c.width > 0.4 * pane.width, `ΔW drawn ${c.width} px wide in a ${pane.width} px pane`);
      await screenshot(opened.page, 'report-run-heatmaps');
      // Shared scale: ΔW, U·V and the error on one range.
      await opened.page.selectOption('[data-testid=heatmap-scale]', 'shared');
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      const shared = Math.max(scale, truthScale, errorScale);
      for (const id of ['heatmap-delta', 'heatmap-truth', 'heatmap-error']) {
        assert.ok(Math.abs(Number(await opened.page.getAttribute(`canvas[data-testid=${id}]`, 'data-max-abs')) - shared) < 1e-3 * shared, id);
      }
      closeRgb(await canvasPixel(opened.page, 'heatmap-truth', 0, 0), divergingRgb(truth[0], shared), 'UV[0, 0] on the shared scale');
      await opened.page.selectOption('[data-testid=heatmap-scale]', 'panel');
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      // The wheel zooms about the cursor: a window of the matrix at full detail, readout in matrix coordinates.
      const c2 = (await opened.page.locator('canvas[data-testid=heatmap-delta]').first().boundingBox())!;
      await opened.page.mouse.move(c2.x + c2.width * 0.75, c2.y + c2.height * 0.75);
      await opened.page.mouse.wheel(0, -100);
      await opened.page.waitForFunction(() => {
        const v = document.querySelector('[data-testid=heatmap-view]') as HTMLElement;
        return v.dataset.ready === 'true' && v.dataset.window !== `0,${12},0,${16}`;
      });
      const [r0, r1, c0, c1] = ((await opened.page.evaluate(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.window)) ?? '').split(',').map(Number);
      assert.ok(r1 - r0 === 8 && c1 - c0 === 11 && r0 > 0 && c0 > 0, `window rows ${r0}–${r1}, cols ${c0}–${c1}`);
      const z = (await opened.page.locator('canvas[data-testid=heatmap-delta]').first().boundingBox())!;
      await opened.page.mouse.move(z.x + 2, z.y + 2);
      assert.equal(await opened.page.textContent('[data-testid=heatmap-delta-readout]'), `[${r0}, ${c0}] = ${formatValue(Math.fround(delta.data[r0 * delta.cols + c0]))}`);
      // The colours keep the whole matrix's scale.
      closeRgb(await canvasPixel(opened.page, 'heatmap-delta', 0, 0), divergingRgb(delta.data[r0 * delta.cols + c0], scale), 'zoomed ΔW[r0, c0]');
      await screenshot(opened.page, 'report-run-heatmaps-zoomed');
      await opened.page.mouse.dblclick(z.x + 5, z.y + 5);
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.window === '0,12,0,16');
    });

    it('the checkpoint scrubber shows ΔW at an earlier step', async () => {
      await opened.page.$eval('[data-testid=checkpoint-scrubber]', (el) => {
        (el as HTMLInputElement).value = '0';
        el.dispatchEvent(new Event('input'));
      });
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      assert.equal(await opened.page.textContent('[data-testid=checkpoint-step]'), 'step 20');
      const delta = deltaFromCheckpoint(path.join(runR2, 'checkpoints/step-20/tensors.safetensors'), 1);
      const scale = Number(await opened.page.getAttribute('canvas[data-testid=heatmap-delta]', 'data-max-abs'));
      // ΔW's own scale at that step (one per panel by default).
      assert.ok(Math.abs(scale - maxAbs(delta.data)) <= 1e-6 * maxAbs(delta.data), `scale ${scale} vs max |ΔW| ${maxAbs(delta.data)}`);
      closeRgb(await canvasPixel(opened.page, 'heatmap-delta', 3, 2), divergingRgb(delta.data[2 * delta.cols + 3], scale), 'ΔW[2, 3] at step 20');
    });

    it('spectra: effective rank per checkpoint equals exp(entropy) of the singular values of the explicit ΔW', async () => {
      await opened.page.click('[data-testid=tab-spectra]');
      const cells = await opened.page.$$eval('[data-testid=spectrum-table] [data-testid=effective-rank]', (els) => els.map((e) => e.textContent));
      // σ of ΔW = s·B·A formed here (12×16), from the eigenvalues of ΔW·ΔWᵀ by Jacobi: no code shared with the report.
      const want = [20, 40, 60].map((step) => {
        const d = deltaFromCheckpoint(path.join(runR2, `checkpoints/step-${step}/tensors.safetensors`), 1);
        const g = new Float64Array(d.rows * d.rows);
        for (let i = 0; i < d.rows; i++) for (let k = 0; k < d.rows; k++) for (let j = 0; j < d.cols; j++) g[i * d.rows + k] += d.data[i * d.cols + j] * d.data[k * d.cols + j];
        const sigma = symmetricEigenvalues(g, d.rows).slice(0, 2).map((v) => Math.sqrt(Math.max(0, v)));
        const total = sigma.reduce((x, y) => x + y, 0);
        const entropy = -sigma.map((v) => v / total).filter((p) => p > 0).reduce((acc, p) => acc + p * Math.log(p), 0);
        return Math.exp(entropy).toFixed(2);
      });
      assert.deepEqual(cells, want);
      assert.ok(await opened.page.$('[data-testid=spectrum-over-steps] canvas'));
      await screenshot(opened.page, 'report-run-spectra');
    });
  });

  it('a rank sweep overlays both runs with a legend', async () => {
    const o = await openSweep();
    try {
      const legend = await o.page.$$eval('[data-testid=loss-chart] .u-legend .u-label', (els) => els.map((e) => e.textContent));
      for (const l of ['sweep-r1 r=1 train', 'sweep-r1 r=1 eval', 'sweep-r2 r=2 train', 'sweep-r2 r=2 eval']) assert.ok(legend.includes(l), `legend ${legend}`);
      // Both runs were drawn, each in its legend colour: opaque pixels of either colour in the plot.
      const swatches = await o.page.$$eval('[data-testid=loss-chart] .u-legend .u-marker', (els) => els.map((e) => getComputedStyle(e).borderColor));
      const colours = [...new Set(swatches.filter((c) => !c.startsWith('rgba')))].map((c) => c.match(/\d+/g)!.map(Number));
      assert.equal(colours.length, 2, `two run colours in the legend: ${swatches}`);
      const counts = await o.page.evaluate((want) => {
        const c = document.querySelector('[data-testid=loss-chart] canvas') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        return want.map(([r, g, b]) => {
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && Math.abs(d[i] - r) < 8 && Math.abs(d[i + 1] - g) < 8 && Math.abs(d[i + 2] - b) < 8) n++;
          return n;
        });
      }, colours);
      for (const [k, n] of counts.entries()) assert.ok(n > 100, `run ${k + 1}: ${n} pixels of rgb(${colours[k]})`);
      assert.deepEqual(await o.cspViolations(), []);
      await screenshot(o.page, 'report-sweep');
    } finally {
      await o.close();
    }
  });

  it('100,000 points per run × 4 runs: two rows per pixel column, a zoom re-reduces the visible range, the read-out stays exact', async () => {
    // Timings are `npm run bench:ui`'s business; this checks what is drawn.
    const dirs = [0, 1, 2, 3].map((k) => writeBigRun(runR2, path.join(work, 'big', `run-${k}`), k, 100_000));
    const html = path.join(work, 'big.html');
    await writeReport(dirs, html);
    const o = await openPage(`file://${html}`);
    try {
      const view = async () => o.page.evaluate(() => {
        const el = document.querySelector('[data-testid=loss-view]') as HTMLElement;
        const plot = (document.querySelector('[data-testid=loss-chart] .u-over') as HTMLElement).getBoundingClientRect().width;
        return { rows: Number(el.dataset.rows), range: (el.dataset.xRange ?? '').split(',').map(Number), plot };
      });
      const full = await view();
      assert.deepEqual(full.range, [1, 100_000]);
      // Two rows per pixel bucket, one spare bucket each side: far fewer than 100,000.
      assert.ok(full.rows > full.plot && full.rows <= 2 * (full.plot + 4), `${full.rows} rows for ${full.plot} px`);
      await o.page.$eval('[data-testid=smoothing]', (el) => {
        (el as HTMLInputElement).value = '0';
        el.dispatchEvent(new Event('input'));
      });
      const over = (await o.page.locator('[data-testid=loss-chart] .u-over').first().boundingBox())!;
      await o.page.mouse.move(over.x + over.width * 0.2, over.y + 50);
      await o.page.mouse.down();
      await o.page.mouse.move(over.x + over.width * 0.4, over.y + 50, { steps: 5 });
      await o.page.mouse.up();
      const zoomed = await view();
      assert.ok(Math.abs(zoomed.range[0] - 20_000) < 1000 && Math.abs(zoomed.range[1] - 40_000) < 1000, `zoomed to ${zoomed.range}`);
      assert.ok(zoomed.rows <= 2 * (zoomed.plot + 4), 'the zoomed range is re-reduced per pixel, not drawn point for point');
      // The read-out gives metrics.jsonl's own values at the step under the cursor (float32-packed).
      await o.page.mouse.move(over.x + over.width * 0.5, over.y + 60, { steps: 3 });
      const tt = await tooltip(o.page);
      const m = /^step (\d+)$/.exec(tt.header);
      assert.ok(m, `tooltip header: ${tt.header}`);
      const step = Number(m![1]);
      assert.ok(step > 20_000 && step < 40_000, `step ${step}`);
      const value = (label: string) => tt.rows.find((r) => r.label === label)?.value;
      assert.equal(value('big-0 r=2 train'), formatValue(Math.fround(syntheticLoss(0, step))));
      assert.equal(value('big-1 r=2 train'), formatValue(Math.fround(syntheticLoss(1, step))));
      // A run hidden from the legend leaves the tooltip.
      await o.page.click('[data-testid=loss-chart] .u-legend .u-series:has(.u-label:text-is("big-0 r=2 train"))');
      await o.page.mouse.move(over.x + over.width * 0.55, over.y + 60, { steps: 2 });
      const after = (await tooltip(o.page)).rows.map((r) => r.label);
      assert.ok(!after.includes('big-0 r=2 train') && after.includes('big-1 r=2 train'), after.join(', '));
      // Double-click: back to the whole run.
      await o.page.mouse.dblclick(over.x + over.width * 0.5, over.y + 60);
      assert.deepEqual((await view()).range, [1, 100_000]);
      assert.deepEqual(o.pageErrors, []);
      await screenshot(o.page, 'report-100k');
    } finally {
      await o.close();
    }
  });

  it('dark colour scheme: the report follows the browser', async () => {
    const o = await openSweep({ colorScheme: 'dark' });
    try {
      const bg = await o.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, 'rgb(30, 30, 30)');
      await screenshot(o.page, 'report-sweep-dark');
    } finally {
      await o.close();
    }
  });

  it('high contrast: a theme switch recolours tables and the canvas axes (VS Code hc-black variables)', async () => {
    const o = await openSweep();
    try {
      // Light text pixels in the loss chart's y-axis strip (the canvas is transparent elsewhere).
      const lightAxisPixels = () =>
        o.page.evaluate(() => {
          const c = document.querySelector('[data-testid=loss-chart] canvas') as HTMLCanvasElement;
          const d = c.getContext('2d')!.getImageData(0, 0, 60, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 128 && d[i] > 200 && d[i + 1] > 200 && d[i + 2] > 200) n++;
          return n;
        });
      assert.equal(await lightAxisPixels(), 0, 'light theme: dark axis labels');
      await o.page.evaluate(() => {
        document.body.classList.add('vscode-high-contrast');
        const vars: Record<string, string> = {
          '--vscode-editor-background': '#000000',
          '--vscode-editor-foreground': '#ffffff',
          '--vscode-foreground': '#ffffff',
          '--vscode-descriptionForeground': '#ffffffb3',
          '--vscode-contrastBorder': '#6fc3df',
          '--vscode-contrastActiveBorder': '#f38518',
          '--vscode-focusBorder': '#f38518',
          '--vscode-panel-border': '#6fc3df',
          '--vscode-panel-background': '#000000',
          '--vscode-editorWidget-background': '#0c141f',
          '--vscode-dropdown-background': '#000000',
          '--vscode-dropdown-foreground': '#ffffff',
          '--vscode-button-secondaryBackground': '#000000',
          '--vscode-button-secondaryForeground': '#ffffff',
          '--vscode-checkbox-background': '#000000',
          '--vscode-checkbox-foreground': '#ffffff',
          '--vscode-checkbox-border': '#6fc3df',
          '--vscode-panelTitle-activeForeground': '#ffffff',
          '--vscode-panelTitle-inactiveForeground': '#ffffff',
          '--vscode-editorRuler-foreground': '#ffffff40',
        };
        for (const [k, v] of Object.entries(vars)) document.body.style.setProperty(k, v);
      });
      await o.page.waitForFunction(() => {
        const c = document.querySelector('[data-testid=loss-chart] canvas') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, 60, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 128 && d[i] > 200 && d[i + 1] > 200 && d[i + 2] > 200) return true;
        return false;
      });
      assert.ok((await lightAxisPixels()) > 20, 'axis labels redrawn in the high-contrast foreground');
      const style = await o.page.evaluate(() => {
        const td = document.querySelector('[data-testid=runs-table] td') as HTMLElement;
        return { bg: getComputedStyle(document.body).backgroundColor, fg: getComputedStyle(document.body).color, border: getComputedStyle(td).borderTopColor };
      });
      assert.deepEqual(style, { bg: 'rgb(0, 0, 0)', fg: 'rgb(255, 255, 255)', border: 'rgb(111, 195, 223)' });
      assert.deepEqual(o.pageErrors, []);
      await screenshot(o.page, 'report-sweep-high-contrast');
    } finally {
      await o.close();
    }
  });

  describe('the PEFT fixture adapter', () => {
    let o: OpenedPage;
    before(async () => {
      const html = path.join(work, 'adapter.html');
      await writeReport([PEFT_ADAPTER], html);
      o = await openPage(`file://${html}`);
    });
    after(async () => o?.close());

    it('opens on the adapter view: format, base model note, 8 modules, config as text', async () => {
      assert.equal(await o.page.evaluate(() => document.body.dataset.tab), 'adapter');
      assert.equal(await o.page.textContent('[data-testid=adapter-format]'), 'Hugging Face PEFT LoRA');
      assert.match((await o.page.textContent('[data-testid=adapter-note]')) ?? '', /cannot run without/);
      assert.equal((await o.page.$$('[data-testid=adapter-modules] tr')).length, 9);
      assert.match((await o.page.textContent('[data-testid=adapter-config]')) ?? '', /"lora_alpha": 16/);
      assert.deepEqual(await o.cspViolations(), []);
      await screenshot(o.page, 'report-adapter');
    });

    it('heatmap of q_proj (layer 0) is (α/r)·B·A of the file', async () => {
      const buttons = await o.page.$$('[data-testid=adapter-modules] vscode-button');
      await buttons[2].click(); // model.layers.0.self_attn.q_proj (sorted)
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      const file = path.join(PEFT_ADAPTER, 'adapter_model.safetensors');
      const st = parseSafetensors(fs.readFileSync(file), file);
      const name = 'base_model.model.model.layers.0.self_attn.q_proj';
      const a = st.toFloat32(`${name}.lora_A.weight`);
      const b = st.toFloat32(`${name}.lora_B.weight`);
      const [r, d] = st.entry(`${name}.lora_A.weight`).shape;
      const k = st.entry(`${name}.lora_B.weight`).shape[0];
      const s = 16 / 8;
      const delta = new Float64Array(k * d);
      for (let i = 0; i < k; i++) for (let j = 0; j < d; j++) for (let m = 0; m < r; m++) delta[i * d + j] += s * b[i * r + m] * a[m * d + j];
      const scale = maxAbs(delta);
      assert.ok(Math.abs(Number(await o.page.getAttribute('canvas[data-testid=heatmap-delta]', 'data-max-abs')) - scale) < 1e-5 * scale);
      for (const [i, j] of [[0, 0], [10, 33], [63, 63]]) closeRgb(await canvasPixel(o.page, 'heatmap-delta', j, i), divergingRgb(delta[i * d + j], scale), `ΔW[${i}, ${j}]`);
      await screenshot(o.page, 'report-adapter-heatmap');
    });
  });

  it('a 1024×1024 ΔW (r = 8) is block-downsampled in the worker: 4×4 blocks, largest |value| per block', async () => {
    const d = 1024;
    const r = 8;
    const dir = path.join(work, 'big-adapter');
    const { a, b } = writeSquareAdapter(dir, d, r);
    const html = path.join(work, 'big-adapter.html');
    await writeReport([dir], html);
    const o = await openPage(`file://${html}`);
    try {
      // How long this takes is `npm run bench:ui`'s business.
      await o.page.click('[data-testid=tab-heatmaps]');
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      assert.equal(await o.page.evaluate(() => (document.querySelector('canvas[data-testid=heatmap-delta]') as HTMLCanvasElement).width), 256);
      // Expected: block (gi, gj) = the value of largest magnitude among rows 4gi..4gi+3, cols 4gj..4gj+3.
      const cell = (i: number, j: number) => {
        let v = 0;
        for (let m = 0; m < r; m++) v += b[i * r + m] * a[m * d + j];
        return 2 * v;
      };
      let maxAbsAll = 0;
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) maxAbsAll = Math.max(maxAbsAll, Math.abs(cell(i, j)));
      for (const [gi, gj] of [[0, 0], [100, 37], [255, 255]]) {
        let best = 0;
        for (let i = 4 * gi; i < 4 * gi + 4; i++) for (let j = 4 * gj; j < 4 * gj + 4; j++) if (Math.abs(cell(i, j)) > Math.abs(best)) best = cell(i, j);
        closeRgb(await canvasPixel(o.page, 'heatmap-delta', gj, gi), divergingRgb(best, maxAbsAll), `block (${gi}, ${gj})`);
      }
      assert.match((await o.page.textContent('[data-testid=heatmap-status]')) ?? '', /1024×1024, shown in 4×4 blocks/);
      assert.equal(await o.page.evaluate(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.compute), 'worker');
      await screenshot(o.page, 'report-1024-heatmap');
    } finally {
      await o.close();
    }
  });

  it('a drawn heatmap stays drawn: tab switches and resizes size the canvases, they do not compute them again', async () => {
    const o = await openSweep();
    try {
      for (let k = 0; k < 5; k++) {
        await o.page.click('[data-testid=tab-heatmaps]');
        await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
        // The page sends a resize on every tab switch: one more here, then let every timer and
        // frame it may have started run out. The canvases on screen must be the ones drawn.
        const after = await o.page.evaluate(async () => {
          const el = document.querySelector('[data-testid=heatmap-view]') as HTMLElement;
          const canvas = document.querySelector('canvas[data-testid=heatmap-delta]');
          window.dispatchEvent(new Event('resize'));
          await new Promise((r) => setTimeout(r, 500));
          await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
          return { same: !!canvas?.isConnected && document.querySelector('canvas[data-testid=heatmap-delta]') === canvas, ready: el.dataset.ready, status: document.querySelector('[data-testid=heatmap-status]')?.textContent ?? '' };
        });
        assert.ok(after.same, `pass ${k}: the ΔW canvas was replaced after the view was ready`);
        assert.equal(after.ready, 'true', `pass ${k}`);
        assert.match(after.status, /^linear: 12×16\./, `pass ${k}`);
        await o.page.click('[data-testid=tab-loss]');
      }
      // A narrower window: the same canvases, sized for one column.
      await o.page.click('[data-testid=tab-heatmaps]');
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      const wide = (await o.page.locator('canvas[data-testid=heatmap-delta]').boundingBox())!.width;
      await o.page.evaluate(() => ((window as unknown as { __drawn: Element | null }).__drawn = document.querySelector('canvas[data-testid=heatmap-delta]')));
      await o.page.setViewportSize({ width: 480, height: 900 });
      await o.page.waitForFunction((w) => (document.querySelector('canvas[data-testid=heatmap-delta]') as HTMLElement).getBoundingClientRect().width !== w, wide);
      assert.ok(await o.page.evaluate(() => document.querySelector('canvas[data-testid=heatmap-delta]') === (window as unknown as { __drawn: Element | null }).__drawn));
      const narrow = (await o.page.locator('canvas[data-testid=heatmap-delta]').boundingBox())!.width;
      const pane = (await o.page.locator('[data-testid=heatmap-view]').boundingBox())!.width;
      assert.ok(narrow < wide && narrow > 0.9 * pane - 20, `one column: ${narrow} px of a ${pane} px pane (was ${wide} px)`);
      assert.equal(await o.page.evaluate(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready), 'true');
      assert.deepEqual(o.pageErrors, []);
    } finally {
      await o.close();
    }
  });

  it('an adapter whose base model folder is found: W and W + ΔW next to ΔW', async () => {
    const root = path.join(work, 'with-base');
    fs.cpSync(path.resolve(PEFT_ADAPTER, '..', 'base'), path.join(root, 'base'), { recursive: true });
    fs.cpSync(PEFT_ADAPTER, path.join(root, 'adapter'), { recursive: true });
    const cfgFile = path.join(root, 'adapter', 'adapter_config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), base_model_name_or_path: '../base' }));
    const html = path.join(work, 'with-base.html');
    await writeReport([path.join(root, 'adapter')], html);
    const o = await openPage(`file://${html}`);
    try {
      await o.page.click('[data-testid=tab-heatmaps]');
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      assert.ok(await o.page.$('canvas[data-testid=heatmap-merged]'));
      // First module in file order: model.layers.0.self_attn.k_proj, W [32, 64] in the base model.
      const baseFile = path.join(root, 'base', 'model.safetensors');
      const st = parseSafetensors(fs.readFileSync(baseFile), baseFile);
      const w = st.toFloat32('model.layers.0.self_attn.k_proj.weight');
      const scale = Number(await o.page.getAttribute('canvas[data-testid=heatmap-base]', 'data-max-abs'));
      // Each panel on its own scale: W's is exactly max |W|.
      assert.ok(Math.abs(scale - maxAbs(w)) <= 1e-7 * maxAbs(w), `W scale ${scale} vs max |W| ${maxAbs(w)}`);
      for (const [i, j] of [[0, 0], [31, 63], [7, 20]]) closeRgb(await canvasPixel(o.page, 'heatmap-base', j, i), divergingRgb(w[i * 64 + j], scale), `W[${i}, ${j}]`);
      // W + ΔW with ΔW = (α/r)·B·A of the adapter file (α = 16, r = 8), formed here.
      const adFile = path.join(root, 'adapter', 'adapter_model.safetensors');
      const ad = parseSafetensors(fs.readFileSync(adFile), adFile);
      const prefix = 'base_model.model.model.layers.0.self_attn.k_proj';
      const la = ad.toFloat32(`${prefix}.lora_A.weight`);
      const lb = ad.toFloat32(`${prefix}.lora_B.weight`);
      const merged = new Float64Array(32 * 64);
      for (let i = 0; i < 32; i++) for (let j = 0; j < 64; j++) {
        let v = 0;
        for (let m = 0; m < 8; m++) v += lb[i * 8 + m] * la[m * 64 + j];
        merged[i * 64 + j] = Math.fround(w[i * 64 + j] + 2 * v);
      }
      const mScale = Number(await o.page.getAttribute('canvas[data-testid=heatmap-merged]', 'data-max-abs'));
      assert.ok(Math.abs(mScale - maxAbs(merged)) <= 1e-6 * maxAbs(merged), `W + ΔW scale ${mScale} vs ${maxAbs(merged)}`);
      let iExt = 0;
      merged.forEach((v, i) => Math.abs(v) > Math.abs(merged[iExt]) && (iExt = i));
      for (const idx of [0, iExt, 32 * 64 - 1]) {
        const i = Math.floor(idx / 64);
        const j = idx % 64;
        closeRgb(await canvasPixel(o.page, 'heatmap-merged', j, i), divergingRgb(merged[idx], mScale), `(W + ΔW)[${i}, ${j}]`);
      }
      // The extreme cell is the end of the RdBu scale, whatever the colour-map code says.
      closeRgb(await canvasPixel(o.page, 'heatmap-merged', iExt % 64, Math.floor(iExt / 64)), merged[iExt] > 0 ? [178, 24, 43] : [33, 102, 172], 'extreme of W + ΔW');
      await screenshot(o.page, 'report-adapter-with-base');
      // With the base model known, the Parameters view gives PEFT's own print_trainable_parameters figure.
      const ref = JSON.parse(fs.readFileSync(path.resolve(PEFT_ADAPTER, '..', 'reference.json'), 'utf8'));
      await o.page.click('[data-testid=tab-params]');
      assert.equal(await o.page.textContent('[data-testid=lora-params]'), ref.trainable_params.toLocaleString('en-US'));
      assert.equal(await o.page.textContent('[data-testid=full-params]'), (ref.all_params - ref.trainable_params).toLocaleString('en-US'));
      assert.equal(await o.page.textContent('[data-testid=percent-peft]'), `${((100 * ref.trainable_params) / ref.all_params).toFixed(2)} %`);
      await screenshot(o.page, 'report-adapter-with-base-params');
    } finally {
      await o.close();
    }
  });

  it('hostile metadata renders as text and runs nothing', async () => {
    const dir = path.join(work, 'hostile');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'evil_lora.safetensors');
    const payload = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
    fs.writeFileSync(
      file,
      serializeSafetensors(
        {
          'lora_unet_mid.lora_down.weight': { dtype: 'F32', shape: [2, 4], data: Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0]) },
          'lora_unet_mid.lora_up.weight': { dtype: 'F32', shape: [3, 2], data: Float32Array.from([1, 0, 0, 1, 1, 1]) },
        },
        { ss_comment: payload, 'modelspec.title': '<b onmouseover=alert(1)>bold?</b>' },
      ),
    );
    const html = path.join(work, 'hostile.html');
    await writeReport([file], html);
    assert.ok(!fs.readFileSync(html, 'utf8').includes('<script>window.__pwned'), 'payload is escaped inside the data block');
    const o = await openPage(`file://${html}`);
    try {
      const texts = await o.page.$$eval('[data-testid=adapter-metadata] pre', (els) => els.map((e) => e.textContent));
      assert.ok(texts.includes(payload), `metadata shown verbatim as text: ${texts}`);
      assert.equal(await o.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
      assert.equal(await o.page.$$eval('[data-testid=adapter-view] img, [data-testid=adapter-view] b, [data-testid=adapter-view] script', (els) => els.length), 0);
      assert.deepEqual(await o.cspViolations(), []);
      await screenshot(o.page, 'report-hostile');
    } finally {
      await o.close();
    }
  });

  it('real-world files with hostile metadata (promptfoo/modelaudit) render as text', async function () {
    const files = ['promptfoo__modelaudit/script_injection.safetensors', 'promptfoo__modelaudit/multiple_patterns.safetensors'].map((f) => path.join(REAL_WORLD, f));
    if (!files.every((f) => fs.existsSync(f))) {
      console.log(`    ${REAL_WORLD} not present: skipping the real-world hostile files`);
      this.skip();
    }
    const html = path.join(work, 'real-hostile.html');
    await writeReport(files, html);
    const o = await openPage(`file://${html}`);
    try {
      const texts = (await o.page.$$eval('[data-testid=adapter-metadata] pre', (els) => els.map((e) => e.textContent ?? ''))).join('\n');
      assert.match(texts, /<script/i);
      assert.equal(await o.page.$$eval('[data-testid=adapter-view] script, [data-testid=adapter-view] img', (els) => els.length), 0);
      assert.deepEqual(await o.cspViolations(), []);
      assert.deepEqual(o.pageErrors, []);
      await screenshot(o.page, 'report-real-hostile');
    } finally {
      await o.close();
    }
  });

  it('real-world adapters: LyCORIS LoKr ΔW drawn, mlx-lm absolute scale, an LFS pointer folder explained', async function () {
    const lokr = path.join(REAL_WORLD, 'KohakuBlueleaf__LyCORIS/smart_falcon_4_lokr.safetensors');
    const mlx = path.join(REAL_WORLD, 'ml-explore__mlx-examples');
    const lfs = path.join(REAL_WORLD, 'peft-Yairama__alpaca-miner__LFS_POINTER_WEIGHTS');
    if (![lokr, mlx, lfs].every((f) => fs.existsSync(f))) {
      console.log(`    ${REAL_WORLD} not present: skipping the real-world adapters`);
      this.skip();
    }
    const html = path.join(work, 'real-adapters.html');
    await writeReport([lokr, mlx, lfs], html);
    const o = await openPage(`file://${html}`);
    try {
      const formats = await o.page.$$eval('[data-testid=adapter-format]', (els) => els.map((e) => e.textContent));
      assert.deepEqual(formats, ['LyCORIS (kohya naming)', 'mlx-lm LoRA', 'unreadable']);
      const warnings = (await o.page.$$eval('[data-testid=adapter-warnings]', (els) => els.map((e) => e.textContent ?? ''))).join('\n');
      assert.match(warnings, /Git LFS pointer to a 16822989-byte object/);
      assert.match(warnings, /absolute scale 10/);
      assert.deepEqual(await o.cspViolations(), []);
      await screenshot(o.page, 'report-real-adapters');
      // The first LoKr module's ΔW (no A/B factors: drawn from its Kronecker product).
      await o.page.click('[data-testid=tab-heatmaps]');
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      assert.ok(Number(await o.page.getAttribute('canvas[data-testid=heatmap-delta]', 'data-max-abs')) > 0);
      await screenshot(o.page, 'report-real-lokr-heatmap');
      // mlx-lm: scale 10 (not alpha / r) in the module table.
      await o.page.click('[data-testid=tab-adapter]');
      const mlxRow = await o.page.$$eval('[data-testid=adapter-block]:nth-of-type(2) [data-testid=adapter-modules] tr:nth-child(2) td', (els) => els.map((e) => e.textContent));
      assert.equal(mlxRow[4], '10');
      assert.deepEqual(o.pageErrors, []);
    } finally {
      await o.close();
    }
  });
});
