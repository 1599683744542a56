// The dashboard's charts and views as a user reads them, on real runs (trained in the setup) and
// adapters, in the standalone report and in the live panel (a DashboardSession): the tooltip at the
// cursor, axis titles, no placeholder legends, the wall-clock axis, CSV and PNG exports, the
// differing-hyperparameter table, spectra overlaid, the subtitle, and the Parameters numbers for a
// GPT-2 adapter. Expected values come from the files on disk, computed here. Screenshots in a dark and
// a light theme go to test/.artifacts/.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeSafetensors } from '../../src/formats/safetensors';
import { writeReport } from '../../src/cli/commands/report';
import { DashboardSession } from '../../src/dashboard/dashboardSession';
import { formatValue } from '../../webview-ui/src/series';
import { chromiumAvailable, openPage, screenshot, type OpenedPage } from './support/browser';
import { ensureWebviewBuilt } from './support/build';
import { Panel } from './support/panel';
import { tempDir, tinyRun } from './support/runs';
import { tooltip } from './support/tooltip';

const TINY_GPT2 = path.resolve(__dirname, '../../examples/models/tiny-gpt2');
const REAL_WORLD = path.resolve(__dirname, '../../../shared/fixtures/real-world');

/** One F32 tensor of a safetensors file, decoded here from a fresh (aligned) copy of its bytes. */
function readF32(file: string, name: string): { shape: number[]; data: Float32Array } {
  const raw = fs.readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const e = (JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>)[name];
  assert.equal(e.dtype, 'F32');
  const bytes = new Uint8Array(raw.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]));
  return { shape: e.shape, data: new Float32Array(bytes.buffer, 0, bytes.length / 4) };
}

interface Point {
  step: number;
  loss: number;
  evalLoss?: number;
  lr: number;
  gradNorm: number;
  elapsedMs: number;
}

function metricsOf(runDir: string): Point[] {
  return fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Point);
}

/** Parameters in a safetensors file, from its header. */
function headerParams(file: string): number {
  const raw = fs.readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>;
  return Object.entries(header).filter(([k]) => k !== '__metadata__').reduce((acc, [, v]) => acc + v.shape.reduce((x, y) => x * y, 1), 0);
}

/** A PEFT adapter on GPT-2's c_attn (both layers of examples/models/tiny-gpt2), rank r. */
function writeGpt2Adapter(dir: string, r: number, base: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const i of [0, 1]) {
    t[`base_model.model.transformer.h.${i}.attn.c_attn.lora_A.weight`] = { dtype: 'F32', shape: [r, 64], data: Float32Array.from({ length: r * 64 }, (_, k) => Math.sin(k + i) * 0.05) };
    t[`base_model.model.transformer.h.${i}.attn.c_attn.lora_B.weight`] = { dtype: 'F32', shape: [192, r], data: Float32Array.from({ length: 192 * r }, (_, k) => Math.cos(k * 0.3 + i) * 0.05) };
  }
  fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), serializeSafetensors(t));
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 2 * r, target_modules: ['c_attn'], fan_in_fan_out: true, bias: 'none', base_model_name_or_path: base }));
}

