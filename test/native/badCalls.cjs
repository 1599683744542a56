// Seeded bad calls into the native addon (dist/native/lora_lab_native.node), run as a child process
// by test/unit/perf/nativeBadCalls.test.ts so that a crash is seen as a signal, not a dead test run.
// Every call must return, or throw a TypeError or RangeError whose message starts with
// "lora-lab-native <function>:" (naming what was wrong); a generic "N-API call failed" counts as a failure.
// Prints one JSON line: {calls, returned, typeErrors, rangeErrors, failures: [...]}.
'use strict';
const path = require('node:path');
const addon = require(path.resolve(process.argv[2]));
const calls = Number(process.argv[3] || 2000);
let seed = Number(process.argv[4] || 1) >>> 0;

function rnd() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const shared = new Float32Array(256);

const f32 = (n) => new Float32Array(n).map(() => rnd() * 4 - 2);
const detached = () => {
  const a = new Float32Array(8);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
};

/** A value that is wrong for an array argument (or sometimes right but awkward). */
function badArray(like) {
  switch (Math.floor(rnd() * 8)) {
    case 0:
      return detached();
    case 1:
      return new Float32Array(0);
    case 2:
      return like ? like.subarray(1) : f32(3); // one float short
    case 3:
      return shared.subarray(Math.floor(rnd() * 128)); // views of one buffer: overlaps
    default:
      return pick([null, undefined, 0, 'x', [1, 2, 3], new Float64Array(64), new Int32Array(64), new Uint8Array(256), {}, 1n]);
  }
}

function badCount() {
  return pick([-1, 1.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, 2 ** 64, '4', null, undefined, {}, 4n, true, 1e9, 65]);
}

function badScalar() {
  return pick([-1, NaN, -Infinity, '1e-5', null, undefined, {}, 1n, true, [1e-5], Symbol('eps')]);
}

// Well-formed calls; each argument's kind says how to break it.
function gemmCall() {
  const m = 1 + Math.floor(rnd() * 9), n = 1 + Math.floor(rnd() * 9), k = Math.floor(rnd() * 9), batch = 1 + Math.floor(rnd() * 3);
  const flags = Math.floor(rnd() * 16);
  const na = (flags & 4 ? batch : 1) * m * k, nb = (flags & 8 ? batch : 1) * k * n;
  return [[f32(na), 'a'], [0, 'n'], [f32(nb), 'a'], [0, 'n'], [f32(batch * m * n), 'a'], [0, 'n'], [rnd() < 0.3 ? null : f32(n), 'a'], [0, 'n'], [batch, 'n'], [m, 'n'], [n, 'n'], [k, 'n'], [flags, 'n']];
}
function expCall() {
  const c = Math.floor(rnd() * 40);
  return [[f32(c), 'a'], [0, 'n'], [f32(c), 'a'], [0, 'n'], [c, 'n']];
}
function geluCall(grad) {
  const c = Math.floor(rnd() * 40);
  const arrs = grad ? 4 : 3;
  const out = [];
  for (let i = 0; i < arrs; i++) out.push([f32(c), 'a'], [0, 'n']);
  out.push([c, 'n']);
  return out;
}
function normCall(grad) {
  const rows = 1 + Math.floor(rnd() * 4), dim = 1 + Math.floor(rnd() * 8), n = rows * dim;
  if (!grad) return [[f32(n), 'a'], [0, 'n'], [f32(dim), 'a'], [0, 'n'], [rnd() < 0.5 ? null : f32(dim), 'a'], [0, 'n'], [f32(n), 'a'], [0, 'n'], [f32(2 * rows), 'a'], [0, 'n'], [rows, 'n'], [dim, 'n'], [1e-5, 's'], [Math.floor(rnd() * 2), 'n']];
  return [[f32(n), 'a'], [0, 'n'], [f32(n), 'a'], [0, 'n'], [f32(dim), 'a'], [0, 'n'], [f32(2 * rows), 'a'], [0, 'n'], [f32(n), 'a'], [0, 'n'], [f32(dim), 'a'], [0, 'n'], [rnd() < 0.5 ? null : f32(dim), 'a'], [0, 'n'], [rows, 'n'], [dim, 'n'], [Math.floor(rnd() * 2), 'n']];
}

