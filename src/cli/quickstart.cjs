#!/usr/bin/env node
// `npm start` on a fresh clone: install the dependencies (only when node_modules is missing or older
// than package-lock.json), build the bundles, and train the built-in low-rank-recovery experiment with
// the bundled CLI, which prints the backend in use and where the run and its adapter are.
// Plain CommonJS on purpose: it must run before anything is installed.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd, args) {
  console.log(`\n> ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}).`);
    process.exit(r.status || 1);
  }
}

function mtime(p) {
  try {
    return fs.statSync(path.join(root, p)).mtimeMs;
  } catch {
    return -1;
  }
}

// npm writes node_modules/.package-lock.json after every successful install.
if (mtime('node_modules/.package-lock.json') < mtime('package-lock.json')) {
  run(npm, ['ci', '--no-audit', '--no-fund']);
}
if (mtime('dist/cli.js') < 0 || process.env.LORA_LAB_REBUILD !== '0') {
  run(npm, ['run', '--silent', 'build']);
}
run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'train', path.join('examples', 'low-rank-recovery.lora.json'), ...process.argv.slice(2)]);
