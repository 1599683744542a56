// "LoRA Lab: Train Experiment" from the palette: progress notification and status bar, Cancel, then
// "Resume Run" to the end, in the packaged extension.
import assert from 'node:assert/strict';
import { ui } from './workbench.mjs';

describe('UI: train, cancel, resume', () => {
  it('trains quick.lora.json from the palette, shows progress, cancels and resumes to the end', async () => {
    const { page, workbench } = ui;
    await workbench.showLoraLab(); // the Runs view is checked after Cancel
    await workbench.openFile('quick.lora.json');
    await workbench.runCommand('LoRA Lab: Train Experiment');
    const progress = await workbench.waitNotification('LoRA Lab: training quick.lora.json', 60_000);
    // Progress text "step n/3000 · loss …" in the notification and the status bar.
    await progress.locator('text=/step \\d+\\/3000/').waitFor({ timeout: 60_000 });
    const status = page.locator('.statusbar-item', { hasText: /LoRA step \d+\/3000/ }).first();
    await status.waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => /step (\d+)\/3000/.test(document.body.innerText) && Number(/step (\d+)\/3000/.exec(document.body.innerText)[1]) >= 100, undefined, { timeout: 60_000 });
    await workbench.screenshot('ui-training-progress');
    await progress.hover();
    await progress.locator('.monaco-button', { hasText: 'Cancel' }).click();
    // A stop the user asked for is not a notification (it could not be closed when the run is resumed):
    // the status bar offers Resume until the run is resumed.
    const stopped = page.locator('.statusbar-item', { hasText: /quick stopped at step \d+ · Resume/ }).first();
    await stopped.waitFor({ timeout: 60_000 });
    // The Runs view follows: the run is listed as cancelled at the step the status bar names.
    const stepAt = /stopped at step (\d+)/.exec(await stopped.innerText())[1];
    const runs = page.locator('.pane:has(.pane-header:has-text("Runs")) .monaco-list');
    await runs.locator('.monaco-list-row', { hasText: 'quick' }).filter({ hasText: `cancelled · ` }).filter({ hasText: `step ${stepAt}/3000` }).first().waitFor({ timeout: 30_000 });
    // (Only this run's 3000 steps: a run left by another test would keep its own item.)
    assert.equal(await page.locator('.statusbar-item', { hasText: /LoRA step \d+\/3000/ }).count(), 0, 'the status bar still shows this training');
    await workbench.screenshot('ui-training-cancelled');

    // Resume from the status bar entry: it goes away as the run resumes.
    await stopped.click();
    await page.locator('.statusbar-item', { hasText: /quick stopped at step \d+ · Resume/ }).waitFor({ state: 'detached', timeout: 30_000 });
    const done = await workbench.waitNotification('finished at step 3000', 120_000);
    assert.match(await done.innerText(), /adapter in .*adapter/);
    await done.locator('.monaco-button', { hasText: 'Open Dashboard' }).click({ trial: true });
    await workbench.screenshot('ui-training-resumed-finished');
  });

  it('the Runs view lists the run as completed', async () => {
    const { page, workbench } = ui;
    await workbench.showLoraLab();
    const runs = page.locator('.pane:has(.pane-header:has-text("Runs")) .monaco-list');
    // The view refreshes from run.json (throttled); wait for the final state rather than the first row.
    const row = runs.locator('.monaco-list-row', { hasText: 'quick' }).filter({ hasText: /completed · today \d\d:\d\d · / }).first();
    await row.waitFor({ timeout: 30_000 });
    // Date, training time and final loss tell this run from others of the same config.
    assert.match(await row.innerText(), /quick.*completed · today \d\d:\d\d · (\d+(?:\.\d+)? s|\d+ min \d+ s|\d+ h \d+ min) · loss \S+/s);
    await workbench.screenshot('ui-runs-view');
  });
});
