// The native kernels under sanitizers: test/native/kernels_test.c, linked with the kernels' objects
// without the N-API binding (`node native/build.mjs --objects DIR`, each file with its own flags plus
// the sanitizer's), checks gemm (every ISA the CPU has, shapes across the blocking, threads splitting
// rows and columns), exp, GELU, the norms and the thread pool (two callers racing for it) against
// float64 references. Built once with AddressSanitizer + UndefinedBehaviorSanitizer and once with
// ThreadSanitizer (the pool part only), where the C compiler supports them; otherwise each is
// skipped with the reason. Any sanitizer report makes the program exit non-zero.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const TEST_C = path.join(ROOT, 'test', 'native', 'kernels_test.c');
const BUILD = path.join(ROOT, 'native', 'build.mjs');

function which(cmd: string): boolean {
  try {
    execFileSync('which', [cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const CC = [process.env.CC, 'cc', 'gcc', 'clang'].find((c): c is string => !!c && process.platform !== 'win32' && which(c));

interface Sanitizer {
  name: string;
  flags: string[];
  env: Record<string, string>;
  args: string[];
}

const SANITIZERS: Sanitizer[] = [
  {
    name: 'AddressSanitizer + UndefinedBehaviorSanitizer',
    flags: ['-fsanitize=address,undefined,float-cast-overflow', '-fno-sanitize-recover=all'],
    env: { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=86', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=87' },
    args: [],
  },
  {
    name: 'ThreadSanitizer',
    flags: ['-fsanitize=thread'],
    env: { TSAN_OPTIONS: 'halt_on_error=1:exitcode=88' },
    args: ['pool'],
  },
];

const DEBUG = ['-O1', '-g', '-fno-omit-frame-pointer'];
const COMMON = ['-std=c11', ...DEBUG, '-Wall', '-Wextra', '-Werror', '-D_POSIX_C_SOURCE=200809L', '-D_ISOC11_SOURCE'];

describe('perf: native kernels under sanitizers (C-level test)', function () {
  this.timeout(240_000);
  let dir: string;

  before(function () {
    if (!CC) {
      console.log('      (skipped: no C compiler — cc, gcc or clang — on PATH)');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-sanitize-'));
  });

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const san of SANITIZERS) {
    it(`${san.name}: gemm, exp, GELU, norms and the thread pool run clean and match float64`, function () {
      // Does this compiler build and run a program with the sanitizer (runtime library present, and a
      // kernel whose memory layout the sanitizer accepts)? If not, say so and skip.
      const probeC = path.join(dir, 'probe.c');
      const probe = path.join(dir, `probe-${san.args.join('') || 'asan'}`);
      fs.writeFileSync(probeC, '#include <pthread.h>\nstatic void *f(void *p) { return p; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); pthread_join(t, 0); return 0; }\n');
      const built = spawnSync(CC!, [...san.flags, probeC, '-o', probe, '-lpthread'], { encoding: 'utf8' });
      let env = { ...process.env, ...san.env };
      let ran = built.status === 0 ? spawnSync(probe, [], { encoding: 'utf8', env }) : undefined;
      if (ran && ran.status !== 0 && env.ASAN_OPTIONS) {
        // LeakSanitizer cannot run where ptrace is not allowed (some containers): keep the rest.
        env = { ...env, ASAN_OPTIONS: env.ASAN_OPTIONS.replace('detect_leaks=1', 'detect_leaks=0') };
        ran = spawnSync(probe, [], { encoding: 'utf8', env });
        if (ran.status === 0) console.log('      (LeakSanitizer is not available here: leaks are not checked)');
      }
      if (built.status !== 0 || ran?.status !== 0) {
        const why = built.status !== 0 ? `${CC} cannot build with ${san.flags[0]}` : `a ${san.flags[0]} program does not run here`;
        console.log(`      (skipped: ${why}: ${(built.stderr || ran?.stderr || '').trim().split('\n')[0]})`);
        this.skip();
      }
      const tag = san.args.join('') || 'asan';
      const objects = path.join(dir, `objects-${tag}`);
      const compiled = spawnSync(process.execPath, [BUILD, '--require', '--cc', CC!, '--objects', objects, '--cflags', [...DEBUG, ...san.flags].join(' ')], { encoding: 'utf8' });
      assert.equal(compiled.status, 0, `node native/build.mjs --objects failed:\n${compiled.stdout}${compiled.stderr}`);
      const exe = path.join(dir, `kernels-${tag}`);
      const objs = fs.readdirSync(objects).map((f) => path.join(objects, f));
      const cc = spawnSync(CC!, [...COMMON, ...san.flags, TEST_C, ...objs, '-o', exe, '-lm', '-lpthread'], { encoding: 'utf8' });
      assert.equal(cc.status, 0, `${CC} failed to build test/native/kernels_test.c:\n${cc.stderr}`);
      const run = spawnSync(exe, san.args, { encoding: 'utf8', env, timeout: 180_000 });
      assert.equal(run.signal, null, `killed by ${run.signal}:\n${run.stderr}`);
      assert.equal(run.status, 0, `exit code ${run.status}:\n${run.stderr.slice(-6000)}`);
      assert.match(run.stdout, /^ok: /m);
      assert.doesNotMatch(run.stderr, /Sanitizer|runtime error/, run.stderr);
    });
  }
});
