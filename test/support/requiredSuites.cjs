// Suites that must not be skipped where what they need is present: a skip there means CI silently
// stopped testing something (a fixture folder moved, the native build broke, the Python stack went
// missing). summaryReporter.cjs checks every skipped test against these rules; under CI (CI=true) or
// LORA_LAB_REQUIRE_SUITES=1 a match fails the run, elsewhere it is printed as a warning.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const REPO = path.resolve(__dirname, '../..');
const REAL_WORLD = path.resolve(REPO, '../shared/fixtures/real-world');
const PYSTACK = path.resolve(REPO, '../shared/pystack/python');
const PEFT_FIXTURES = path.join(REPO, 'test/fixtures/peft');

let torchCache;
/** Whether Debian's python3 imports torch (the condition .ci/run's pystack packages establish). */
function torchImports() {
  if (torchCache === undefined) torchCache = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  return torchCache;
}

const rel = (file) => (file ? path.relative(REPO, file).split(path.sep).join('/') : '');

/**
 * Each rule: `when` says whether the suite must run here (and why, for the message); `matches` picks the
 * skipped tests it covers by file (repository-relative) and full title.
 */
const RULES = [
  {
    name: 'real-world corpus',
    when: () => (fs.existsSync(REAL_WORLD) ? `${REAL_WORLD} exists` : undefined),
    matches: (file, title) => file === 'test/unit/interop/realWorld.test.ts' || /real-world|upstream test vectors|safetensors: samples|a real mlx-lm adapter/i.test(title),
  },
  {
    name: 'PEFT fixtures',
    when: () => (fs.existsSync(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8', 'reference.json')) ? `${rel(PEFT_FIXTURES)} is in the checkout` : undefined),
    matches: (file, title) => file === 'test/unit/interop/peftParity.test.ts' || /PEFT parity|PEFT fixture/i.test(title),
  },
  {
    name: 'native kernels',
    when: () => (process.platform === 'linux' && process.arch === 'x64' ? 'this is linux-x64, where the native kernels build' : undefined),
    matches: (file, title) =>
      /^test\/unit\/perf\/(native(Kernels|Elementwise|BadCalls|Workers|Xent)|attentionSoftmax)\.test\.ts$/.test(file) || file === 'test/unit/models/realSizeGpt2.test.ts' || /with native kernels/.test(title),
  },
  {
    name: 'native toolchains (clang, arm64)',
    when: () => (process.platform === 'linux' && process.arch === 'x64' ? 'this is linux-x64, where .ci/run installs clang, lld, qemu-user and the arm64 C library' : undefined),
    matches: (file) => file === 'test/unit/perf/nativeToolchains.test.ts',
  },
  {
    name: 'PEFT round trip / pystack',
    when: () => (torchImports() && fs.existsSync(PYSTACK) ? `python3 imports torch and ${PYSTACK} exists` : undefined),
    matches: (file, title) =>
      file === 'test/unit/interop/peftRoundTrip.test.ts' ||
      /^(exported job on transformers \+ PEFT|a Hugging Face Trainer folder made by the stack|runners: the Python check)/.test(title),
  },
  {
    name: 'SSH runner',
    when: () => (torchImports() && fs.existsSync(PYSTACK) && fs.existsSync('/usr/sbin/sshd') ? 'the pystack and /usr/sbin/sshd are here' : undefined),
    // The full-disk case needs CAP_SYS_ADMIN to mount a tmpfs; that one may skip.
    matches: (_file, title) => /^runners: SSH host/.test(title) && !/a full remote disk/.test(title),
  },
];

/** The rules a skipped test breaks here: [{ rule, why }]. */
function violations(file, title) {
  const out = [];
  const f = rel(file);
  for (const rule of RULES) {
    if (!rule.matches(f, title)) continue;
    const why = rule.when();
    if (why) out.push({ rule: rule.name, why });
  }
  return out;
}

const enforced = () => process.env.CI === 'true' || process.env.CI === '1' || process.env.LORA_LAB_REQUIRE_SUITES === '1';

module.exports = { RULES, violations, enforced, rel };