describe('dashboard charts and views (headless Chromium)', function () {
  this.timeout(120_000);
  let work: string;
  let runA: string;
  let runB: string;
  let sweepHtml: string;

  before(async function () {
    if (!chromiumAvailable()) {
      console.log('    chromium not found at /usr/bin/chromium: skipping webview tests');
      this.skip();
    }
    ensureWebviewBuilt();
    work = tempDir('lora-lab-charts-');
    runA = await tinyRun(work, { name: 'cmp-r1', r: 1 });
    runB = await tinyRun(work, { name: 'cmp-r4', r: 4 });
    sweepHtml = path.join(work, 'cmp.html');
    await writeReport([runA, runB], sweepHtml);
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  describe('two runs compared (report)', () => {
    let o: OpenedPage;
    before(async () => {
      o = await openPage(`file://${sweepHtml}`, { width: 1400 });
    });
    after(async () => o?.close());

    it('the title names every run and the subtitle says it is a report', async () => {
      const names = [runA, runB].map((d) => JSON.parse(fs.readFileSync(path.join(d, 'run.json'), 'utf8')).name as string);
      const title = (await o.page.textContent('h1')) ?? '';
      for (const n of names) assert.ok(title.includes(n), `title "${title}" names ${n}`);
      assert.match((await o.page.textContent('[data-testid=subtitle]')) ?? '', /^Report · 2 runs · generated \d{4}-/);
    });

    it('a tooltip at the cursor: values of metrics.jsonl at that step, sorted, in the run colours', async () => {
      await o.page.$eval('[data-testid=smoothing]', (el) => {
        (el as HTMLInputElement).value = '0';
        el.dispatchEvent(new Event('input'));
      });
      const over = (await o.page.locator('[data-testid=loss-chart] .u-over').first().boundingBox())!;
      const mx = over.x + over.width * 0.3;
      const my = over.y + over.height * 0.4;
      await o.page.mouse.move(mx - 20, my);
      await o.page.mouse.move(mx, my, { steps: 3 });
      const tt = await tooltip(o.page);
      const step = Number(/^step (\d+)$/.exec(tt.header)?.[1]);
      assert.ok(step > 0, `header ${tt.header}`);
      // At the cursor, not under the charts.
      assert.ok(Math.abs(tt.box.left - mx) < 40 && Math.abs(tt.box.top - my) < 40, `tooltip at (${tt.box.left}, ${tt.box.top}), cursor at (${mx}, ${my})`);
      const want = new Map<string, number>();
      for (const [dir, label] of [[runA, 'cmp-r1 r=1'], [runB, 'cmp-r4 r=4']] as const) {
        const p = metricsOf(dir).find((x) => x.step === step)!;
        want.set(`${label} train`, p.loss);
        if (p.evalLoss !== undefined) want.set(`${label} eval`, p.evalLoss);
      }
      const trainRows = tt.rows.filter((r) => r.label.endsWith(' train'));
      assert.equal(trainRows.length, 2);
      for (const r of trainRows) assert.equal(r.value, formatValue(Math.fround(want.get(r.label)!)), r.label);
      const values = tt.rows.map((r) => Number(r.value));
      assert.deepEqual(values, [...values].sort((a, b) => b - a), 'rows sorted, highest first');
      // Each row's swatch is its run's legend colour.
      const legend = await o.page.$$eval('[data-testid=loss-chart] .u-legend .u-series', (els) => els.map((e) => [e.querySelector('.u-label')?.textContent ?? '', getComputedStyle(e.querySelector('.u-marker')!).borderColor] as [string, string]));
      const colourOf = new Map(legend);
      for (const r of trainRows) assert.equal(r.color, colourOf.get(r.label), r.label);
      assert.notEqual(trainRows[0].color, trainRows[1].color);
      await screenshot(o.page, 'charts-tooltip-light');
    });

    it('every axis has a title with its unit; legends have no "--" placeholders', async () => {
      const axes = await o.page.$$eval('.uplot', (els) => els.map((e) => (e as HTMLElement).dataset.axes ?? ''));
      assert.ok(axes.length >= 3);
      for (const a of axes.slice(0, 3)) assert.ok(a.startsWith('training step|'), a);
      assert.deepEqual(axes.slice(0, 3).map((a) => a.split('|')[1]), ['loss (mean squared error)', 'learning rate', 'gradient L2 norm']);
      const legendText = await o.page.$$eval('.u-legend', (els) => els.map((e) => e.textContent ?? '').join(' '));
      assert.ok(!legendText.includes('--'), legendText);
    });

    it('the hyperparameters that differ are tabled beside the charts', async () => {
      const rows = await o.page.$$eval('[data-testid=hyperparams] tr[data-key]', (els) => els.map((e) => Array.from(e.querySelectorAll('td')).map((td) => td.textContent)));
      const byKey = new Map(rows.map((r) => [r[0], r.slice(1)]));
      const cfgA = JSON.parse(fs.readFileSync(path.join(runA, 'config.json'), 'utf8'));
      const cfgB = JSON.parse(fs.readFileSync(path.join(runB, 'config.json'), 'utf8'));
      assert.deepEqual(byKey.get('lora.r'), [String(cfgA.lora.r), String(cfgB.lora.r)]);
      assert.deepEqual(byKey.get('lora.alpha'), [String(cfgA.lora.alpha), String(cfgB.lora.alpha)]);
      assert.equal(cfgA.training.seed, cfgB.training.seed);
      assert.ok(!byKey.has('training.seed') && !byKey.has('name'), [...byKey.keys()].join(', '));
      const side = (await o.page.locator('[data-testid=hyperparams]').first().boundingBox())!;
      const chart = (await o.page.locator('[data-testid=loss-chart]').first().boundingBox())!;
      assert.ok(side.x >= chart.x + chart.width - 1 && side.y < chart.y + chart.height, 'beside the loss chart');
    });

    it('CSV export of the loss chart has every point of metrics.jsonl; PNG export is a PNG of the chart', async () => {
      const [csvDl] = await Promise.all([o.page.waitForEvent('download'), o.page.click('[data-testid=loss-chart-csv]')]);
      const csv = fs.readFileSync((await csvDl.path())!, 'utf8').trim().split('\n');
      assert.equal(csv[0], 'run,step,elapsed_s,loss,loss_smoothed,eval_loss');
      const ma = metricsOf(runA);
      const mb = metricsOf(runB);
      assert.equal(csv.length, 1 + ma.length + mb.length);
      const first = csv[1].split(',');
      assert.equal(first[0], 'cmp-r1 r=1');
      assert.equal(Number(first[1]), ma[0].step);
      assert.equal(Number(first[3]), Math.fround(ma[0].loss));
      assert.match(csvDl.suggestedFilename(), /^Loss-.*\.csv$/);
      const [pngDl] = await Promise.all([o.page.waitForEvent('download'), o.page.click('[data-testid=loss-chart-png]')]);
      const png = fs.readFileSync((await pngDl.path())!);
      assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
      const width = png.readUInt32BE(16);
      const canvasWidth = await o.page.$eval('[data-testid=loss-chart] canvas', (c) => (c as HTMLCanvasElement).width);
      assert.equal(width, canvasWidth);
      // Its legend strip (below the plot) is drawn in the two run colours of the chart's legend.
      const runColours = await o.page.$$eval('[data-testid=loss-chart] .u-legend .u-series', (els) =>
        els.filter((e) => / train$/.test(e.querySelector('.u-label')?.textContent ?? '')).map((e) => getComputedStyle(e.querySelector('.u-marker')!).borderColor.match(/\d+/g)!.map(Number)),
      );
      const legendHits = await o.page.evaluate(
        async ([b64, want, plotHeight]) => {
          const img = new Image();
          img.src = `data:image/png;base64,${b64}`;
          await img.decode();
          const c = document.createElement('canvas');
          c.width = img.width;
          c.height = img.height;
          const ctx = c.getContext('2d')!;
          ctx.drawImage(img, 0, 0);
          const d = ctx.getImageData(0, img.height - (img.height - (plotHeight as number)) + 0, img.width, img.height - (plotHeight as number)).data;
          return (want as number[][]).map(([r, g, bl]) => {
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - r) < 10 && Math.abs(d[i + 1] - g) < 10 && Math.abs(d[i + 2] - bl) < 10) n++;
            return n;
          });
        },
        [png.toString('base64'), runColours, png.readUInt32BE(20) - 40] as const,
      );
      assert.equal(runColours.length, 2);
      for (const [k, n] of legendHits.entries()) assert.ok(n > 20, `legend swatch ${k} in rgb(${runColours[k]}): ${n} pixels`);
      fs.mkdirSync(path.resolve(__dirname, '..', '.artifacts'), { recursive: true });
      fs.writeFileSync(path.resolve(__dirname, '..', '.artifacts', 'charts-export-loss.png'), png);
    });

    it('the x axis can be wall-clock time: the range is elapsedMs of metrics.jsonl in seconds', async () => {
      // The switch keeps the charts (new data and axis title, no rebuild): hidden series stay hidden.
      await o.page.evaluate(() => document.querySelectorAll('.uplot').forEach((e) => e.setAttribute('data-before-switch', '1')));
      await o.page.selectOption('[data-testid=x-axis]', 'time');
      await o.page.waitForFunction(() => ((document.querySelector('[data-testid=loss-chart]') as HTMLElement).dataset.axes ?? '').startsWith('wall-clock'));
      const axes = await o.page.$$eval('[data-testid=loss-view] .uplot', (els) => els.map((e) => `${e.getAttribute('data-before-switch')} ${(e as HTMLElement).dataset.axes}`));
      assert.deepEqual(
        axes.map((a) => a.split('|')[0]),
        ['1 wall-clock time since start (s)', '1 wall-clock time since start (s)', '1 wall-clock time since start (s)'],
      );
      const range = ((await o.page.evaluate(() => (document.querySelector('[data-testid=loss-view]') as HTMLElement).dataset.xRange)) ?? '').split(',').map(Number);
      const ma = metricsOf(runA);
      const mb = metricsOf(runB);
      const lo = Math.min(ma[0].elapsedMs, mb[0].elapsedMs) / 1000;
      const hi = Math.max(ma[ma.length - 1].elapsedMs, mb[mb.length - 1].elapsedMs) / 1000;
      assert.ok(Math.abs(range[0] - lo) < 1e-3 && Math.abs(range[1] - hi) < 1e-3, `range ${range}, want ${lo}–${hi}`);
      await screenshot(o.page, 'charts-wallclock-light');
      await o.page.selectOption('[data-testid=x-axis]', 'step');
      await o.page.waitForFunction(() => ((document.querySelector('[data-testid=loss-chart]') as HTMLElement).dataset.axes ?? '').startsWith('training step'));
      const stepRange = ((await o.page.evaluate(() => (document.querySelector('[data-testid=loss-view]') as HTMLElement).dataset.xRange)) ?? '').split(',').map(Number);
      assert.deepEqual(stepRange, [Math.min(ma[0].step, mb[0].step), Math.max(ma[ma.length - 1].step, mb[mb.length - 1].step)]);
    });

    it('spectra: both runs overlaid by index, full width, distinct σ colours, effective rank axis titled', async () => {
      await o.page.click('[data-testid=tab-spectra]');
      const labels = await o.page.$$eval('[data-testid=spectrum-by-index] .u-legend .u-label', (els) => els.map((e) => e.textContent ?? ''));
      assert.equal(labels.filter((l) => l.startsWith('cmp-r1') || l.startsWith('cmp-r4')).length, 2, labels.join(', '));
      const pane = (await o.page.locator('[data-testid=spectra-view]').first().boundingBox())!;
      const chart = (await o.page.locator('[data-testid=spectrum-over-steps] .uplot').first().boundingBox())!;
      assert.ok(chart.width > 0.9 * pane.width, `${chart.width} of ${pane.width}`);
      await o.page.selectOption('[data-testid=spectra-source]', { label: 'cmp-r4 r=4' });
      const sigma = await o.page.$$eval('[data-testid=spectrum-over-steps] .u-legend .u-series', (els) =>
        els.filter((e) => /^σ\d/.test(e.querySelector('.u-label')?.textContent ?? '')).map((e) => getComputedStyle(e.querySelector('.u-marker')!).borderColor),
      );
      assert.equal(sigma.length, 4);
      assert.equal(new Set(sigma).size, 4, sigma.join(' '));
      const axes = await o.page.$eval('[data-testid=spectrum-over-steps] .uplot', (e) => (e as HTMLElement).dataset.axes ?? '');
      assert.equal(axes, 'training step|singular value σ|effective rank');
      await screenshot(o.page, 'charts-spectra-light');
    });
  });

  it('dark theme: tooltip, charts, spectra and heatmaps are legible (screenshots)', async () => {
    const o = await openPage(`file://${sweepHtml}`, { colorScheme: 'dark', width: 1400 });
    try {
      const over = (await o.page.locator('[data-testid=loss-chart] .u-over').first().boundingBox())!;
      await o.page.mouse.move(over.x + over.width * 0.5, over.y + 40);
      await o.page.mouse.move(over.x + over.width * 0.6, over.y + 60, { steps: 3 });
      const tt = await tooltip(o.page);
      assert.ok(tt.rows.length >= 2);
      // The tooltip is light text on a dark ground.
      const [fg, bg] = await o.page.$eval('[data-testid=loss-readout]', (e) => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]);
      const lum = (c: string) => c.match(/\d+/g)!.slice(0, 3).map(Number).reduce((a, b) => a + b, 0);
      assert.ok(lum(fg) > lum(bg) + 200, `tooltip ${fg} on ${bg}`);
      await screenshot(o.page, 'charts-loss-dark');
      await o.page.click('[data-testid=tab-params]');
      await screenshot(o.page, 'charts-params-dark');
      await o.page.click('[data-testid=tab-heatmaps]');
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      await screenshot(o.page, 'charts-heatmaps-dark');
      await o.page.click('[data-testid=tab-spectra]');
      await screenshot(o.page, 'charts-spectra-dark');
      assert.deepEqual(o.pageErrors, []);
    } finally {
      await o.close();
    }
  });

  it('GPT-2 c_attn adapter: the [192] bias, 12,480 full, and PEFT % over base + LoRA from the base on disk', async () => {
    const dir = path.join(work, 'gpt2-adapter');
    writeGpt2Adapter(dir, 4, TINY_GPT2);
    const html = path.join(work, 'gpt2.html');
    await writeReport([dir], html);
    const o = await openPage(`file://${html}`);
    try {
      assert.match((await o.page.textContent('[data-testid=subtitle]')) ?? '', /^Report · 1 adapter · generated/);
      await o.page.click('[data-testid=tab-params]');
      const rows = await o.page.$$eval('[data-testid=params-modules] tr[data-module]', (els) =>
        els.map((e) => ({
          module: e.getAttribute('data-module'),
          bias: e.querySelector('[data-testid=module-bias]')?.textContent,
          full: e.querySelector('[data-testid=module-full]')?.textContent,
          loraBias: e.querySelector('[data-testid=module-lora-bias]')?.textContent,
        })),
      );
      assert.equal(rows.length, 2);
      for (const r of rows) {
        assert.equal(r.bias, '[192]', r.module ?? '');
        assert.equal(r.full, (64 * 192 + 192).toLocaleString('en-US'));
        assert.equal(r.loraBias, (4 * (64 + 192) + 192).toLocaleString('en-US'));
      }
      const base = headerParams(path.join(TINY_GPT2, 'model.safetensors'));
      const lora = 2 * 4 * (64 + 192);
      assert.equal(await o.page.textContent('[data-testid=full-params]'), base.toLocaleString('en-US'));
      assert.equal(await o.page.textContent('[data-testid=percent-peft]'), `${((100 * lora) / (base + lora)).toFixed(2)} %`);
      assert.equal(await o.page.textContent('[data-testid=percent-peft-label]'), 'Trainable % (PEFT: of base + LoRA)');
      await screenshot(o.page, 'charts-gpt2-params-light');
    } finally {
      await o.close();
    }
  });

  it('an adapter whose base model is not on disk says its PEFT % is over the adapted layers only', async () => {
    const dir = path.join(work, 'gpt2-hub-adapter');
    writeGpt2Adapter(dir, 4, 'gpt2');
    const html = path.join(work, 'gpt2-hub.html');
    await writeReport([dir], html);
    const o = await openPage(`file://${html}`);
    try {
      await o.page.click('[data-testid=tab-params]');
      assert.match((await o.page.textContent('[data-testid=percent-peft-label]')) ?? '', /over the adapted layers only/);
      // Unknown base: no bias is assumed, so full = k·d.
      assert.equal(await o.page.textContent('[data-testid=full-params]'), (2 * 64 * 192).toLocaleString('en-US'));
    } finally {
      await o.close();
    }
  });

  it('real adapters whose data start at an odd byte offset (mlx-lm 1723, lora_disney 34981) read as lora-lab inspect reads them', async function () {
    const mlxDir = path.join(REAL_WORLD, 'ml-explore__mlx-examples');
    const disney = path.join(REAL_WORLD, 'cloneofsimo__lora/lora_disney.safetensors');
    if (![mlxDir, disney].every((f) => fs.existsSync(f))) {
      console.log(`    ${REAL_WORLD} not present: skipping the real-world odd-offset adapters`);
      this.skip();
    }
    const html = path.join(work, 'odd.html');
    await writeReport([mlxDir, disney], html);
    const o = await openPage(`file://${html}`);
    try {
      const warnings = (await o.page.$$eval('[data-testid=adapter-warnings]', (els) => els.map((e) => e.textContent ?? ''))).join('\n');
      assert.doesNotMatch(warnings, /NaN|Inf/);
      await o.page.click('[data-testid=tab-heatmaps]');
      await o.page.waitForFunction(() => (document.querySelector('[data-testid=heatmap-view]') as HTMLElement).dataset.ready === 'true');
      // The module shown first; ΔW = 10·(lora_a·lora_b)ᵀ (mlx-lm's absolute scale), formed here.
      const module = await o.page.$eval('[data-testid=heatmap-module]', (e) => (e as HTMLSelectElement).value);
      const file = path.join(mlxDir, 'adapters.safetensors');
      const a = readF32(file, `${module}.lora_a`);
      const b = readF32(file, `${module}.lora_b`);
      const [din, r] = a.shape;
      const dout = b.shape[1];
      let want = 0;
      for (let i = 0; i < din; i++)
        for (let j = 0; j < dout; j++) {
          let v = 0;
          for (let m = 0; m < r; m++) v += a.data[i * r + m] * b.data[m * dout + j];
          want = Math.max(want, Math.abs(10 * v));
        }
      const got = Number(await o.page.getAttribute('canvas[data-testid=heatmap-delta]', 'data-max-abs'));
      assert.ok(Number.isFinite(got) && Math.abs(got - want) <= 1e-4 * want, `max |ΔW| ${got}, want ${want}`);
      await o.page.click('[data-testid=tab-spectra]');
      const sigma1 = await o.page.$$eval('[data-testid=spectrum-modules] tr td:nth-child(3)', (els) => els.map((e) => Number(e.textContent)));
      assert.ok(sigma1.length > 0 && sigma1.every((v) => Number.isFinite(v) && v > 0 && v < 1e3), sigma1.join(', '));
      await screenshot(o.page, 'charts-odd-offset-spectra-light');
      assert.deepEqual(o.pageErrors, []);
    } finally {
      await o.close();
    }
  });

  it('live panel: an adapter alone is not "Live · 0 runs", and a finished run is not "Live"', async () => {
    const dir = path.join(work, 'gpt2-live');
    writeGpt2Adapter(dir, 2, TINY_GPT2);
    const sessionRef: { s?: DashboardSession } = {};
    const panel = new Panel((msg) => sessionRef.s?.handleMessage(msg));
    const session = (sessionRef.s = new DashboardSession({ post: panel.post, pollIntervalMs: 0 }));
    const pdir = tempDir('lora-lab-charts-panel-');
    const opened = await panel.open(pdir);
    try {
      await session.add([dir]);
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=subtitle]')?.textContent ?? '').startsWith('Adapter'));
      assert.equal(await opened.page.textContent('[data-testid=subtitle]'), 'Adapter · gpt2-live');
      await session.add([runA]);
      await opened.page.waitForFunction(() => (document.querySelector('[data-testid=subtitle]')?.textContent ?? '').includes('run'));
      assert.equal(await opened.page.textContent('[data-testid=subtitle]'), '1 run, 1 adapter · completed');
      await screenshot(opened.page, 'charts-live-adapter-and-run-light');
    } finally {
      session.dispose();
      await opened.close();
      fs.rmSync(pdir, { recursive: true, force: true });
    }
  });
});
