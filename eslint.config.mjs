// Import boundaries (STYLE.md §2) are enforced here, one block per row of the table.
import tseslint from 'typescript-eslint';

const vscodeBan = { name: 'vscode', message: 'engine/formats/protocol/worker/cli must not depend on VS Code.' };
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
  group: ['**/io', '**/io/*', '**/runs', '**/runs/*', '**/cli', '**/cli/*', '**/worker', '**/worker/*', '**/jobs', '**/jobs/*', '**/views', '**/views/*'],
  message: 'engine/formats/models are pure: they must not import io/, runs/, cli/, worker/, jobs/ or views/. Pass bytes or parsed data in.',
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
  {
    files: ['src/engine/**', 'src/models/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [nodeBan, impureBan] }] },
  },
  {
    files: ['src/formats/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [nodeBan, tfjsBan, impureBan] }] },
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
    files: ['src/protocol/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan], patterns: [nodeBan, tfjsBan] }] },
  },
  {
    files: ['src/worker/**', 'src/cli/**', 'src/runs/**', 'src/playground/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [vscodeBan] }] },
  },
  {
    files: ['src/extension.ts', 'src/jobs/**', 'src/views/**', 'src/util/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [tfjsBan] }] },
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
