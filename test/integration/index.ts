// Entry point of the mocha suite inside the VS Code extension host (code-server's payload
// `extensionTestsPath`, or @vscode/test-electron). Runs every test/integration/**/*.test.js that
// test/vscode/buildSuite.mjs compiled next to this file, so other suites (e.g. the dashboard's) only add a
// file. Results also go to $LORA_LAB_SUITE_RESULTS (JSON) when set: the browser-side runner reads them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

function findTests(dir: string, out: string[] = []): string[] {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) findTests(p, out);
    else if (ent.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

interface Outcome {
  title: string;
  state: 'passed' | 'failed' | 'pending';
  durationMs?: number;
  error?: string;
}

export function run(): Promise<void> {
  const grep = process.env.LORA_LAB_SUITE_GREP;
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 120_000, reporter: 'spec', ...(grep ? { grep } : {}) });
  for (const f of findTests(__dirname)) mocha.addFile(f);
  const outcomes: Outcome[] = [];
  const resultsFile = process.env.LORA_LAB_SUITE_RESULTS;
  return new Promise((resolve, reject) => {
    try {
      const runner = mocha.run((failures) => {
        if (resultsFile) fs.writeFileSync(resultsFile, JSON.stringify({ failures, outcomes }, null, 2));
        if (failures > 0) reject(new Error(`${failures} extension-host test(s) failed`));
        else resolve();
      });
      runner.on('pass', (t) => outcomes.push({ title: t.fullTitle(), state: 'passed', durationMs: t.duration }));
      runner.on('fail', (t, err: Error) => outcomes.push({ title: t.fullTitle(), state: 'failed', error: err.stack ?? err.message }));
      runner.on('pending', (t) => outcomes.push({ title: t.fullTitle(), state: 'pending' }));
    } catch (e) {
      reject(e);
    }
  });
}
