// The native kernels built with the other compiler and for the other architecture, as CI checks
// them (.ci/run installs clang, lld, qemu-user and Debian's arm64 C library):
//   - clang builds the addon warning-free (-Werror, as gcc does), and it computes what the gcc build
//     computes, bit for bit (test/native/compareBuilds.cjs), on every ISA the CPU has;
//   - the NEON micro-kernel cross-compiles for arm64 (clang --target=aarch64-linux-gnu);
//   - every kernel file cross-compiles for arm64 and the C kernel test (test/native/kernels_test.c:
//     NEON and generic) passes under qemu-aarch64.
// Each part skips, saying why, only where its tools are missing; test/support/requiredSuites.cjs
// makes such a skip fail CI.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NATIVE_FILE } from '../../../src/runs/nativeLoader';

const ROOT = path.resolve(__dirname, '../../..');
const BUILD = path.join(ROOT, 'native', 'build.mjs');
const DEFAULT_ADDON = path.join(ROOT, 'dist', 'native', NATIVE_FILE);
const ARM = 'aarch64-linux-gnu';
// Debian's arm64 C library (libc6-dev-arm64-cross): headers, crt files and libc.a for a static program.
const ARM_LIBC = `/usr/${ARM}/lib/libc.a`;

function which(cmd: string): boolean {
  return process.platform !== 'win32' && spawnSync('which', [cmd], { stdio: 'ignore' }).status === 0;
}

/** Whether clang compiles for arm64 (its aarch64 backend is built in). */
function clangTargetsArm(dir: string): boolean {
  const probe = path.join(dir, 'probe.c');
  fs.writeFileSync(probe, 'int f(int x) { return x + 1; }\n');
  return spawnSync('clang', [`--target=${ARM}`, '-c', probe, '-o', path.join(dir, 'probe.o')], { stdio: 'ignore' }).status === 0;
}

/** Runs native/build.mjs with args; fails the test with its output when it fails. */
function build(args: string[]): void {
  const r = spawnSync(process.execPath, [BUILD, '--require', ...args], { encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, `node native/build.mjs ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
}

describe('perf: native kernels with clang and for arm64 (build checks)', function () {
  this.timeout(300_000);
  let dir: string;
  const hasClang = which('clang');

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-toolchains-'));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('clang -Werror builds the addon, which loads and gives the default build\'s results bit for bit on every ISA', function () {
    if (!hasClang) {
      console.log('      (skipped: clang is not on PATH; .ci/run installs it)');
      this.skip();
    }
    if (process.platform !== 'linux' && process.platform !== 'darwin') this.skip();
    const addon = path.join(dir, 'clang', NATIVE_FILE);
    build(['--cc', 'clang', '--out', addon]);
    // In a child process: this one may have loaded the default build already (two pools are fine,
    // but the comparison should not depend on what else ran here).
    const args = [path.join(ROOT, 'test/native/compareBuilds.cjs'), addon, ...(fs.existsSync(DEFAULT_ADDON) ? [DEFAULT_ADDON] : [])];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `compareBuilds.cjs failed (signal ${r.signal}):\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as { isas: string[]; compared: number; mismatches: string[]; maxRel: number };
    console.log(`      ${out.isas.join(', ')}: ${out.compared} outputs compared with the default build`);
    assert.ok(out.isas.includes('generic'), JSON.stringify(out.isas));
    assert.ok(out.maxRel < 1e-5, `clang build's products against float64: ${out.maxRel}`);
    if (fs.existsSync(DEFAULT_ADDON)) {
      assert.ok(out.compared > 0);
      assert.deepEqual(out.mismatches, [], 'the clang build differs from the default build');
    }
  });

  it('arm64: the NEON micro-kernel cross-compiles warning-free (clang --target=aarch64-linux-gnu, freestanding)', function () {
    if (!hasClang || !clangTargetsArm(dir)) {
      console.log(`      (skipped: ${hasClang ? 'this clang has no aarch64 target' : 'clang is not on PATH'})`);
      this.skip();
    }
    const obj = path.join(dir, 'micro_neon.o');
    const r = spawnSync('clang', [`--target=${ARM}`, '-ffreestanding', '-std=c11', '-O3', '-Wall', '-Wextra', '-Werror', '-ffp-contract=off',
      '-c', path.join(ROOT, 'native/src/micro_neon.c'), '-o', obj], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // The inner loop is the 24 lane-indexed multiply-adds of an 8 × 12 tile.
    if (which('llvm-objdump')) {
      const asm = execFileSync('llvm-objdump', ['-d', obj], { encoding: 'utf8' });
      assert.ok((asm.match(/\bfmla\s+v\d+\.4s, v\d+\.4s, v\d+\.s\[\d\]/g) ?? []).length >= 24, 'no lane-indexed fmla in micro_neon.o');
    }
  });

  it('arm64: every kernel file cross-compiles, and the C kernel test passes under qemu-aarch64 (NEON, generic, threads)', function () {
    const missing = [
      !hasClang && 'clang',
      hasClang && !clangTargetsArm(dir) && 'clang\'s aarch64 target',
      !which('ld.lld') && 'ld.lld (lld)',
      !which('qemu-aarch64') && 'qemu-aarch64 (qemu-user)',
      !fs.existsSync(ARM_LIBC) && `${ARM_LIBC} (libc6-dev-arm64-cross)`,
    ].filter(Boolean);
    if (missing.length) {
      console.log(`      (skipped: missing ${missing.join(', ')}; .ci/run installs them)`);
      this.skip();
    }
    const objects = path.join(dir, 'arm64');
    build(['--cc', 'clang', '--target', ARM, '--objects', objects, '--cflags', '-O2']);
    const names = fs.readdirSync(objects);
    assert.ok(names.includes('micro_neon.o') && !names.includes('micro_avx2.o'), names.join(', '));
    const exe = path.join(dir, 'kernels_test-arm64');
    const cc = spawnSync('clang', [`--target=${ARM}`, '-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-D_POSIX_C_SOURCE=200809L', '-D_ISOC11_SOURCE',
      '-static', '-fuse-ld=lld', path.join(ROOT, 'test/native/kernels_test.c'), ...names.map((n) => path.join(objects, n)), '-o', exe, '-lm', '-lpthread'], { encoding: 'utf8' });
    assert.equal(cc.status, 0, `linking test/native/kernels_test.c for arm64 failed:\n${cc.stderr}`);
    const run = spawnSync('qemu-aarch64', [exe], { encoding: 'utf8', timeout: 240_000 });
    assert.equal(run.signal, null, `killed by ${run.signal}:\n${run.stderr}`);
    assert.equal(run.status, 0, `exit code ${run.status}:\n${run.stderr.slice(-6000)}`);
    assert.match(run.stdout, /^ok: .*\(neon, generic\)/m);
  });
});
