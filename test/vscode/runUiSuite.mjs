// Playwright UI tests against the packaged extension: the .vsix is installed into a fresh code-server
// (what users get), the example workspace is opened in Debian's Chromium, and every
// test/vscode/ui/**/*.test.mjs runs with mocha. Screenshots go to test/.artifacts/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Mocha from 'mocha';
import { closePage, installVsix, launchChromium, makeSandbox, startCodeServer, workbenchUrl } from './codeServer.mjs';
import { makeWorkspace } from './workspace.mjs';
import { ui, Workbench } from './ui/workbench.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

function uiTests(dir = path.join(here, 'ui'), out = []) {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) uiTests(p, out);
    else if (ent.name.endsWith('.test.mjs')) out.push(p);
  }
  return out.sort();
}

/** @returns {Promise<{ passed: number, failed: number, outcomes: any[] }>} */
export async function runUiSuite({ vsix, grep } = {}) {
  if (!vsix || !fs.existsSync(vsix)) throw new Error(`no .vsix at ${vsix}: run vsce package first`);
  const box = makeSandbox('ui');
  installVsix(box, vsix);
  const workspace = makeWorkspace(box.root);
  const server = await startCodeServer(box);
  const browser = await launchChromium();
  const outcomes = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => process.stderr.write(`[page] ${e.message}\n`));
    Object.assign(ui, { page, server, workspace, box, workbench: new Workbench(page) });
    await page.goto(workbenchUrl(server, workspace));
    await ui.workbench.waitReady();
    const rootHooks = {
      async afterEach() {
        // What the screen showed when a test failed (looked at, not compared).
        if (this.currentTest?.state === 'failed') {
          await ui.workbench.screenshot(`FAILED-${this.currentTest.title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}`).catch(() => undefined);
        }
      },
    };
    const mocha = new Mocha({ ui: 'bdd', timeout: 180_000, reporter: 'spec', rootHooks, ...(grep ? { grep } : {}) });
    for (const f of uiTests()) mocha.addFile(f);
    await mocha.loadFilesAsync();
    await new Promise((resolve) => {
      const runner = mocha.run(() => resolve());
      runner.on('pass', (t) => outcomes.push({ title: t.fullTitle(), state: 'passed' }));
      runner.on('fail', (t, err) => outcomes.push({ title: t.fullTitle(), state: 'failed', error: err.stack ?? err.message }));
      runner.on('pending', (t) => outcomes.push({ title: t.fullTitle(), state: 'pending' }));
    });
    await closePage(page);
  } finally {
    await browser.close().catch(() => undefined);
    await server.stop();
    fs.rmSync(box.root, { recursive: true, force: true });
  }
  return { passed: outcomes.filter((o) => o.state === 'passed').length, failed: outcomes.filter((o) => o.state === 'failed').length, outcomes };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await runUiSuite({ vsix: process.argv[2], grep: process.argv[3] });
  console.log(`ui: ${r.passed} passed, ${r.failed} failed`);
  process.exit(r.failed ? 1 : 0);
}
