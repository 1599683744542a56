// The loss charts' zoom survives a reload of the panel (hidden and shown, moved, window reloaded):
// the x range is saved with setState next to smoothing and tab, applied again once the runs are
// drawn, cleared by a double-click, and dropped when it lies outside the runs the panel now shows.
// The real bundle in Chromium against a real DashboardSession (support/panel.ts).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LossOptions } from '../../webview-ui/src/views/lossView';
import { DashboardSession } from '../../src/dashboard/dashboardSession';
import { chromiumAvailable, screenshot, type OpenedPage } from './support/browser';
import { tooltip } from './support/tooltip';
import { ensureWebviewBuilt } from './support/build';
import { Panel, savedState } from './support/panel';
import { tempDir, tinyRun } from './support/runs';
import { writeBigRun } from './support/synthetic';

interface SavedUi {
  tab?: string;
  loss?: LossOptions;
}

describe('loss chart zoom kept in the webview state across reloads', function () {
  this.timeout(120_000);
  let work: string;
  let tiny: string;
  let big: string;
  let session: DashboardSession | undefined;
  let opened: OpenedPage;
  const panel = new Panel((msg) => session?.handleMessage(msg));

  /** The panel shows `paths` from now on (what the serializer reopens after a window reload). */
  async function show(paths: string[]): Promise<void> {
    session?.dispose();
    session = new DashboardSession({ post: panel.post, pollIntervalMs: 0 });
    await session.add(paths);
  }

  before(async function () {
    if (!chromiumAvailable()) this.skip();
    ensureWebviewBuilt();
    work = tempDir('lora-lab-zoom-');
    tiny = await tinyRun(work, { name: 'zoom-tiny', r: 2 });
    big = writeBigRun(tiny, path.join(work, 'big'), 0, 100_000);
    await show([big]);
    opened = await panel.open(work);
  });

  after(async () => {
    session?.dispose();
    await opened?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** What the loss chart was given: rows per series, the x range shown, the plot width in px. */
  const view = () =>
    opened.page.evaluate(() => {
      const el = document.querySelector('[data-testid=loss-view]') as HTMLElement;
      const plot = (document.querySelector('[data-testid=loss-chart] .u-over') as HTMLElement).getBoundingClientRect().width;
      return { rows: Number(el.dataset.rows), range: (el.dataset.xRange ?? '').split(',').map(Number), plot };
    });

  const over = async () => (await (await opened.page.$('[data-testid=loss-chart] .u-over'))!.boundingBox())!;

  /** A real drag across the loss chart, from fraction f0 to f1 of the plot's width. */
  async function drag(f0: number, f1: number): Promise<void> {
    const b = await over();
    await opened.page.mouse.move(b.x + b.width * f0, b.y + 50);
    await opened.page.mouse.down();
    await opened.page.mouse.move(b.x + b.width * f1, b.y + 50, { steps: 5 });
    await opened.page.mouse.up();
  }

  /** The step the read-out gives with the cursor at fraction f of the plot: uPlot's own x scale. */
  async function stepAt(f: number): Promise<number> {
    const b = await over();
    await opened.page.mouse.move(b.x + b.width * (f - 0.05), b.y + 60);
    await opened.page.mouse.move(b.x + b.width * f, b.y + 60, { steps: 3 });
    const tt = await tooltip(opened.page);
    const m = /^step (\d+)/.exec(tt.header);
    assert.ok(m, `tooltip header: ${tt.header}`);
    return Number(m[1]);
  }

  async function reload(): Promise<void> {
    await opened.page.reload();
    await opened.page.waitForFunction(() => document.body.dataset.ready === 'true');
  }

  const savedRange = async () => (await savedState<SavedUi>(opened.page))?.loss?.xRange;

  it('a drag-zoom on a 100,000-point run comes back after a reload, re-reduced per pixel, with the smoothing and tab', async () => {
    await opened.page.$eval('[data-testid=smoothing]', (el) => {
      (el as HTMLInputElement).value = '0.3';
      el.dispatchEvent(new Event('input'));
    });
    await drag(0.2, 0.4);
    const zoomed = await view();
    assert.ok(Math.abs(zoomed.range[0] - 20_000) < 1000 && Math.abs(zoomed.range[1] - 40_000) < 1000, `zoomed to ${zoomed.range}`);
    assert.deepEqual(await savedRange(), zoomed.range);

    await reload();
    const restored = await view();
    assert.deepEqual(restored.range, zoomed.range);
    assert.ok(restored.rows <= 2 * (restored.plot + 4), `${restored.rows} rows for ${restored.plot} px: the restored range is reduced per pixel`);
    // The scale uPlot draws with, not only what it was given: the read-out under the cursor.
    const [lo, hi] = restored.range;
    const slack = (3 * (hi - lo)) / restored.plot;
    const mid = await stepAt(0.5);
    assert.ok(Math.abs(mid - (lo + hi) / 2) < slack, `step ${mid} at the middle of [${lo}, ${hi}]`);
    assert.equal(await opened.page.$eval('[data-testid=smoothing]', (el) => (el as HTMLInputElement).value), '0.3');
    assert.equal(await opened.page.evaluate(() => document.body.dataset.tab), 'loss');
    await screenshot(opened.page, 'zoom-restored-100k');

    // Reloaded while another tab shows (charts built hidden), then back to the loss curves.
    await opened.page.click('[data-testid=tab-params]');
    await reload();
    assert.equal(await opened.page.evaluate(() => document.body.dataset.tab), 'params');
    await opened.page.click('[data-testid=tab-loss]');
    // Shown again: wait until the chart has a width and was reduced for it, instead of a fixed pause. On a
    // timeout the exact checks below still run and say what is wrong.
    await opened.page
      .waitForFunction(
        () => {
          const el = document.querySelector('[data-testid=loss-view]') as HTMLElement | null;
          const w = document.querySelector('[data-testid=loss-chart] .u-over')?.getBoundingClientRect().width ?? 0;
          return document.body.dataset.tab === 'loss' && w > 0 && !!el?.dataset.xRange && Number(el.dataset.rows) <= 2 * (w + 4);
        },
        null,
        { timeout: 10_000 },
      )
      .catch(() => undefined);
    const shown = await view();
    assert.deepEqual(shown.range, zoomed.range);
    assert.ok(shown.rows <= 2 * (shown.plot + 4));
    assert.deepEqual(opened.pageErrors, []);
  });

  it('a double-click resets the zoom and clears the saved range; the next reload shows the whole run', async () => {
    const b = await over();
    await opened.page.mouse.dblclick(b.x + b.width * 0.5, b.y + 60);
    assert.deepEqual((await view()).range, [1, 100_000]);
    assert.equal(await savedRange(), undefined);
    const saved = await savedState<SavedUi>(opened.page);
    assert.equal(saved?.loss?.smoothing, 0.3, 'the rest of the state stays');
    await reload();
    assert.deepEqual((await view()).range, [1, 100_000]);
    assert.equal(await savedRange(), undefined);
  });

  it('a saved range entirely outside the runs shown (the panel now shows another run) is ignored and dropped', async () => {
    await drag(0.2, 0.4);
    const far = await savedRange();
    assert.ok(far && far[0] > 60, `saved ${far}`);
    await show([tiny]);
    await reload();
    assert.deepEqual((await view()).range, [1, 60]);
    assert.equal(await savedRange(), undefined);
    assert.deepEqual(opened.pageErrors, []);
  });

  it('a short run (drawn point for point) gets its zoom back too', async () => {
    await drag(0.25, 0.75);
    const zoomed = await view();
    assert.ok(zoomed.range[0] > 10 && zoomed.range[1] < 50 && zoomed.range[0] < zoomed.range[1], `zoomed to ${zoomed.range}`);
    assert.deepEqual(await savedRange(), zoomed.range);
    await reload();
    const restored = await view();
    assert.deepEqual(restored.range, zoomed.range);
    assert.equal(restored.rows, 60, 'point for point');
    const [lo, hi] = restored.range;
    const left = await stepAt(0.1);
    const right = await stepAt(0.9);
    assert.ok(left >= Math.floor(lo) && right <= Math.ceil(hi) && left < right, `steps ${left}..${right} within [${lo}, ${hi}]`);
    await screenshot(opened.page, 'zoom-restored-short');
    assert.deepEqual(opened.pageErrors, []);
  });
});
