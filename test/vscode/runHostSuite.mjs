// Runs the mocha suite (test/integration) inside code-server's extension host, the way VS Code's own
// browser integration tests do: the workbench is opened with a payload naming extensionDevelopmentPath and
// extensionTestsPath, and reports the suite's end through window.codeAutomationExit.
import fs from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import { fileURLToPath } from 'node:url';
import { buildSuite } from './buildSuite.mjs';
import { closePage, launchChromium, makeSandbox, remoteUri, startCodeServer, workbenchUrl } from './codeServer.mjs';
import { makeWorkspace } from './workspace.mjs';

const NOISE = /open-vsx\.org|\[lifecycle\]|Long running operations during shutdown|^\s*at .*workbench\.js|Creating a socket|Resolv(ing|ed) connection token|Service Worker|builtin extensions cache|ChatSessionStore/;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * @param {{ extensionPath?: string, grep?: string, restricted?: boolean, timeoutMs?: number }} opts
 * @returns {Promise<{ passed: number, failed: number, pending: number, outcomes: any[], exitCode: number }>}
 */
export async function runHostSuite({ extensionPath = repoRoot, grep, restricted = false, timeoutMs = 9 * 60_000 } = {}) {
  const suiteIndex = buildSuite();
  const box = makeSandbox(restricted ? 'restricted' : 'host', { trust: restricted });
  const workspace = makeWorkspace(box.root);
  const resultsFile = path.join(box.root, 'results.json');
  const env = { LORA_LAB_SUITE_RESULTS: resultsFile, LORA_LAB_TEST_WORKSPACE: workspace };
  if (grep) env.LORA_LAB_SUITE_GREP = grep;
  // Restricted Mode: Workspace Trust on, and this fresh workspace never trusted.
  if (restricted) env.LORA_LAB_RESTRICTED = '1';
  const server = await startCodeServer(box, { env, trust: restricted });
  const browser = await launchChromium();
  let exitCode = -1;
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    let resolveExit;
    const exited = new Promise((r) => (resolveExit = r));
    await page.exposeFunction('codeAutomationLog', (type, args) => {
      const line = format(...(Array.isArray(args) ? args : [args]));
      // Workbench noise with no bearing on the suite (no internet for the marketplace, shutdown chatter).
      if (NOISE.test(line)) return;
      process.stdout.write(`${type === 'error' ? '[host:error] ' : ''}${line}\n`);
    });
    await page.exposeFunction('codeAutomationExit', (code) => resolveExit(code));
    page.on('pageerror', (e) => process.stderr.write(`[page] ${e.message}\n`));
    const url = workbenchUrl(server, workspace, [
      ['extensionDevelopmentPath', remoteUri(server, extensionPath)],
      ['extensionTestsPath', remoteUri(server, suiteIndex)],
      ['skipWelcome', 'true'],
    ]);
    await page.goto(url);
    const timer = new Promise((r) => setTimeout(() => r('timeout'), timeoutMs));
    const r = await Promise.race([exited, timer]);
    if (r === 'timeout') {
      const shot = path.join(repoRoot, 'test', '.artifacts', 'host-suite-timeout.png');
      fs.mkdirSync(path.dirname(shot), { recursive: true });
      await page.screenshot({ path: shot }).catch(() => undefined);
      throw new Error(`the extension-host suite did not finish within ${timeoutMs / 1000} s (screenshot ${shot})\n${server.output().slice(-4000)}`);
    }
    exitCode = r;
    await closePage(page);
  } finally {
    await browser.close().catch(() => undefined);
    await server.stop();
  }
  let results = { failures: exitCode === 0 ? 0 : 1, outcomes: [] };
  if (fs.existsSync(resultsFile)) results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  else if (exitCode !== 0) results.outcomes.push({ title: 'extension-host suite', state: 'failed', error: `exit code ${exitCode}; no results file (did the extension activate?)\n${server.output().slice(-3000)}` });
  const count = (s) => results.outcomes.filter((o) => o.state === s).length;
  fs.rmSync(box.root, { recursive: true, force: true });
  return { passed: count('passed'), failed: Math.max(count('failed'), exitCode === 0 ? 0 : 1), pending: count('pending'), outcomes: results.outcomes, exitCode };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const grep = process.argv.slice(2).find((a) => !a.startsWith('--'));
  const r = await runHostSuite({ grep, restricted: process.argv.includes('--restricted') });
  for (const o of r.outcomes.filter((x) => x.state === 'failed')) console.log(`FAILED ${o.title}\n${o.error}\n`);
  console.log(`extension host: ${r.passed} passed, ${r.failed} failed`);
  process.exit(r.failed ? 1 : 0);
}
