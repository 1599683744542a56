// Builds the optional native kernels (native/src/*.c) into dist/native/lora_lab_native.node with the
// machine's C compiler and Node's own headers (N-API: one binary serves Node and VS Code's Electron).
// Run by `npm run build` and before the unit tests. Each file is compiled to an object with its own
// flags (the per-ISA kernels with their instruction set, e.g. -mavx2 -mfma), then they are linked.
//
// Where it cannot be built (no C compiler, no Node headers, an OS this script does not know), it says
// why and exits 0: the engine then runs on the pure wasm kernels and reports that the native ones are
// missing. `--require` makes a failed build an error (CI and the tests use it on Linux).
//
// Options: --require; --force (rebuild even when up to date); --cc CC (the compiler; default $CC,
// then cc, gcc, clang); --out FILE (the addon; default dist/native/lora_lab_native.node);
// --objects DIR (only compile the kernels, without the N-API binding, into DIR: for C test programs);
// --target TRIPLE (clang's cross-compilation, e.g. aarch64-linux-gnu; with --objects);
// --cflags "…" (more compiler flags, after the others: sanitizers, debug information).
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'native', 'src');

function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}
const required = process.argv.includes('--require');
const objectsDir = option('--objects') && path.resolve(option('--objects'));
const target = option('--target');
const extraFlags = (option('--cflags') ?? '').split(/\s+/).filter(Boolean);
const out = path.resolve(option('--out') ?? path.join(root, 'dist', 'native', 'lora_lab_native.node'));
const explicit = ['--cc', '--out', '--objects', '--target', '--cflags'].some((o) => process.argv.includes(o));

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

/** The architecture the objects are for: the target triple's, or this Node's. */
function targetArch() {
  if (!target) return process.arch;
  if (/^(x86_64|amd64)/.test(target)) return 'x64';
  if (/^(aarch64|arm64)/.test(target)) return 'arm64';
  return target.split('-')[0];
}

/**
 * The files to compile, each with its own flags: the per-ISA files are built for their instruction
 * set (and only for their architecture); elementwise.c once per set, its functions named by LL_ISA.
 * -fno-trapping-math lets the compiler vectorise elementwise.c's selects.
 */
function units(arch) {
  const elementwise = (isa, flags = []) => ({ src: 'elementwise.c', obj: `elementwise_${isa}`, flags: [`-DLL_ISA=${isa}`, '-fno-trapping-math', ...flags] });
  const list = [
    { src: 'gemm.c' },
    { src: 'pool.c' },
    { src: 'isa.c' },
    { src: 'norm.c' },
    { src: 'frozen.c' },
    { src: 'xent.c' },
    { src: 'softmax.c' },
    { src: 'micro_generic.c' },
    elementwise('generic'),
  ];
  if (arch === 'x64') {
    list.push(
      { src: 'micro_avx2.c', flags: ['-mavx2', '-mfma'] },
      { src: 'micro_avx512.c', flags: ['-mavx512f'] },
      elementwise('avx2', ['-mavx2', '-mfma']),
      elementwise('avx512', ['-mavx512f']),
    );
  }
  if (arch === 'arm64') list.push({ src: 'micro_neon.c' });
  return list.map((u) => ({ flags: [], obj: path.basename(u.src, '.c'), ...u }));
}

if (!objectsDir && process.platform !== 'linux' && process.platform !== 'darwin') skip(`no build recipe for ${process.platform}`);

// Node's headers: beside the running node (official builds and Debian's), or npm's node-gyp cache.
const candidates = [
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
  '/usr/include/node',
].filter(Boolean);
const include = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
if (!include && !objectsDir) skip(`node_api.h not found (looked in ${candidates.join(', ')})`);

const cc = [option('--cc'), process.env.CC, 'cc', 'gcc', 'clang'].find((c) => c && which(c));
if (!cc) skip(option('--cc') ? `${option('--cc')} is not on PATH` : 'no C compiler (cc, gcc or clang) on PATH');

const sources = fs.readdirSync(srcDir).map((f) => path.join(srcDir, f));
const newest = Math.max(...[...sources, fileURLToPath(import.meta.url)].map((f) => fs.statSync(f).mtimeMs));
if (!explicit && !process.argv.includes('--force') && fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest) process.exit(0);

const common = [
  '-O3', '-std=c11', '-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-Werror',
  // No multiply-add fusing beyond what the kernels write: gcc and clang then round alike.
  '-ffp-contract=off',
  '-D_POSIX_C_SOURCE=200809L', '-D_ISOC11_SOURCE',
  ...(target ? [`--target=${target}`] : []),
];

const run = promisify(execFile);
/** Compiles every unit into dir (a few at a time); throws with the compiler's messages on failure. */
async function compile(list, dir) {
  const queue = [...list];
  const worker = async () => {
    for (let u = queue.shift(); u; u = queue.shift()) {
      const args = [...common, ...u.flags, ...extraFlags, ...(include ? [`-I${include}`] : []), '-c', path.join(srcDir, u.src), '-o', path.join(dir, `${u.obj}.o`)];
      try {
        await run(cc, args);
      } catch (e) {
        throw new Error(`${cc} failed on ${u.src}:\n${e.stderr || e.message}`);
      }
    }
  };
  const jobs = Math.max(1, Math.min(list.length, os.availableParallelism?.() ?? os.cpus().length));
  // Every compiler run ends before this returns (the caller may delete their folder).
  const failed = (await Promise.allSettled(Array.from({ length: jobs }, worker))).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

const kernels = units(targetArch());
if (objectsDir) {
  fs.mkdirSync(objectsDir, { recursive: true });
  try {
    await compile(kernels, objectsDir);
  } catch (e) {
    console.error(e.message);
    skip(`${cc} failed`);
  }
  process.exit(0);
}

fs.mkdirSync(path.dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const objDir = `${out}.${process.pid}.obj`;
fs.mkdirSync(objDir, { recursive: true });
const all = [...kernels, { src: 'binding.c', obj: 'binding', flags: [] }];
const link = [
  '-shared', ...all.map((u) => path.join(objDir, `${u.obj}.o`)), '-o', tmp, ...extraFlags,
  // The library must never be unloaded while its thread pool lives (see pin_library in binding.c).
  // Built against this machine's glibc: where an older one lacks a symbol version, loading fails and
  // the engine reports it and runs on wasm.
  ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : ['-Wl,-z,nodelete', '-lm', '-lpthread']),
];
let failure;
try {
  await compile(all, objDir);
  await run(cc, link);
} catch (e) {
  failure = e;
}
fs.rmSync(objDir, { recursive: true, force: true });
if (failure) {
  fs.rmSync(tmp, { force: true });
  console.error(failure.stderr || failure.message);
  skip(`${cc} failed`);
}
fs.renameSync(tmp, out);
const shown = path.relative(root, out);
console.log(`native kernels: ${shown.startsWith('..') ? out : shown} (${cc})`);
