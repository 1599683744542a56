// Every view of the packaged extension in a dark and a light theme, as screenshots to look at
// (test/.artifacts/ui-gallery-<theme>-<view>.png): the dashboard's four tabs (with the chart tooltip
// at the cursor), the Runs and Adapters views, a config hover, the playground and the walkthrough.
// It trains its own short run first, so it also runs alone (`--grep gallery`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ui } from './workbench.mjs';

/** The active webview's document (the dashboard or the playground). */
function webviewFrame(page) {
  return page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
}

const THEMES = [
  { id: 'dark', label: 'Dark Modern', workbenchClass: 'vs-dark' },
  { id: 'light', label: 'Light Modern', workbenchClass: 'vs' },
];

/** Preferences: Color Theme, then the theme's row; waits until the workbench wears it. */
async function setTheme(theme) {
  const { page, workbench } = ui;
  await workbench.runCommand('Preferences: Color Theme');
  const input = workbench.quickInput().locator('input');
  await input.fill(theme.label);
  await workbench.quickInput().locator('.quick-input-list .monaco-list-row', { hasText: theme.label }).first().waitFor();
  await page.keyboard.press('Enter');
  await workbench.quickInput().waitFor({ state: 'hidden' });
  await page.waitForFunction((cls) => document.querySelector('.monaco-workbench')?.classList.contains(cls), theme.workbenchClass);
}

/** The gallery run's row in the Runs view, once it has finished. */
function galleryRun(page) {
  return page.locator('.pane:has(.pane-header:has-text("Runs")) .monaco-list .monaco-list-row', { hasText: 'gallery' }).filter({ hasText: /completed · / }).first();
}