function xentCall() {
  const rows = Math.floor(rnd() * 5), vocab = 1 + Math.floor(rnd() * 9);
  const labels = Int32Array.from({ length: rows }, () => Math.floor(rnd() * vocab));
  return [[f32(rows * vocab), 'a'], [0, 'n'], [rows, 'n'], [vocab, 'n'], [labels, 'a'], [rnd() < 0.3 ? null : f32(rows), 'a'], [f32(rows), 'a']];
}

function softmaxRowsCall(grad) {
  const rows = Math.floor(rnd() * 6), cols = Math.floor(rnd() * 9), maskRows = rows > 0 && rnd() < 0.7 ? pick([1, rows].filter((m) => rows % m === 0)) : 0;
  if (grad) return [[f32(rows * cols), 'a'], [0, 'n'], [f32(rows * cols), 'a'], [0, 'n'], [f32(rows * cols), 'a'], [0, 'n'], [rows, 'n'], [cols, 'n'], [1 + rnd() * 8, 's']];
  return [[f32(rows * cols), 'a'], [0, 'n'], [maskRows ? f32(maskRows * cols) : null, 'a'], [0, 'n'], [maskRows, 'n'], [f32(rows * cols), 'a'], [0, 'n'], [rows, 'n'], [cols, 'n'], [1 + rnd() * 8, 's']];
}

const fns = [
  ['gemm', gemmCall],
  ['softmaxRows', () => softmaxRowsCall(false)],
  ['softmaxRowsGrad', () => softmaxRowsCall(true)],
  ['softmaxXent', xentCall],
  ['exp', expCall],
  ['geluTanh', () => geluCall(false)],
  ['geluTanhGrad', () => geluCall(true)],
  ['norm', () => normCall(false)],
  ['normGrad', () => normCall(true)],
  ['setThreads', () => [[1 + Math.floor(rnd() * 4), 'n']]],
  ['selectIsa', () => [[pick(['generic', 'avx2', 'avx512', 'neon', '', 'generic\u0000x']), 's']]],
];

/** The call's arguments, and whether it must throw (an array it needs floats from was made shorter). */
function callArgs(make) {
  const spec = make();
  const args = spec.map(([v]) => v);
  let mustThrow = false;
  // Break one argument (sometimes two, sometimes none).
  const breaks = rnd() < 0.1 ? 0 : rnd() < 0.8 ? 1 : 2;
  for (let b = 0; b < breaks; b++) {
    const i = Math.floor(rnd() * spec.length);
    const [orig, kind] = spec[i];
    args[i] = kind === 'a' ? badArray(orig) : kind === 'n' ? badCount() : badScalar();
  }
  // Empty, detached (length 0) or one float short, where floats were needed: never "no bias".
  spec.forEach(([orig], i) => {
    const a = args[i];
    if (orig instanceof Float32Array && orig.length > 0 && a instanceof Float32Array && a.buffer !== shared.buffer && a.length < orig.length) mustThrow = true;
  });
  // Sometimes the wrong number of arguments.
  if (rnd() < 0.04) return { args: args.slice(0, Math.floor(rnd() * args.length)), mustThrow: true };
  return { args, mustThrow };
}

const out = { calls: 0, returned: 0, typeErrors: 0, rangeErrors: 0, failures: [] };
for (let i = 0; i < calls; i++) {
  const [name, make] = fns[i % fns.length];
  const { args, mustThrow } = callArgs(make);
  out.calls++;
  try {
    addon[name](...args);
    out.returned++;
    if (mustThrow && out.failures.length < 20) out.failures.push(`${name} call ${i}: returned, though an array it needs floats from was empty, detached or short (or arguments were missing)`);
  } catch (e) {
    // The message names the function called (not another one's), then the problem.
    const ok = (e instanceof TypeError || e instanceof RangeError) && e.message.startsWith(`lora-lab-native ${name}: `) && !/N-API call failed/.test(e.message);
    if (e instanceof TypeError) out.typeErrors++;
    else if (e instanceof RangeError) out.rangeErrors++;
    if (!ok && out.failures.length < 20) out.failures.push(`${name} call ${i}: ${e && e.name}: ${e && e.message}`);
  }
}
addon.setThreads(1);
addon.selectIsa(addon.isas()[0]);
console.log(JSON.stringify(out));
