// Drives the VS Code workbench in Chromium for the UI tests: command palette, quick open, notifications,
// hovers and screenshots. Every wait is for a condition (no fixed sleeps).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const artifacts = path.join(repoRoot, 'test', '.artifacts');

/** Shared state set by runUiSuite.mjs before the test files run. */
export const ui = { page: undefined, server: undefined, workspace: undefined, box: undefined };

export class Workbench {
  constructor(page) {
    this.page = page;
  }

  async waitReady() {
    await this.page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await this.page.locator('.statusbar').waitFor({ timeout: 60_000 });
  }

  async screenshot(name) {
    fs.mkdirSync(artifacts, { recursive: true });
    const file = path.join(artifacts, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  quickInput() {
    return this.page.locator('.quick-input-widget');
  }

  /**
   * F1, type the command's title, pick the row with exactly that label. A remote extension's commands
   * can register after the palette first opens: close and retry until the row appears.
   */
  async runCommand(title, { timeoutMs = 30_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const input = await this.openQuickInput();
      await input.fill(`>${title}`);
      const row = this.quickInput().locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
      try {
        await row.waitFor({ state: 'visible', timeout: 3000 });
        await row.click();
        return;
      } catch {
        await this.page.keyboard.press('Escape');
        if (Date.now() > deadline) throw new Error(`command "${title}" never appeared in the palette`);
      }
    }
  }

  /**
   * Opens the quick input. F1 does not reach the workbench while a webview iframe has focus; the title
   * bar's command center does, so it is the fallback.
   */
  async openQuickInput(key = 'F1') {
    const input = this.quickInput().locator('input');
    await this.page.keyboard.press(key);
    try {
      await input.waitFor({ state: 'visible', timeout: 2000 });
    } catch {
      await this.page.locator('.command-center .command-center-center').first().click();
      await input.waitFor({ state: 'visible', timeout: 10_000 });
    }
    return input;
  }

  /** Picks a quick-pick row by its text (after a command asked a question). */
  async pick(text, { timeoutMs = 15_000 } = {}) {
    const row = this.quickInput().locator('.quick-input-list .monaco-list-row', { hasText: text }).first();
    await row.waitFor({ state: 'visible', timeout: timeoutMs });
    await row.click();
  }

  /** Opens a workspace file by name through Quick Open. */
  async openFile(name, { timeoutMs = 30_000 } = {}) {
    // A file created moments ago may not be in Quick Open's index yet: close and retry until it is.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const input = await this.openQuickInput('Control+P');
      await input.fill(name);
      try {
        await this.pick(name, { timeoutMs: 3000 });
        break;
      } catch (e) {
        await this.page.keyboard.press('Escape');
        if (Date.now() > deadline) throw e;
      }
    }
    await this.page.locator(`.tabs-container .tab.active:has-text("${name}")`).waitFor({ timeout: 15_000 });
  }

  /**
   * The Problems entry of the status bar, as its accessible label says it ("No Problems", or
   * "Errors: 1, Warnings: 2"): the counts over every file with markers.
   */
  async problemsLabel() {
    const item = this.page.locator('[id="status.problems"]').first();
    await item.waitFor({ timeout: 30_000 });
    return item.evaluate((el) => el.getAttribute('aria-label') || el.querySelector('[aria-label]')?.getAttribute('aria-label') || el.textContent || '');
  }

  /** Waits until the Problems label matches `re`; fails naming what it last showed. */
  async waitProblems(re, what, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      last = await this.problemsLabel();
      if (re.test(last)) return last;
      if (Date.now() > deadline) throw new Error(`${what}: the status bar's Problems entry still says "${last}" after ${timeoutMs} ms (want ${re})`);
      await this.page.waitForTimeout(100);
    }
  }

  /** Shows the LoRA Lab view container (clicking its activity-bar icon when it is open would close it). */
  async showLoraLab() {
    const item = this.page.locator('.activitybar .action-item:has(a[aria-label^="LoRA Lab"])');
    if (!/\bchecked\b/.test((await item.getAttribute('class')) ?? '')) await item.locator('a').click();
    await this.page.locator('.pane-header', { hasText: 'Adapters' }).waitFor();
  }

  notification(text) {
    return this.page.locator('.notification-toast', { hasText: text }).first();
  }

  async waitNotification(text, timeoutMs = 60_000) {
    const n = this.notification(text);
    await n.waitFor({ state: 'visible', timeout: timeoutMs });
    return n;
  }

  /** Puts the cursor at line:column via Go to Line and shows the hover there; returns its text. */
  async hoverAt(line, column) {
    await this.page.keyboard.press('Control+G');
    const input = this.quickInput().locator('input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`:${line}:${column}`);
    // Enter before the picker has read the text closes nothing (seen under load): wait for its row.
    await this.quickInput().locator('.quick-input-list .monaco-list-row', { hasText: `Go to line ${line} and character ${column}` }).first().waitFor({ timeout: 15_000 });
    await this.page.keyboard.press('Enter');
    await this.quickInput().waitFor({ state: 'hidden' });
    const hover = this.page.locator('.monaco-hover:not(.hidden) .monaco-hover-content').first();
    // Ctrl+K Ctrl+I: "Show or Focus Hover" at the cursor. The provider registers when the extension has
    // activated, and the editor may still be settling: retry until a hover shows.
    const deadline = Date.now() + 30_000;
    for (;;) {
      await this.page.keyboard.press('Control+K');
      await this.page.keyboard.press('Control+I');
      try {
        await hover.waitFor({ state: 'visible', timeout: 3000 });
        // The hover fades in: wait until it is fully opaque, so a screenshot shows it, not the text under it.
        await this.page.waitForFunction(() => {
          const el = document.querySelector('.monaco-hover:not(.hidden)');
          return !!el && el.getAnimations({ subtree: true }).every((a) => a.playState !== 'running') && Number(getComputedStyle(el).opacity) === 1;
        }, undefined, { timeout: 5000 });
        return hover;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await this.page.keyboard.press('Escape');
      }
    }
  }
}
