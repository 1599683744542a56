// Import boundaries (STYLE.md §2) are enforced here, one block per row of the table.
import tseslint from 'typescript-eslint';

const vscodeBan = { name: 'vscode', message: 'Only extension.ts, commands.ts, jobs/, views/, util/ and runners/ depend on VS Code.' };
const tfjsBan = {
  group: ['@tensorflow/*'],
  message: 'TensorFlow.js runs only in the engine, models and the training worker (never on the extension host).',
};
const nodeBan = {
  group: ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'worker_threads', 'crypto', 'url', 'util', 'stream'],
  message: 'This folder is pure: bytes and strings in, typed values out. Do I/O in runs/, cli/, worker/ or jobs/.',
};

// Pure folders must not reach into the ones that do I/O or talk to VS Code (relative imports, any depth).
const impureBan = {
  group: ['**/io', '**/io/*', '**/runs', '**/runs/*', '**/cli', '**/cli/*', '**/worker/*', '**/jobs', '**/jobs/*', '**/views', '**/views/*',
    '**/dashboard', '**/dashboard/*', '**/insight', '**/insight/*', '**/playground/*', '**/export', '**/export/*', '**/runners', '**/runners/*', '**/util', '**/util/*', '../commands', '../../commands', '../extension', '../../extension'],
  message: 'engine/formats/models are pure: they must not import io/, runs/, cli/, worker/, jobs/, views/, dashboard/, insight/, playground/, export/, runners/, util/ or the extension. Pass bytes or parsed data in.',
};

// The folders that import vscode (and the extension's entry points): code that must also run in the
// CLI, the worker or plain Node must not import them, even where the vscode import is a file away.
const hostBan = {
  group: ['**/jobs', '**/jobs/*', '**/views', '**/views/*', '**/runners', '**/runners/*', '**/util', '**/util/*', '../commands', '../../commands', '../extension', '../../extension'],
  message: 'jobs/, views/, runners/, util/, commands.ts and extension.ts import vscode: this folder also runs outside VS Code.',
};

// tfjs lives in engine/ and models/ (and the worker, runs and playground that drive them): code the
// extension host loads must not import those folders, even where tfjs is a file away.
const tfjsFolderBan = {
  group: ['**/engine', '**/engine/*', '**/models', '**/models/*', '**/worker/*'],
  message: 'engine/, models/ and worker/ load TensorFlow.js: the extension host (and what it imports) never does. Talk to the training worker through src/protocol.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', '.vscode-test/**', 'test/.artifacts/**', '**/*.cjs'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  // One row per folder of src/ (README "Layout" says the same in words).
  {
    files: ['src/engine/**', 'src/models/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [nodeBan, impureBan] }] },
  },
  {
    files: ['src/formats/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [nodeBan, tfjsBan, impureBan, { group: ['**/engine', '**/engine/*', '**/models', '**/models/*'], message: 'formats/ parses bytes and text; it does not depend on the engine or the models.' }] }] },
  },
  {
    // Shared by every runtime, the webview included: pure, and it imports nothing outside src/shared.
    files: ['src/shared/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [vscodeBan], patterns: [nodeBan, tfjsBan, { group: ['../*', '../**'], message: 'src/shared imports only src/shared (the webview bundles it).' }] },
      ],
    },
  },
  {
    // Message and file-format types: imports only src/protocol, src/shared and the engine's report types it re-exports.
    files: ['src/protocol/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [vscodeBan], patterns: [nodeBan, tfjsBan, { group: ['../*', '!../shared', '!../engine', '../engine/*', '!../engine/reports'], message: 'src/protocol imports only src/protocol, src/shared and engine/reports.ts (the webview compiles it).' }] },
      ],
    },
  },
  {
    // Plain-Node file reads (safetensors, model folders, atomic writes): formats below, nothing above.
    files: ['src/io/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [vscodeBan], patterns: [tfjsBan, hostBan, { group: ['**/engine', '**/engine/*', '**/models', '**/models/*', '**/runs', '**/runs/*', '**/cli', '**/cli/*', '**/worker/*', '**/dashboard', '**/dashboard/*', '**/insight', '**/insight/*', '**/playground/*', '**/export', '**/export/*'], message: 'io/ reads and writes files for the layers above it; it does not import them.' }] },
      ],
    },
  },
  {
    // Outside VS Code too (the worker thread, the CLI, plain Node tests): no vscode, not even a file away.
    files: ['src/worker/**', 'src/cli/**', 'src/runs/**', 'src/playground/**', 'src/export/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [hostBan] }] },
  },
  {
    // Loaded by the extension host and by the CLI's `report`/`inspect`: no vscode, no tfjs.
    files: ['src/dashboard/**', 'src/insight/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [tfjsBan, hostBan, { group: ['**/models', '**/models/*', '**/worker/*', '**/cli', '**/cli/*'], message: 'dashboard/ and insight/ run on the extension host and in the CLI: no models (tfjs), worker or cli imports.' }] }] },
  },
  {
    // The VS Code side: never loads TensorFlow.js (training runs in the worker).
    files: ['src/extension.ts', 'src/commands.ts', 'src/jobs/**', 'src/views/**', 'src/util/**', 'src/runners/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [tfjsBan, tfjsFolderBan] }] },
  },
  {
    files: ['webview-ui/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ ...vscodeBan, allowTypeImports: true }],
          patterns: [
            tfjsBan,
            nodeBan,
            { group: ['**/src/*', '!**/src/protocol', '!**/src/protocol/**', '!**/src/shared', '!**/src/shared/**'], message: 'The webview imports only src/protocol and src/shared from the host tree.' },
          ],
        },
      ],
    },
  },
);
