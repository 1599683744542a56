// Installs code-server 4.100.3 (= VS Code 1.100.3, the last release whose engines accept Node 20) into a
// git-ignored cache folder, on a machine that reaches only the npm registry and Debian apt
// (../shared/REAL-VSCODE-TESTS.md). Idempotent: a finished install leaves a marker and is reused.
//
//   node test/vscode/installCodeServer.mjs        -> prints the path of code-server's entry script
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_SERVER_VERSION = '4.100.3';
const RIPGREP_VERSION = '1.15.11'; // @vscode/ripgrep pinned inside code-server 4.100.3
const RIPGREP_ASSET = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cacheDir = path.join(repoRoot, '.vscode-test', `code-server-${CODE_SERVER_VERSION}`);
const marker = path.join(cacheDir, '.installed');
export const entryScript = path.join(cacheDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');

function log(msg) {
  process.stderr.write(`[install-code-server] ${msg}\n`);
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Debian packages the install and the tests need; installed only when missing (CI starts bare). */
function ensureDebianPackages() {
  const want = [];
  if (!has('rg')) want.push('ripgrep');
  if (!has('chromium') && !fs.existsSync('/usr/bin/chromium')) want.push('chromium');
  if (!has('make')) want.push('make');
  if (!has('g++')) want.push('g++');
  if (!has('python3')) want.push('python3');
  if (!fs.existsSync('/usr/include/krb5.h') && !fs.existsSync('/usr/include/krb5/krb5.h')) want.push('libkrb5-dev');
  if (want.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`Missing Debian packages: ${want.join(' ')}. Install them with: sudo apt-get install -y --no-install-recommends ${want.join(' ')}`);
  }
  log(`apt-get install ${want.join(' ')}`);
  execFileSync('apt-get', ['update'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...want], { stdio: 'inherit' });
}

export function isInstalled() {
  return fs.existsSync(marker) && fs.existsSync(entryScript);
}

export function installCodeServer() {
  if (isInstalled()) return entryScript;
  ensureDebianPackages();
  fs.mkdirSync(cacheDir, { recursive: true });

  // @vscode/ripgrep's postinstall skips GitHub when its tarball is already in $TMPDIR's cache folder:
  // pack Debian's rg as that tarball (a file `rg` at the archive root).
  const tmp = path.join(cacheDir, 'tmp');
  const rgCache = path.join(tmp, `vscode-ripgrep-cache-${RIPGREP_VERSION}`);
  fs.mkdirSync(rgCache, { recursive: true });
  const rgPath = execFileSync('sh', ['-c', 'command -v rg'], { encoding: 'utf8' }).trim();
  execFileSync('tar', ['-czf', path.join(rgCache, RIPGREP_ASSET), '-C', path.dirname(fs.realpathSync(rgPath)), path.basename(fs.realpathSync(rgPath))]);

  fs.writeFileSync(path.join(cacheDir, 'package.json'), JSON.stringify({ name: 'lora-lab-code-server-cache', private: true }, null, 2));
  const env = {
    ...process.env,
    TMPDIR: tmp,
    npm_config_unsafe_perm: 'true', // its postinstall refuses to run as root otherwise
    npm_config_yes: 'true', // node-pty's postinstall runs `npx node-gyp`
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  log(`npm install code-server@${CODE_SERVER_VERSION} into ${cacheDir} (argon2/kerberos build from source: ~2 min)`);
  const t0 = Date.now();
  const r = spawnSync('npm', ['install', '--no-save', '--no-package-lock', `code-server@${CODE_SERVER_VERSION}`], {
    cwd: cacheDir,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`npm install code-server@${CODE_SERVER_VERSION} failed (exit ${r.status}); see the output above`);
  if (!fs.existsSync(entryScript)) throw new Error(`code-server installed but ${entryScript} is missing`);
  fs.writeFileSync(marker, `${new Date().toISOString()} ${os.hostname()} node ${process.version}\n`);
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return entryScript;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(installCodeServer() + '\n');
}
