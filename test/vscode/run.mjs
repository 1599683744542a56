// `npm run test:vscode`: build, package the .vsix, install code-server if missing, then run
//   1. the mocha suite inside code-server's extension host (test/integration, against this folder),
//   2. the same suite's Restricted-Mode part in an untrusted window,
//   3. the Playwright UI tests against the installed .vsix,
// after checking the .vsix itself (bundles and wasm binaries in, development files out).
// Prints "vscode: N passed, N failed, N skipped" last and exits non-zero on any failure, including a
// required suite (REQUIRED below: Restricted Mode in its step) that skipped or did not run.
//   Options: --skip-build (reuse dist/ and the .vsix), --only vsix|host|restricted|ui, --grep TEXT
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkVsix } from './checkVsix.mjs';
import { installCodeServer } from './installCodeServer.mjs';
import { runHostSuite } from './runHostSuite.mjs';
import { runUiSuite } from './runUiSuite.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = opt('--only');
const grep = opt('--grep');
const vsix = path.join(repoRoot, '.vscode-test', 'vsix', 'lora-lab.vsix');

function step(title, cmd, argv) {
  process.stdout.write(`\n== ${title}\n`);
  const r = spawnSync(cmd, argv, { cwd: repoRoot, stdio: 'inherit' });
  if (r.status !== 0) {
    console.log(`vscode: 0 passed, 1 failed (${title} failed)`);
    process.exit(1);
  }
}

if (!flag('--skip-build')) {
  step('build (webpack, production)', 'npm', ['run', 'build', '--silent']);
  fs.mkdirSync(path.dirname(vsix), { recursive: true });
  // No prompts: the manifest has no repository field and the repo no LICENSE file (yet).
  step('package the .vsix', 'npx', ['vsce', 'package', '--out', vsix, '--allow-missing-repository', '--skip-license']);
}
process.stdout.write('\n== code-server\n');
installCodeServer();

const results = [];
/**
 * Suites that must run in a given step: skipped or absent there means the step stopped testing what it
 * is for (Restricted Mode above all: its tests skip themselves outside an untrusted window).
 */
const REQUIRED = {
  'extension host': [/^LoRA Lab in VS Code /, /^Training from VS Code /],
  'restricted mode': [/^LoRA Lab in Restricted Mode /],
};
const report = (label, r) => {
  const outcomes = r.outcomes ?? [];
  const skipped = outcomes.filter((x) => x.state === 'pending');
  // A --grep run picks tests on purpose; the check is for full runs.
  for (const re of grep ? [] : (REQUIRED[label] ?? [])) {
    const mine = outcomes.filter((x) => re.test(x.title));
    const ran = mine.filter((x) => x.state === 'passed' || x.state === 'failed').length;
    const left = mine.filter((x) => x.state === 'pending');
    if (ran === 0 || left.length) {
      const error = ran === 0 ? `no test of ${re} ran in this step` : `${left.length} test(s) of ${re} were skipped: ${left.map((x) => x.title).join('; ')}`;
      outcomes.push({ title: `required suite ${re} ran in full`, state: 'failed', error });
      r.failed++;
    }
  }
  results.push(r);
  for (const o of outcomes.filter((x) => x.state === 'failed')) console.log(`\nFAILED [${label}] ${o.title}\n${o.error}`);
  console.log(`${label}: ${r.passed} passed, ${r.failed} failed, ${skipped.length} skipped`);
};

if (!only || only === 'vsix') {
  process.stdout.write('\n== the packaged .vsix\n');
  report('vsix', checkVsix(vsix));
}
if (!only || only === 'host') {
  process.stdout.write('\n== extension-host suite (test/integration)\n');
  report('extension host', await runHostSuite({ grep }));
}
if (!only || only === 'restricted') {
  process.stdout.write('\n== extension-host suite in Restricted Mode\n');
  report('restricted mode', await runHostSuite({ grep, restricted: true }));
}
if (!only || only === 'ui') {
  process.stdout.write('\n== Playwright UI tests (installed .vsix)\n');
  report('ui', await runUiSuite({ vsix, grep }));
}
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
const skippedAll = results.reduce((a, r) => a + (r.outcomes ?? []).filter((o) => o.state === 'pending').length, 0);
console.log(`\nvscode: ${passed} passed, ${failed} failed, ${skippedAll} skipped`);
process.exit(failed ? 1 : 0);
