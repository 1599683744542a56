// Try Adapter inside VS Code (code-server + the packaged .vsix): the palette command asks for a PEFT
// adapter, the playground opens with its base model found in the workspace, and Generate streams both
// columns with a log-probability under every token. The webview renders in iframe.webview.ready → #active-frame.
import assert from 'node:assert/strict';
import { ui } from './workbench.mjs';

function playgroundFrame(page) {
  return page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
}

describe('UI: Try Adapter (playground)', () => {
  const cspErrors = [];
  before(() => {
    ui.page.on('console', (m) => {
      if (/Content Security Policy|Refused to (load|execute|apply|create)/i.test(m.text())) cspErrors.push(m.text());
    });
  });

  it('generates from the base and base + adapter side by side, with per-token log-probabilities', async () => {
    const { page, workbench } = ui;
    await workbench.runCommand('View: Close All Editors');
    await workbench.runCommand('LoRA Lab: Try Adapter');
    await workbench.pick('llama-tiny-r8', { timeoutMs: 30_000 });
    const frame = playgroundFrame(page);
    await frame.locator('body[data-ready="true"]').waitFor({ timeout: 60_000 });
    await frame.locator('[data-testid=status]', { hasText: /^Ready/ }).waitFor({ timeout: 60_000 });
    assert.match(await frame.locator('[data-testid=model]').textContent(), /models\/llama-tiny \(llama, vocabulary 256, UTF-8 bytes as tokens\)/);
    await frame.locator('[data-testid=prompt]').fill('LoRA');
    await frame.locator('[data-testid=max-tokens]').fill('24');
    await frame.locator('[data-testid=ignore-eos]').check();
    await frame.locator('[data-testid=generate]').click();
    await frame.locator('body[data-running="false"] [data-testid=side-adapter]').waitFor({ timeout: 60_000 });
    for (const side of ['base', 'adapter']) {
      assert.equal(await frame.locator(`[data-testid=tokens-${side}] .chip`).count(), 24, side);
      assert.match(await frame.locator(`[data-testid=stats-${side}]`).textContent(), /^24 tokens · mean log p −\d+\.\d\d · perplexity [\d.]+ · max tokens reached$/);
      const lp = await frame.locator(`[data-testid=tokens-${side}] .chip .lp`).first().textContent();
      assert.match(lp, /^−\d+\.\d\d$/);
    }
    await frame.locator('[data-testid=tokens-adapter] .chip').nth(2).hover();
    await frame.locator('[data-testid=alternatives] tbody tr').nth(4).waitFor();
    await workbench.screenshot('ui-playground');
    assert.deepEqual(cspErrors, [], 'no CSP violation reported by the playground');
    await workbench.runCommand('View: Close All Editors');
  });
});
