// The dashboard inside VS Code (code-server + the packaged .vsix): open it while a run trains and see
// the loss curve grow, then the ΔW heatmap of a checkpoint; Inspect Adapter shows hostile metadata as
// text. The webview renders in iframe.webview.ready → #active-frame.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ui } from './workbench.mjs';

/** The dashboard webview's document (the active one when several are open). */
function dashboardFrame(page) {
  return page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
}

async function points(frame) {
  return Number((await frame.locator('body').getAttribute('data-points', { timeout: 30_000 })) ?? 0);
}

describe('UI: dashboard', () => {
  /** CSP complaints from any frame (the webview's included). */
  const cspErrors = [];
  before(() => {
    ui.page.on('console', (m) => {
      if (/Content Security Policy|Refused to (load|execute|apply|create)/i.test(m.text())) cspErrors.push(m.text());
    });
  });

  it('opened during a training run, the loss curve grows; ΔW heatmap of a checkpoint', async () => {
    const { page, workbench, workspace } = ui;
    // Its own config and name, so the training suite's "quick" runs stay the only ones named quick.
    fs.writeFileSync(
      path.join(workspace, 'dash-live.lora.json'),
      JSON.stringify({
        name: 'dash-live',
        kind: 'low-rank-recovery',
        model: { inFeatures: 128, outFeatures: 96, trueRank: 2 },
        lora: { r: 2, alpha: 2 },
        optimizer: { name: 'adam', lr: 0.01 },
        // Far more steps than the test lasts: it stops the run itself at the end (4000 steps
        // finished before Stop Training on a fast engine, and the test waited for "stopped at").
        training: { steps: 400000, batchSize: 64, seed: 0, evalEvery: 100, checkpointEvery: 200, logEvery: 5 },
      }),
    );
    // No config editor active, so Train Experiment asks which config.
    await workbench.runCommand('View: Close All Editors');
    await workbench.runCommand('LoRA Lab: Train Experiment');
    await workbench.pick('dash-live.lora.json', { timeoutMs: 30_000 });
    await workbench.waitNotification('LoRA Lab: training dash-live.lora.json', 60_000);
    // The run folder exists once progress shows; Open Dashboard then picks the running run.
    await page.locator('.statusbar-item', { hasText: /LoRA step \d+\/400000/ }).first().waitFor({ timeout: 60_000 });
    await workbench.runCommand('LoRA Lab: Open Dashboard');
    const frame = dashboardFrame(page);
    await frame.locator('body[data-ready="true"]').waitFor({ timeout: 60_000 });
    await frame.locator('[data-testid=loss-chart]').waitFor({ timeout: 30_000 });
    const first = await points(frame);
    // Grows while training (polling, no sleeps): at least two more batches arrive.
    let second = first;
    const deadline = Date.now() + 60_000;
    while (second <= first + 20 && Date.now() < deadline) {
      await page.waitForTimeout(250);
      second = await points(frame);
    }
    assert.ok(second > first + 20, `the curve did not grow: ${first} → ${second} points`);
    let third = second;
    while (third <= second && Date.now() < deadline) {
      await page.waitForTimeout(250);
      third = await points(frame);
    }
    assert.ok(third > second, `the curve stopped at ${second} points`);
    console.log(`      dashboard points while training: ${first} → ${second} → ${third}`);
    await workbench.screenshot('ui-dashboard-live');
    await frame.locator('[data-testid=tab-heatmaps]').click();
    await frame.locator('[data-testid=heatmap-view][data-ready="true"]').waitFor({ timeout: 60_000 });
    assert.equal(await frame.locator('[data-testid=heatmap-view]').getAttribute('data-compute'), 'worker');
    assert.ok(Number(await frame.locator('canvas[data-testid=heatmap-delta]').getAttribute('data-max-abs')) > 0);
    await frame.locator('canvas[data-testid=heatmap-truth]').waitFor();
    await workbench.screenshot('ui-dashboard-heatmap');
    assert.deepEqual(cspErrors, [], 'no CSP violation reported by the dashboard');
    await workbench.runCommand('LoRA Lab: Stop Training');
    await page.locator('.statusbar-item', { hasText: /dash-live stopped at step \d+ · Resume/ }).first().waitFor({ timeout: 60_000 });
  });

  it('Inspect Adapter: modules and metadata as text (no script runs)', async () => {
    const { page, workbench } = ui;
    await workbench.runCommand('LoRA Lab: Inspect Adapter');
    await workbench.pick('kohya-style');
    const frame = dashboardFrame(page);
    await frame.locator('[data-testid=adapter-block]').waitFor({ timeout: 60_000 });
    assert.equal(await frame.locator('[data-testid=adapter-modules] tr').count(), 3);
    const meta = await frame.locator('[data-testid=adapter-metadata] pre').allInnerTexts();
    assert.ok(meta.includes('<script>alert("pwned")</script>'), meta.join(' | '));
    assert.equal(await frame.locator('[data-testid=adapter-view] script').count(), 0);
    await workbench.screenshot('ui-dashboard-adapter');
  });
});