describe('UI: every view in a dark and a light theme (screenshots, gallery)', () => {
  before(async () => {
    const { page, workbench, workspace } = ui;
    // Two checkpoints and a known truth: heatmaps with the error map, spectra over steps.
    fs.writeFileSync(
      path.join(workspace, 'gallery.lora.json'),
      JSON.stringify({
        name: 'gallery',
        kind: 'low-rank-recovery',
        model: { inFeatures: 96, outFeatures: 64, trueRank: 4 },
        lora: { r: 4, alpha: 4 },
        optimizer: { name: 'adam', lr: 0.01 },
        training: { steps: 600, batchSize: 64, seed: 0, evalEvery: 50, checkpointEvery: 200, logEvery: 5 },
      }),
    );
    await workbench.runCommand('View: Close All Editors');
    await workbench.showLoraLab();
    await workbench.runCommand('LoRA Lab: Train Experiment');
    await workbench.pick('gallery.lora.json', { timeoutMs: 30_000 });
    await galleryRun(page).waitFor({ timeout: 180_000 });
  });

  for (const theme of THEMES) {
    describe(theme.id, () => {
      const shot = (view) => ui.workbench.screenshot(`ui-gallery-${theme.id}-${view}`);

      it(`${theme.id}: the dashboard's four tabs, the loss tooltip at the cursor`, async () => {
        const { page, workbench } = ui;
        await workbench.runCommand('View: Close All Editors');
        await setTheme(theme);
        // No toast (the run's "finished" one) over the screenshots.
        await workbench.runCommand('Notifications: Clear All Notifications');
        await workbench.showLoraLab();
        await galleryRun(page).click();
        const frame = webviewFrame(page);
        await frame.locator('body[data-ready="true"]').waitFor({ timeout: 60_000 });
        // The webview follows the theme: VS Code's theme kind is on its body.
        const kind = await frame.locator('body').getAttribute('class');
        assert.match(kind ?? '', theme.id === 'dark' ? /vscode-dark/ : /vscode-light/);
        const over = frame.locator('[data-testid=loss-chart] .u-over');
        await over.waitFor({ timeout: 30_000 });
        const box = await over.boundingBox();
        await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.4);
        await frame.locator('[data-testid=loss-readout]:visible').waitFor({ timeout: 15_000 });
        await shot('dashboard-loss');
        await page.mouse.move(5, 5);
        await frame.locator('[data-testid=tab-params]').click();
        await frame.locator('[data-testid=panel-params]:visible').waitFor();
        await shot('dashboard-params');
        await frame.locator('[data-testid=tab-heatmaps]').click();
        await frame.locator('[data-testid=heatmap-view][data-ready="true"]').waitFor({ timeout: 60_000 });
        await shot('dashboard-heatmaps');
        await frame.locator('[data-testid=tab-spectra]').click();
        await frame.locator('[data-testid=spectra-view] .uplot').first().waitFor({ timeout: 60_000 });
        await shot('dashboard-spectra');
        await workbench.runCommand('View: Close All Editors');
      });

      it(`${theme.id}: the Runs and Adapters views (adapters grouped)`, async () => {
        const { page, workbench } = ui;
        await workbench.showLoraLab();
        const tree = page.locator('.pane:has(.pane-header:has-text("Adapters")) .monaco-list');
        await tree.locator('.monaco-list-row', { hasText: 'PEFT' }).first().waitFor({ timeout: 30_000 });
        const runs = page.locator('.pane:has(.pane-header:has-text("Runs")) .monaco-list');
        await runs.locator('.monaco-list-row', { hasText: /completed|stopped/ }).first().waitFor({ timeout: 30_000 });
        // Wide enough for the rows' whole descriptions (date, training time, loss; format, modules, r),
        // then back, so the other views keep their width.
        const side = await page.locator('.part.sidebar').boundingBox();
        const edge = side.x + side.width;
        const drag = async (from, to) => {
          await page.mouse.move(from, side.y + side.height / 2);
          await page.mouse.down();
          await page.mouse.move((from + to) / 2, side.y + side.height / 2);
          await page.mouse.move(to, side.y + side.height / 2);
          await page.mouse.up();
        };
        await drag(edge - 1, edge + 420);
        await page.waitForFunction((w) => document.querySelector('.part.sidebar').getBoundingClientRect().width > w + 300, side.width);
        // Off the sash, so it is not drawn highlighted.
        await page.mouse.move(edge + 700, side.y + side.height / 2);
        // The sash's highlight fades out after the drag: wait until it is transparent.
        await page.waitForFunction(() =>
          [...document.querySelectorAll('.monaco-sash')].every((e) => /^(transparent|rgba\(.*, 0\))$/.test(getComputedStyle(e, '::before').backgroundColor)),
        );
        await shot('sidebar-runs-adapters');
        const wide = await page.locator('.part.sidebar').boundingBox();
        await drag(wide.x + wide.width - 1, edge);
      });

      it(`${theme.id}: a config hover`, async () => {
        const { workbench } = ui;
        await workbench.openFile('seed.lora.yaml');
        const hover = await workbench.hoverAt(9, 3); // "  r: 4"
        assert.match(await hover.innerText(), /1,049,600 vs LoRA 9,216/);
        await shot('hover');
        await ui.page.keyboard.press('Escape');
        await workbench.runCommand('View: Close All Editors');
      });

      it(`${theme.id}: the playground after a generation`, async () => {
        const { page, workbench } = ui;
        await workbench.runCommand('LoRA Lab: Try Adapter');
        await workbench.pick('llama-tiny-r8', { timeoutMs: 30_000 });
        const frame = webviewFrame(page);
        await frame.locator('[data-testid=status]', { hasText: /^Ready/ }).waitFor({ timeout: 60_000 });
        await frame.locator('[data-testid=prompt]').fill('LoRA');
        await frame.locator('[data-testid=max-tokens]').fill('24');
        await frame.locator('[data-testid=ignore-eos]').check();
        await frame.locator('[data-testid=generate]').click();
        await frame.locator('body[data-running="false"] [data-testid=side-adapter]').waitFor({ timeout: 60_000 });
        assert.equal(await frame.locator('[data-testid=tokens-adapter] .chip').count(), 24);
        await frame.locator('[data-testid=tokens-adapter] .chip').nth(2).hover();
        await frame.locator('[data-testid=alternatives] tbody tr').nth(4).waitFor();
        await shot('playground');
        await workbench.runCommand('View: Close All Editors');
      });

      it(`${theme.id}: the walkthrough`, async () => {
        const { page, workbench } = ui;
        await workbench.runCommand('Welcome: Open Walkthrough...');
        await workbench.pick('Get started with LoRA Lab', { timeoutMs: 30_000 });
        const steps = page.locator('.gettingStartedContainer');
        for (const step of ['Train the built-in experiment', 'Open the dashboard', 'Inspect an adapter', 'Run a rank sweep']) {
          await steps.locator('.getting-started-step', { hasText: step }).first().waitFor({ timeout: 30_000 });
        }
        // The step's media (media/walkthrough/train.md) renders in a webview beside the steps.
        await webviewFrame(page).locator('text=is LoRA in one layer').first().waitFor({ timeout: 30_000 });
        await shot('walkthrough');
        await workbench.runCommand('View: Close All Editors');
      });
    });
  }
});
