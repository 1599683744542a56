// @vscode/test-cli configuration for developers with internet access (`npx vscode-test`): downloads
// VS Code and runs the same extension-host suite as `npm run test:vscode` does in code-server. Build the
// suite first: `npm run build && node test/vscode/buildSuite.mjs`, and create the example workspace with
// `node -e "import('./test/vscode/workspace.mjs').then(m => console.log(m.makeWorkspace('.vscode-test')))"`.
import { defineConfig } from '@vscode/test-cli';

export default defineConfig([
  {
    label: 'stable',
    files: 'out/vscode-suite/test/integration/**/*.test.js',
    workspaceFolder: '.vscode-test/workspace',
    version: 'stable',
    launchArgs: ['--disable-extensions', '--disable-workspace-trust'],
    mocha: { ui: 'bdd', timeout: 180_000 },
  },
  {
    // The oldest VS Code our engines field accepts (rust-analyzer tests both ends).
    label: 'minimum',
    files: 'out/vscode-suite/test/integration/**/*.test.js',
    workspaceFolder: '.vscode-test/workspace',
    version: '1.100.0',
    launchArgs: ['--disable-extensions', '--disable-workspace-trust'],
    mocha: { ui: 'bdd', timeout: 180_000 },
  },
]);
