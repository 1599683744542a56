// The adapter browser and a parameter-count hover, in the packaged extension, seen in Chromium.
import assert from 'node:assert/strict';
import { ui } from './workbench.mjs';

describe('UI: adapter browser and hovers', () => {
  it('the LoRA Lab sidebar lists the workspace adapters with formats and warnings', async () => {
    const { page, workbench } = ui;
    await workbench.showLoraLab();
    const tree = page.locator('.pane:has(.pane-header:has-text("Adapters")) .monaco-list');
    for (const label of ['llama-tiny-r8', 'kohya-style.safetensors', 'mlx-adapter', 'lfs-pointer-lora.safetensors']) {
      await tree.locator('.monaco-list-row', { hasText: label }).first().waitFor({ timeout: 30_000 });
    }
    // Grouped: third-party adapters by format, and files that are not usable adapters apart, with the reason
    // (checked before anything is expanded: the list renders only the rows in view).
    for (const group of ['PEFT', 'kohya / Civitai', 'mlx-lm', 'Unreadable or not LoRA']) {
      await tree.locator('.monaco-list-row', { hasText: group }).first().waitFor({ timeout: 15_000 });
    }
    const lfsRow = tree.locator('.monaco-list-row', { hasText: 'lfs-pointer-lora.safetensors' }).first();
    assert.match(await lfsRow.innerText(), /Git LFS pointer/);
    await workbench.screenshot('ui-adapter-groups');
    const peftRow = tree.locator('.monaco-list-row', { hasText: 'llama-tiny-r8' }).first();
    assert.match(await peftRow.innerText(), /PEFT LoRA · 8 modules · r 8 · 7,168 params/);
    // Expand the kohya file: its hostile metadata is shown as text.
    // Expand with the twistie (a click on the label runs Inspect).
    await tree.locator('.monaco-list-row', { hasText: 'kohya-style.safetensors' }).first().locator('.monaco-tl-twistie').click();
    const meta = tree.locator('.monaco-list-row', { hasText: 'Metadata' }).first();
    await meta.waitFor();
    await meta.locator('.monaco-tl-twistie').click();
    const hostile = tree.locator('.monaco-list-row', { hasText: 'ss_output_name' }).first();
    await hostile.waitFor();
    assert.match(await hostile.innerText(), /<script>alert\("pwned"\)<\/script>/);
    assert.equal(await page.evaluate(() => typeof window.pwned), 'undefined');
    await workbench.screenshot('ui-adapter-tree');
  });

  it('hovering a key of adapter_config.json says what that key is', async () => {
    const { workbench } = ui;
    // Several adapter_config.json files: Quick Open by path, then the row of this one.
    const input = await workbench.openQuickInput('Control+P');
    await input.fill('llama-tiny-r8/adapter_config.json');
    await workbench.quickInput().locator('.quick-input-list .monaco-list-row', { hasText: 'llama-tiny-r8' }).filter({ hasText: 'adapter_config.json' }).first().click();
    await ui.page.locator('.tabs-container .tab.active:has-text("adapter_config.json")').waitFor({ timeout: 15_000 });
    const hover = await workbench.hoverAt(14, 6); // "  \"lora_dropout\": 0.0,"
    assert.match(await hover.innerText(), /lora_dropout — Dropout on the input of the LoRA branch/);
    await workbench.screenshot('ui-hover-adapter-config-key');
    await ui.page.keyboard.press('Escape');
  });

  it('hovering r in the seed config shows 1,049,600 vs 9,216, 0.88 %, about 114× fewer', async () => {
    const { workbench } = ui;
    await workbench.openFile('seed.lora.yaml');
    const hover = await workbench.hoverAt(9, 3); // "  r: 4"
    const text = await hover.innerText();
    assert.match(text, /1,049,600 vs LoRA 9,216 — 0\.88 %, about 114× fewer/);
    await workbench.screenshot('ui-hover-seed-config');
    await ui.page.keyboard.press('Escape');
  });
});
