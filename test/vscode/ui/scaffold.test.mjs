// "LoRA Lab: New Experiment" from the palette: pick a kind, answer r, get a commented config that opens
// in the editor.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ui } from './workbench.mjs';

describe('UI: new experiment', () => {
  it('scaffolds a commented config from the template with the chosen r', async () => {
    const { page, workbench, workspace } = ui;
    await workbench.runCommand('LoRA Lab: New Experiment');
    await workbench.pick('attention-adaptation');
    const input = workbench.quickInput().locator('input');
    await page.locator('.quick-input-widget', { hasText: 'rank r' }).waitFor();
    await input.fill('8');
    await page.keyboard.press('Enter');
    await page.locator('.tabs-container .tab.active', { hasText: 'attention-adaptation.lora.json' }).waitFor({ timeout: 15_000 });
    const text = fs.readFileSync(path.join(workspace, 'attention-adaptation.lora.json'), 'utf8');
    assert.match(text, /"r": 8,/);
    assert.match(text, /^\/\/ The reference LoRA code's LoRAAttention/);
    // No LoRA Lab problems for the new file: the status bar shows 0 errors.
    await page.locator('.statusbar-item[id="status.problems"]', { hasText: /0\s*0/ }).waitFor({ timeout: 15_000 }).catch(() => undefined);
    await workbench.screenshot('ui-new-experiment');
  });
});
