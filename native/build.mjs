// Builds the optional native kernels (native/lora_lab_native.c) into dist/native/lora_lab_native.node
// with the machine's C compiler and Node's own headers (N-API: one binary serves Node and VS Code's
// Electron). Run by `npm run build` and before the unit tests.
//
// Where it cannot be built (no C compiler, no Node headers, an OS this script does not know), it says
// why and exits 0: the engine then runs on the pure wasm kernels and reports that the native ones are
// missing. `--require` makes a failed build an error (CI and the tests use it on Linux).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'native', 'lora_lab_native.c');
const outDir = path.join(root, 'dist', 'native');
const out = path.join(outDir, 'lora_lab_native.node');
const required = process.argv.includes('--require');

function skip(why) {
  const msg = `native kernels not built: ${why}; training runs on the wasm kernels`;
  if (required) {
    console.error(msg);
    process.exit(1);
  }
  console.log(msg);
  process.exit(0);
}

function which(cmd) {
  try {
    execFileSync(process.platform === 'win32' ? 'where' : 'which', [cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (process.platform !== 'linux' && process.platform !== 'darwin') skip(`no build recipe for ${process.platform}`);

// Node's headers: beside the running node (official builds and Debian's), or npm's node-gyp cache.
const candidates = [
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
  '/usr/include/node',
].filter(Boolean);
const include = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!include) skip(`node_api.h not found (looked in ${candidates.join(', ')})`);

const cc = [process.env.CC, 'cc', 'gcc', 'clang'].find((c) => c && which(c));
if (!cc) skip('no C compiler (cc, gcc or clang) on PATH');

const upToDate =
  fs.existsSync(out) && fs.statSync(out).mtimeMs >= Math.max(fs.statSync(src).mtimeMs, fs.statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (upToDate && !process.argv.includes('--force')) process.exit(0);

fs.mkdirSync(outDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const args = [
  '-O3', '-std=c11', '-fPIC', '-shared', '-fvisibility=hidden', '-Wall', '-Wextra', '-Werror',
  '-D_POSIX_C_SOURCE=200809L', '-D_ISOC11_SOURCE',
  `-I${include}`, src, '-o', tmp,
  // The library must never be unloaded while its thread pool lives (see pin_library in the source).
  // Built against this machine's glibc: where an older one lacks a symbol version, loading fails and
  // the engine reports it and runs on wasm.
  ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : ['-Wl,-z,nodelete', '-lm', '-lpthread']),
];
try {
  execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (e) {
  try {
    fs.rmSync(tmp, { force: true });
  } catch {
    // nothing to clean
  }
  skip(`${cc} failed (${e.status ?? e.message})`);
}
fs.renameSync(tmp, out);
console.log(`native kernels: ${path.relative(root, out)} (${cc})`);
