// "LoRA Lab: New Experiment" from the palette: pick a kind, answer r, get a commented config that opens
// in the editor.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ui } from './workbench.mjs';

describe('UI: new experiment', () => {
  it('asks for the kind, the folder and the name, and scaffolds a commented config with the chosen r', async () => {
    const { page, workbench, workspace } = ui;
    // With no other editor open, the status bar's Problems entry counts the new file's markers only
    // (LoRA Lab's checks and the JSON schema run on open documents).
    await workbench.runCommand('View: Close All Editors');
    await workbench.waitProblems(/^No Problems$/, 'before scaffolding, with every editor closed');
    await workbench.runCommand('LoRA Lab: New Experiment');
    await workbench.pick('attention-adaptation');
    // The folder: the workspace folder (a subfolder or "Choose a folder…" are offered too).
    await page.locator('.quick-input-widget', { hasText: 'folder for the config file' }).waitFor();
    await workbench.pick('(workspace folder)');
    // The name: the file is <name>.lora.json.
    const input = workbench.quickInput().locator('input');
    await page.locator('.quick-input-widget', { hasText: '(3/4): name' }).waitFor();
    await input.fill('qkv adaptation');
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget', { hasText: 'rank r' }).waitFor();
    await input.fill('8');
    await page.keyboard.press('Enter');
    await page.locator('.tabs-container .tab.active', { hasText: 'qkv-adaptation.lora.json' }).waitFor({ timeout: 15_000 });
    const text = fs.readFileSync(path.join(workspace, 'qkv-adaptation.lora.json'), 'utf8');
    assert.match(text, /"r": 8,/);
    assert.match(text, /"name": "qkv-adaptation"/);
    assert.match(text, /LoRAAttention/);
    // The checks are live on this file: an r of 0 written to disk shows up as an error, and goes away.
    const file = path.join(workspace, 'qkv-adaptation.lora.json');
    fs.writeFileSync(file, text.replace('"r": 8,', '"r": 0,'));
    await workbench.waitProblems(/Errors: [1-9]/, 'after writing r = 0 into the new config');
    fs.writeFileSync(file, text);
    // No problems for the scaffolded text as written.
    await workbench.waitProblems(/^No Problems$/, 'the scaffolded config');
    await workbench.screenshot('ui-new-experiment');
  });
});
