// @vscode/test-cli configuration for developers with internet access (`npm run build && npx vscode-test`):
// downloads VS Code and runs the same extension-host suite that `npm run test:vscode` runs in
// code-server here. Loading this file compiles the suite (out/vscode-suite) and makes a fresh example
// workspace (.vscode-test/workspace), as test/vscode/runHostSuite.mjs does.
import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from '@vscode/test-cli';
import { buildSuite, suiteOut } from './test/vscode/buildSuite.mjs';
import { makeWorkspace } from './test/vscode/workspace.mjs';

buildSuite();
const parent = path.resolve('.vscode-test');
fs.rmSync(path.join(parent, 'workspace'), { recursive: true, force: true });
fs.mkdirSync(parent, { recursive: true });
const workspaceFolder = makeWorkspace(parent);

const common = {
  files: path.join(suiteOut, 'test', 'integration', '**', '*.test.js'),
  workspaceFolder,
  launchArgs: ['--disable-extensions', '--disable-workspace-trust'],
  mocha: { ui: 'bdd', timeout: 180_000 },
};

export default defineConfig([
  { label: 'stable', version: 'stable', ...common },
  // The oldest VS Code our engines field accepts (rust-analyzer tests both ends).
  { label: 'minimum', version: '1.100.0', ...common },
]);
