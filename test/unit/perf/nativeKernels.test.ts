// The native kernels (native/src → dist/native/lora_lab_native.node, run
// `node native/build.mjs` first) must compute what a float64 reference computes, on every instruction
// set the CPU offers, for every shape, transpose, bias, batching and offset; write nothing outside C;
// reject bad arguments with errors that name them; and, put behind the wasm backend by
// registerWasmFastKernels(native), give the cpu backend's numbers (products, gradients, a LoRA session).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../../src/engine/backend';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import { sessionLosses, values } from './helpers';
import { GEMM_A_BATCHED, GEMM_B_BATCHED, GEMM_TRANS_A, GEMM_TRANS_B, type NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { registerWasmFastKernels, wasmFastKernelsActive, wasmNativeKernels } from '../../../src/engine/kernels/wasmFastKernels';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { attnConfig } from '../engine/configs';
import { countingNative } from './kernelSpies';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** Where native/build.mjs has a recipe and the kernels must therefore exist. */
const BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && (process.arch === 'x64' || process.arch === 'arm64');

// `{}`: the test ignores LORA_LAB_NATIVE=0 in the environment (it tests the kernels, not the switch).
const load = loadNativeKernels({});
const nk: NativeKernels | undefined = load.kernels;

/** gemm without its TypeScript signature, to pass what the signature forbids. */
type LooseGemm = (...args: unknown[]) => void;

/** threads()/setThreads(n), where the addon has them. */
interface Threaded {
  threads(): number;
  setThreads(n: number): unknown;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let scale = 1e-6;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let d = 0;
  for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return Number.isNaN(d) ? Infinity : d / scale;
}

// ---------------------------------------------------------------------------------------------
// gemm against a float64 reference.

interface GemmCase {
  batch: number;
  m: number;
  n: number;
  k: number;
  flags: number;
  bias: boolean;
  /** a, b, bias and c in one array at disjoint offsets, as on the wasm heap; else four arrays. */
  shared: boolean;
  /** Elements before each operand (its offset), and the gap after it. */
  pad: number;
  gap: number;
}

function describeCase(c: GemmCase): string {
  const f = [c.flags & GEMM_TRANS_A ? 'Aᵀ' : 'A', c.flags & GEMM_TRANS_B ? 'Bᵀ' : 'B'];
  const batched = [c.flags & GEMM_A_BATCHED ? 'A' : '', c.flags & GEMM_B_BATCHED ? 'B' : ''].join('') || 'none';
  return `m=${c.m} n=${c.n} k=${c.k} ${f.join('·')} batch=${c.batch} batched=${batched} bias=${c.bias} shared=${c.shared} pad=${c.pad} gap=${c.gap}`;
}

/** The 32 combinations: 4 transposes × bias or not × batching of neither, A, B or both. */
function comboFlags(t: number): { flags: number; bias: boolean } {
  const trans = t & 3;
  const batching = t >> 3; // 0 neither, 1 A, 2 B, 3 both
  return { flags: trans | (batching & 1 ? GEMM_A_BATCHED : 0) | (batching & 2 ? GEMM_B_BATCHED : 0), bias: ((t >> 2) & 1) === 1 };
}

function makeCase(m: number, n: number, k: number, t: number, i: number): GemmCase {
  const { flags, bias } = comboFlags(t);
  const batched = (flags & (GEMM_A_BATCHED | GEMM_B_BATCHED)) !== 0;
  return { m, n, k, flags, bias, batch: batched || i % 2 ? 3 : 1, shared: i % 3 === 0, pad: [0, 1, 5, 17][i % 4], gap: [0, 3, 0, 8][(i >> 2) % 4] };
}

interface Prepared {
  c: GemmCase;
  /** The arrays before the call: [a, b, bias, c] (the same one four times when shared). */
  templates: [Float32Array, Float32Array, Float32Array | null, Float32Array];
  aOff: number;
  bOff: number;
  biasOff: number;
  cOff: number;
  /** float64 op(A)·op(B) + bias for C's batch·m·n elements, and the tolerance of each. */
  ref: Float64Array;
  tol: Float64Array;
}

const SENTINEL = -777.25;
const U = 2 ** -24; // float32 unit roundoff

/**
 * Inputs padded with NaN (a read outside an operand poisons the result), C's range filled with NaN (a
 * kernel that reads C before writing it, or skips an element, is caught) and the rest of C with a
 * sentinel (a write outside C is caught).
 */
function prepare(c: GemmCase, seed: number): Prepared {
  const { batch, m, n, k, flags } = c;
  const needA = (flags & GEMM_A_BATCHED ? batch : 1) * m * k;
  const needB = (flags & GEMM_B_BATCHED ? batch : 1) * k * n;
  const needC = batch * m * n;
  const av = values(needA, seed);
  const bv = values(needB, seed + 1);
  const biasv = c.bias ? values(n, seed + 2) : null;
  let templates: Prepared['templates'];
  let aOff: number, bOff: number, biasOff = 0, cOff: number;
  if (c.shared) {
    // [pad] c [gap] a [gap] b [gap] bias [pad]: C first, so an overlap check that is off by one on
    // either side of a touching pair (gap 0) shows.
    cOff = c.pad;
    aOff = cOff + needC + c.gap;
    bOff = aOff + needA + c.gap;
    biasOff = bOff + needB + c.gap;
    const heap = new Float32Array(biasOff + (biasv ? n : 0) + c.pad).fill(NaN);
    heap.set(av, aOff);
    heap.set(bv, bOff);
    if (biasv) heap.set(biasv, biasOff);
    templates = [heap, heap, biasv ? heap : null, heap];
  } else {
    const padded = (v: Float32Array, off: number): Float32Array => {
      const out = new Float32Array(off + v.length + c.gap + 1).fill(NaN);
      out.set(v, off);
      return out;
    };
    aOff = c.pad;
    bOff = (c.pad * 3) % 7;
    biasOff = c.pad + 2;
    cOff = c.pad + 1;
    const cArr = new Float32Array(cOff + needC + c.gap + 2).fill(SENTINEL);
    cArr.fill(NaN, cOff, cOff + needC);
    templates = [padded(av, aOff), padded(bv, bOff), biasv ? padded(biasv, biasOff) : null, cArr];
  }
  // The reference, in float64 from the float32 inputs (their products are exact in float64).
  const ref = new Float64Array(needC);
  const tol = new Float64Array(needC);
  const opA = new Float64Array(m * k); // op(A) row-major m×k
  const opBt = new Float64Array(n * k); // op(B)ᵀ row-major n×k
  for (let e = 0; e < batch; e++) {
    const a0 = flags & GEMM_A_BATCHED ? e * m * k : 0;
    const b0 = flags & GEMM_B_BATCHED ? e * k * n : 0;
    for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) opA[i * k + p] = flags & GEMM_TRANS_A ? av[a0 + p * m + i] : av[a0 + i * k + p];
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) opBt[j * k + p] = flags & GEMM_TRANS_B ? bv[b0 + j * k + p] : bv[b0 + p * n + j];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = biasv ? biasv[j] : 0;
        let mag = Math.abs(s);
        for (let p = 0; p < k; p++) {
          const x = opA[i * k + p] * opBt[j * k + p];
          s += x;
          mag += Math.abs(x);
        }
        // Tolerance: float32 summation of k products and a bias, in any order (blocked by KC or not,
        // with or without FMA), is within (k + 1)·u·Σ|terms| of the exact sum, and the result's own
        // rounding adds u·|sum|: (k + 2)·u·(Σ_p |a_ip·b_pj| + |bias_j|), u = 2⁻²⁴. Exact for k = 0.
        ref[e * m * n + i * n + j] = s;
        tol[e * m * n + i * n + j] = (k + 2) * U * mag;
      }
    }
  }
  return { c, templates, aOff, bOff, biasOff, cOff, ref, tol };
}

/** Runs one prepared case on fresh copies; returns the first problem, or undefined. */
function runCase(kernels: NativeKernels, p: Prepared): string | undefined {
  const { c } = p;
  const copies = new Map<Float32Array, Float32Array>();
  const copy = (t: Float32Array): Float32Array => {
    let x = copies.get(t);
    if (!x) copies.set(t, (x = t.slice()));
    return x;
  };
  const [a, b, bias, out] = [copy(p.templates[0]), copy(p.templates[1]), p.templates[2] ? copy(p.templates[2]) : null, copy(p.templates[3])];
  kernels.gemm(a, p.aOff, b, p.bOff, out, p.cOff, bias, p.biasOff, c.batch, c.m, c.n, c.k, c.flags);
  const cEnd = p.cOff + c.batch * c.m * c.n;
  for (const [t, x] of copies) {
    for (let idx = 0; idx < x.length; idx++) {
      if (x === out && idx >= p.cOff && idx < cEnd) {
        const r = idx - p.cOff;
        const d = Math.abs(x[idx] - p.ref[r]);
        if (!(d <= p.tol[r])) {
          const e = Math.floor(r / (c.m * c.n));
          const i = Math.floor((r % (c.m * c.n)) / c.n);
          return `C[${e}][${i}][${r % c.n}] = ${x[idx]}, want ${p.ref[r]} ± ${p.tol[r].toExponential(2)}`;
        }
      } else if (!Object.is(x[idx], t[idx])) {
        const what = x === out ? (x === a ? 'the shared array' : 'c') : x === a ? 'a' : x === b ? 'b' : 'bias';
        return `${what}[${idx}] changed from ${t[idx]} to ${x[idx]} (outside C's ${p.cOff}..${cEnd - 1})`;
      }
    }
  }
  return undefined;
}

const SMALL = [1, 3, 7, 12, 13, 31, 32, 33];
const BIG = [100, 257, 300];

/** Every triple of small sizes (micro-tile edges: MR is 4, 6 or 12, NR 16 or 32), each with 4 of the 32 combinations. */
function edgeCases(): GemmCase[] {
  const out: GemmCase[] = [];
  let i = 0;
  for (const m of SMALL) for (const n of SMALL) for (const k of SMALL) {
    const t0 = (i * 5 + (i >> 7)) % 32; // not in lockstep with the sizes; every combination 64 times
    for (const dt of [0, 9, 18, 27]) out.push(makeCase(m, n, k, (t0 + dt) % 32, out.length));
    i++;
  }
  return out;
}

/** Sizes past the blocks: k > KC (256), m > MC (128 or 144), n > NC (2048), and each big size on each side. */
function blockCases(): GemmCase[] {
  const out: GemmCase[] = [];
  let i = 0;
  const others = [1, 7, 13, 33];
  for (const big of BIG) {
    for (const x of others) {
      for (const y of others) {
        for (const [m, n, k] of [[big, x, y], [x, big, y], [x, y, big]]) out.push(makeCase(m, n, k, i++ % 32, i));
      }
    }
  }
  for (const [m, n, k] of [[300, 257, 7], [257, 13, 300], [7, 300, 257], [100, 100, 100], [145, 33, 257]]) {
    for (let t = 0; t < 32; t += 5) out.push(makeCase(m, n, k, t, i++));
  }
  // All four transposes, no batch, on the largest square-ish product (crosses MC and KC at once).
  for (let t = 0; t < 4; t++) out.push({ ...makeCase(300, 257, 300, t | 4, i++), batch: 1 });
  // n > NC = 2048: the one product whose columns take two NC blocks; then with k > KC too, and batched.
  out.push({ m: 5, n: 2100, k: 20, flags: 0, bias: true, batch: 1, shared: false, pad: 3, gap: 1 });
  out.push({ m: 150, n: 2100, k: 260, flags: GEMM_TRANS_B, bias: true, batch: 1, shared: true, pad: 1, gap: 0 });
  out.push({ m: 3, n: 2049, k: 33, flags: GEMM_TRANS_A | GEMM_B_BATCHED, bias: false, batch: 3, shared: false, pad: 0, gap: 0 });
  return out;
}

/** Prepared once, shared by every ISA. */
const preparedCache = new Map<string, Prepared[]>();
function preparedSet(name: string, make: () => GemmCase[]): Prepared[] {
  let p = preparedCache.get(name);
  if (!p) preparedCache.set(name, (p = make().map((c, i) => prepare(c, 1000 + 7 * i))));
  return p;
}

function runAll(kernels: NativeKernels, set: Prepared[], label: string): void {
  const failures: string[] = [];
  for (const p of set) {
    const problem = runCase(kernels, p);
    if (problem) failures.push(`${describeCase(p.c)}: ${problem}`);
  }
  assert.equal(failures.length, 0, `${label}: ${failures.length} of ${set.length} cases wrong, e.g.\n  ${failures.slice(0, 8).join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------------

describe('perf: native kernels', function () {
  this.timeout(60_000);

  it('are built and load on linux/darwin x64 and arm64', function () {
    if (!BUILT_HERE) {
      console.log(`      (no native build recipe for ${process.platform}-${process.arch}: ${load.note ?? 'loaded anyway'})`);
      this.skip();
    }
    assert.ok(nk, `the native kernels did not load (the build broke? run \`node native/build.mjs --require\`): ${load.note}`);
    assert.equal(typeof nk.gemm, 'function');
    assert.equal(nk.version, 1);
    const isas = nk.isas();
    assert.ok(isas.includes('generic'), `isas() = ${JSON.stringify(isas)} lacks "generic"`);
    assert.ok(isas.includes(nk.isa()), `isa() = ${nk.isa()} is not in isas() = ${JSON.stringify(isas)}`);
  });

  describe('gemm against a float64 reference', function () {
    let original: string | undefined;
    before(function () {
      if (!nk) this.skip();
      original = nk.isa();
    });
    afterEach(function () {
      if (nk && original) nk.selectIsa(original);
    });

    // Every ISA the CPU offers, each selected in turn (isas() is known once the addon has loaded).
    for (const isa of nk?.isas() ?? ['(none loaded)']) {
      it(`${isa}: every m, n, k ∈ {${SMALL.join(', ')}}, 4 of the 32 transpose × bias × batching combinations each, offsets, a shared array`, function () {
        if (!nk) this.skip();
        assert.equal(nk.selectIsa(isa), isa);
        assert.equal(nk.isa(), isa);
        runAll(nk, preparedSet('edge', edgeCases), isa);
      });

      it(`${isa}: sizes that cross the KC, MC and NC blocks (${BIG.join(', ')}, n = 2100, k = 260)`, function () {
        if (!nk) this.skip();
        nk.selectIsa(isa);
        runAll(nk, preparedSet('block', blockCases), isa);
      });

      it(`${isa}: k = 0 gives C = bias (or 0); m = 0, n = 0 or batch = 0 write nothing and do not throw`, function () {
        if (!nk) this.skip();
        nk.selectIsa(isa);
        const empty = new Float32Array(0);
        const bias = values(5, 3);
        for (const withBias of [true, false]) {
          const c = new Float32Array(2 + 3 * 4 * 5 + 2).fill(NaN);
          nk.gemm(empty, 0, empty, 0, c, 2, withBias ? bias : null, 0, 3, 4, 5, 0, GEMM_TRANS_A | GEMM_A_BATCHED | GEMM_B_BATCHED);
          for (let e = 0; e < 3; e++) {
            for (let i = 0; i < 4; i++) {
              for (let j = 0; j < 5; j++) assert.equal(c[2 + e * 20 + i * 5 + j], withBias ? bias[j] : 0, `k = 0, bias ${withBias}: C[${e}][${i}][${j}]`);
            }
          }
          for (const idx of [0, 1, 62, 63]) assert.ok(Number.isNaN(c[idx]), `k = 0 wrote c[${idx}] outside C`);
        }
        for (const [m, n, k, batch] of [[0, 5, 4, 2], [3, 0, 4, 2], [0, 0, 0, 1], [3, 5, 4, 0]]) {
          const a = values(2 * 3 * 4, 5);
          const b = values(2 * 4 * 5, 6);
          const c = new Float32Array(8).fill(SENTINEL);
          nk.gemm(a, 0, b, 0, c, 0, bias, 0, batch, m, n, k, GEMM_A_BATCHED | GEMM_B_BATCHED);
          assert.ok(c.every((v) => v === SENTINEL), `m=${m} n=${n} k=${k} batch=${batch} wrote into c`);
        }
      });
    }

    it('results do not depend on the thread count (1, 2, 3; every ISA), where the addon has threads()/setThreads(n)', function () {
      if (!nk) this.skip();
      const t = nk as unknown as Partial<Threaded>;
      if (typeof t.threads !== 'function' || typeof t.setThreads !== 'function') this.skip(); // not in this build of the addon
      const threaded = t as Threaded;
      const before = threaded.threads();
      // Large enough to be split: the addon gives a thread at least LL_MIN_FLOPS_PER_THREAD (8 MFLOP),
      // so each case below but the last is ≥ 24 MFLOP (three threads).
      const cases: GemmCase[] = [
        { m: 300, n: 257, k: 300, flags: 0, bias: true, batch: 1, shared: false, pad: 1, gap: 0 }, // split by rows
        { m: 33, n: 2100, k: 300, flags: GEMM_TRANS_B, bias: true, batch: 1, shared: false, pad: 2, gap: 1 }, // by columns, bias offset per block
        { m: 257, n: 300, k: 160, flags: GEMM_TRANS_A | GEMM_TRANS_B, bias: false, batch: 1, shared: true, pad: 0, gap: 0 }, // by columns, Bᵀ
        { m: 300, n: 64, k: 640, flags: GEMM_TRANS_A, bias: true, batch: 1, shared: false, pad: 3, gap: 0 }, // by rows, Aᵀ
        { m: 500, n: 70, k: 1100, flags: GEMM_TRANS_B, bias: true, batch: 1, shared: false, pad: 1, gap: 0 }, // by rows, Bᵀ, 5 shared blocks of B
        { m: 150, n: 210, k: 130, flags: GEMM_TRANS_B | GEMM_A_BATCHED, bias: true, batch: 3, shared: false, pad: 5, gap: 3 }, // by batch entry
        { m: 13, n: 33, k: 7, flags: GEMM_A_BATCHED | GEMM_B_BATCHED, bias: false, batch: 3, shared: false, pad: 0, gap: 0 }, // too small to split
      ];
      const prepared = cases.map((c, i) => prepare(c, 50 + i));
      const original = nk.isa();
      try {
        assert.throws(() => threaded.setThreads(0), RangeError, 'setThreads(0)');
        for (const isa of nk.isas()) {
          nk.selectIsa(isa);
          for (const p of prepared) {
            const { c } = p;
            const results: Float32Array[] = [];
            for (const threads of [1, 2, 3]) {
              threaded.setThreads(threads);
              assert.equal(threaded.threads(), threads);
              const out = p.templates[3].slice();
              const input = (x: Float32Array | null): Float32Array | null => (x && c.shared ? out : x);
              nk.gemm(input(p.templates[0])!, p.aOff, input(p.templates[1])!, p.bOff, out, p.cOff, input(p.templates[2]), p.biasOff, c.batch, c.m, c.n, c.k, c.flags);
              results.push(out);
              // Each thread count also against the reference, so "all equally wrong" cannot pass.
              const problem = runCase(nk, p);
              assert.equal(problem, undefined, `${isa}, ${threads} thread(s), ${describeCase(c)}: ${problem}`);
            }
            // Expected bitwise equal (threads split rows, columns or batch entries, never k); allowed 1e-6 relative.
            for (const [r, res] of results.entries()) {
              for (let idx = 0; idx < res.length; idx++) {
                const x = results[0][idx];
                const y = res[idx];
                assert.ok(Object.is(x, y) || Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(x)), `${isa}, ${describeCase(c)}: c[${idx}] is ${x} with 1 thread, ${y} with ${r + 1}`);
              }
            }
          }
        }
      } finally {
        threaded.setThreads(before);
        nk.selectIsa(original);
      }
    });
  });

  describe('gemm argument errors', function () {
    before(function () {
      if (!nk) this.skip();
    });

    const ok = (): unknown[] => {
      const a = values(2 * 3, 1); // m=2, k=3
      const b = values(3 * 4, 2); // k=3, n=4
      return [a, 0, b, 0, new Float32Array(8), 0, values(4, 3), 0, 1, 2, 4, 3, 0];
    };
    const call = (args: unknown[]): void => (nk!.gemm as unknown as LooseGemm)(...args);
    const withArg = (i: number, v: unknown): unknown[] => {
      const args = ok();
      args[i] = v;
      return args;
    };

    it('the well-formed call used below succeeds (so each failure is the one argument changed)', function () {
      const args = ok();
      call(args);
      const c = args[4] as Float32Array;
      const a = args[0] as Float32Array;
      const b = args[2] as Float32Array;
      const bias = args[6] as Float32Array;
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 4; j++) {
          let s = bias[j];
          for (let p = 0; p < 3; p++) s += a[i * 3 + p] * b[p * 4 + j];
          assert.ok(Math.abs(c[i * 4 + j] - s) < 1e-6, `C[${i}][${j}]`);
        }
      }
    });

    it('a non-Float32Array operand: TypeError naming it', function () {
      const bad: [number, string, unknown][] = [
        [0, 'a', [1, 2, 3, 4, 5, 6]],
        [0, 'a', new Float64Array(6)],
        [2, 'b', new Int32Array(12)],
        [4, 'c', new Uint8Array(32)],
        [4, 'c', null],
        [6, 'bias', 1.5],
        [6, 'bias', new Float64Array(4)],
      ];
      for (const [i, name, v] of bad) {
        assert.throws(() => call(withArg(i, v)), (e: unknown) => e instanceof TypeError && e.message.includes(`${name} must be a Float32Array`), `${name} = ${Object.prototype.toString.call(v)}`);
      }
      // bias may be null or undefined: no bias.
      call(withArg(6, null));
      call(withArg(6, undefined));
    });

    it('an empty or detached bias: RangeError naming bias (not taken as "no bias"); C untouched', function () {
      const detached = values(4, 3);
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      assert.equal(detached.length, 0, 'structuredClone with transfer detaches the buffer');
      for (const [what, bias] of [['empty', new Float32Array(0)], ['detached', detached]] as const) {
        const args = withArg(6, bias);
        const c = args[4] as Float32Array;
        c.fill(7);
        assert.throws(() => call(args), (e: unknown) => e instanceof RangeError && /bias needs 4 floats from offset 0 but has 0/.test(e.message), what);
        assert.ok(c.every((x) => x === 7), `${what}: C was written`);
      }
    });

    it('a too-short array or too-large offset: RangeError naming the argument and the floats it needs; C untouched', function () {
      const bad: [number, unknown, RegExp][] = [
        [0, values(5, 1), /a needs 6 floats from offset 0 but has 5/],
        [1, 1, /a needs 6 floats from offset 1 but has 6/],
        [2, values(11, 1), /b needs 12 floats from offset 0 but has 11/],
        [3, 12, /b needs 12 floats from offset 12 but has 12/],
        [4, new Float32Array(7), /c needs 8 floats from offset 0 but has 7/],
        [5, 1, /c needs 8 floats from offset 1 but has 8/],
        [6, values(3, 1), /bias needs 4 floats from offset 0 but has 3/],
        [7, 2, /bias needs 4 floats from offset 2 but has 4/],
      ];
      for (const [i, v, re] of bad) {
        const args = withArg(i, v);
        const c = args[4] as Float32Array;
        c.fill(SENTINEL);
        assert.throws(() => call(args), (e: unknown) => e instanceof RangeError && re.test(e.message), `argument ${i} = ${String(v)}: want ${re}`);
        assert.ok(c.every((x) => x === SENTINEL), `argument ${i}: c was written before the error`);
      }
      // Batched operands need batch times as much: 3 batched A of 2×3 is 18 floats.
      const args = ok();
      args[8] = 3;
      args[4] = new Float32Array(24);
      args[12] = GEMM_A_BATCHED;
      assert.throws(() => call(args), (e: unknown) => e instanceof RangeError && /a needs 18 floats/.test(e.message));
      // Sizes, offsets and flags must be integers in range.
      for (const [i, v, name] of [[1, -1, 'aOff'], [9, 2.5, 'm'], [11, Number.NaN, 'k'], [8, 2 ** 32, 'batch']] as [number, number, string][]) {
        assert.throws(() => call(withArg(i, v)), (e: unknown) => e instanceof RangeError && e.message.includes(`${name} must be an integer`), `${name} = ${v}`);
      }
      assert.throws(() => call(withArg(12, 16)), RangeError, 'flags 16');
    });

    it('C overlapping an input (same array or another view of its memory): RangeError "c overlaps an input"', function () {
      const heap = values(64, 9);
      // m=2, k=3, n=4: A 6 floats, B 12, C 8, bias 4.
      const overlapping: [string, unknown[]][] = [
        ['c on a, last element', [heap, 0, heap, 10, heap, 5, null, 0, 1, 2, 4, 3, 0]],
        ['c on a, first element', [heap, 12, heap, 30, heap, 5, null, 0, 1, 2, 4, 3, 0]],
        ['c on b', [heap, 0, heap, 10, heap, 21, null, 0, 1, 2, 4, 3, 0]],
        ['c on bias', [heap, 0, heap, 10, heap, 30, heap, 37, 1, 2, 4, 3, 0]],
        ['c = a exactly', [heap, 40, heap, 10, heap, 40, null, 0, 1, 2, 2, 3, 0]], // m=2, n=2, k=3: A 6, C 4
        ['c on a through a subarray view', [heap.subarray(4), 0, heap, 20, heap.subarray(8), 0, null, 0, 1, 2, 4, 3, 0]],
        ['c on a batched A', [heap, 0, heap, 40, heap, 17, null, 0, 3, 2, 4, 3, GEMM_A_BATCHED]], // A 18 floats: 0..17
      ];
      for (const [what, args] of overlapping) {
        const before = heap.slice();
        assert.throws(() => call(args), (e: unknown) => e instanceof RangeError && e.message.includes('c overlaps an input'), what);
        assert.deepEqual(heap, before, `${what}: memory changed`);
      }
      // Touching but disjoint ranges in one array are fine: C right after A, right before B.
      const h = values(6 + 8 + 12, 10);
      const a = h.slice(0, 6);
      const b = h.slice(14, 26);
      call([h, 0, h, 14, h, 6, null, 0, 1, 2, 4, 3, 0]);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 4; j++) {
          let s = 0;
          for (let p = 0; p < 3; p++) s += a[i * 3 + p] * b[p * 4 + j];
          assert.ok(Math.abs(h[6 + i * 4 + j] - s) < 1e-6, `touching ranges: C[${i}][${j}]`);
        }
      }
    });

    it('the wrong number of arguments: TypeError', function () {
      assert.throws(() => call(ok().slice(0, 12)), (e: unknown) => e instanceof TypeError && /expected 13 arguments/.test(e.message), '12 arguments');
      assert.throws(() => call([...ok(), 0]), (e: unknown) => e instanceof TypeError && /expected 13 arguments/.test(e.message), '14 arguments');
      assert.throws(() => call([]), TypeError, 'no arguments');
    });

    it('selectIsa of an unknown name: RangeError, and the ISA in use is unchanged', function () {
      const isa = nk!.isa();
      assert.throws(() => nk!.selectIsa('nope'), (e: unknown) => e instanceof RangeError && /"nope" is not available/.test(e.message));
      assert.throws(() => (nk!.selectIsa as unknown as (...a: unknown[]) => string)(), TypeError);
      assert.equal(nk!.isa(), isa);
    });
  });

  describe('through tfjs on the wasm backend (registerWasmFastKernels(native))', function () {
    let previousBackend: string | undefined;
    let hadKernels = false;
    let hadNative: NativeKernels | undefined;
    let restore: (() => void) | undefined;
    // The native kernels with their calls counted: products (BatchMatMul and _FusedMatMul) are gemm's.
    const counted = nk ? countingNative(nk) : undefined;
    const gemmCalls = (): number => counted!.calls.gemm ?? 0;

    before(async function () {
      if (!nk) this.skip();
      previousBackend = tf.getBackend();
      setWasmPaths(WASM_DIR + '/');
      assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to initialise');
      // An earlier file may have left the overrides installed (perhaps without native kernels):
      // registering again would be a no-op, so take them down, put ours up, and reinstate theirs after.
      hadKernels = wasmFastKernelsActive();
      hadNative = wasmNativeKernels();
      if (hadKernels) registerWasmFastKernels()();
      restore = registerWasmFastKernels(counted!.kernels);
      assert.equal(wasmNativeKernels(), counted!.kernels);
    });
    after(async function () {
      restore?.();
      restore = undefined;
      if (hadKernels) registerWasmFastKernels(hadNative);
      if (previousBackend) await tf.setBackend(previousBackend);
    });

    /** f on the cpu backend, then on wasm with the native kernels; checks that they ran and leaked nothing. */
    async function compare(label: string, f: () => Float32Array[], expectNative: boolean): Promise<void> {
      assert.ok(await tf.setBackend('cpu'));
      const ref = tf.tidy(f);
      assert.ok(await tf.setBackend('wasm'));
      const be = tf.backend() as unknown as { numDataIds(): number };
      const tensors = tf.memory().numTensors;
      const ids = be.numDataIds();
      const before = gemmCalls();
      const got = tf.tidy(f);
      const ran = gemmCalls() - before;
      assert.equal(tf.memory().numTensors, tensors, `${label}: tensors leaked`);
      assert.equal(be.numDataIds(), ids, `${label}: wasm buffers leaked`);
      if (expectNative) assert.ok(ran >= 1, `${label}: the native kernels did not run`);
      assert.equal(got.length, ref.length);
      for (let i = 0; i < ref.length; i++) {
        const d = maxRelDiff(got[i], ref[i]);
        assert.ok(d < 1e-4, `${label}: output ${i} differs from the cpu backend by ${d} (relative)`);
      }
    }

    const shapes: { a: number[]; b: number[]; what: string }[] = [
      { a: [37, 300], b: [300, 70], what: '2-D, k > KC' },
      { a: [3, 13, 40], b: [3, 40, 33], what: '3-D batched' },
      { a: [2, 3, 7, 5], b: [2, 3, 5, 9], what: '4-D batched' },
      { a: [4, 6, 20], b: [20, 17], what: 'B [k, n] broadcast over a batch of 4' },
      { a: [4, 6, 20], b: [1, 20, 17], what: 'B [1, k, n] broadcast' },
      { a: [1, 6, 20], b: [4, 20, 17], what: 'A [1, m, k] broadcast' },
    ];
    for (const s of shapes) {
      for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
        const aShape = ta ? [...s.a.slice(0, -2), s.a[s.a.length - 1], s.a[s.a.length - 2]] : s.a;
        const bShape = tb ? [...s.b.slice(0, -2), s.b[s.b.length - 1], s.b[s.b.length - 2]] : s.b;
        it(`matMul ${JSON.stringify(aShape)}${ta ? 'ᵀ' : ''} · ${JSON.stringify(bShape)}${tb ? 'ᵀ' : ''} (${s.what}) equals the cpu backend`, async function () {
          const av = values(aShape.reduce((x, y) => x * y), 11);
          const bv = values(bShape.reduce((x, y) => x * y), 12);
          let shape: number[] = [];
          await compare('matMul', () => {
            const r = tf.matMul(tf.tensor(av, aShape), tf.tensor(bv, bShape), ta, tb);
            shape = r.shape;
            return [r.dataSync() as Float32Array];
          }, true);
          const m = s.a[s.a.length - 2];
          const n = s.b[s.b.length - 1];
          assert.deepEqual(shape, [...tf.broadcast_util.assertAndGetBroadcastShape(s.a.slice(0, -2), s.b.slice(0, -2)), m, n]);
        });
      }
    }

    it('fused.matMul with a bias of n goes native; with relu falls back to tfjs; both equal the cpu backend', async function () {
      const xv = values(3 * 9 * 48, 21);
      const wv = values(40 * 48, 22);
      const biasv = values(40, 23);
      await compare('fused x·Wᵀ + b', () => [
        tf.fused.matMul({ a: tf.tensor2d(xv.subarray(0, 9 * 48), [9, 48]), b: tf.tensor2d(wv, [40, 48]), transposeB: true, bias: tf.tensor1d(biasv) }).dataSync() as Float32Array,
      ], true);
      await compare('fused batched x·W + b', () => [
        tf.fused.matMul({ a: tf.tensor3d(xv, [3, 9, 48]), b: tf.tensor2d(wv, [48, 40]), bias: tf.tensor1d(biasv) }).dataSync() as Float32Array,
      ], true);
      await compare('fused xᵀ·W + b, bias [1, n], linear', () => [
        tf.fused.matMul({ a: tf.tensor2d(xv.subarray(0, 48 * 9), [48, 9]), b: tf.tensor2d(wv, [48, 40]), transposeA: true, bias: tf.tensor2d(biasv, [1, 40]), activation: 'linear' }).dataSync() as Float32Array,
      ], true);
      // Not transposeB here: tfjs-backend-wasm 4.22's own _FusedMatMul with transposeB and a bias adds
      // bias[n - 1] to every row after the first (any activation); the native path above gets it right.
      await compare('fused relu(x·W + b)', () => [
        tf.fused.matMul({ a: tf.tensor2d(xv.subarray(0, 9 * 48), [9, 48]), b: tf.tensor2d(wv, [48, 40]), bias: tf.tensor1d(biasv), activation: 'relu' }).dataSync() as Float32Array,
      ], false);
    });

    it('gradients of matMul-based losses (batched Bᵀ, batched Aᵀ, fused x·Wᵀ + b) equal the cpu backend', async function () {
      const xv = values(4 * 6 * 40, 31);
      const wv = values(9 * 40, 32);
      const bv = values(9, 33);
      await compare('grads', () => {
        const x = tf.tensor3d(xv, [4, 6, 40]);
        const w = tf.tensor2d(wv, [9, 40]);
        const bias = tf.tensor1d(bv);
        const y = tf.tensor3d(values(4 * 9 * 40, 34), [4, 9, 40]);
        const w4 = tf.tensor3d(values(4 * 9 * 40, 35), [4, 9, 40]);
        // (tfjs's BatchMatMul gradient does not reduce a broadcast operand on any backend: batched only.)
        const g1 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(a, b, false, true))))([x, w4]); // batched, Bᵀ
        const g2 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.tanh(tf.matMul(a, b, true, false))))([tf.transpose(x, [0, 2, 1]), tf.transpose(y, [0, 2, 1])]); // batched, Aᵀ
        const g3 = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.square(tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, transposeB: true, bias: c }))))([tf.reshape(x, [24, 40]), w, bias]);
        return [...g1, ...g2, ...g3].map((t) => t.dataSync() as Float32Array);
      }, true);
    });

    it('a LoRA training session (attention-adaptation, q/k/v) gives the cpu backend\'s losses within 1e-4', async function () {
      const cfg: ExperimentConfig = attnConfig({ model: { numHeads: 2 }, training: { steps: 12, logEvery: 1, evalEvery: 0, checkpointEvery: 0 } });
      const losses = (): Promise<number[]> => sessionLosses(cfg);
      // tfjs's IS_TEST per-kernel leak check miscounts customGrad kernels on wasm (see engineParity.test.ts).
      const isTest = tf.env().getBool('IS_TEST');
      tf.env().set('IS_TEST', false);
      try {
        await initBackend({ prefer: 'cpu' });
        const onCpu = await losses();
        const r = await initBackend({ prefer: 'wasm', wasmDir: WASM_DIR, native: counted!.kernels });
        assert.equal(r.name, 'wasm', r.notes.join('; '));
        assert.match(r.kernels ?? '', /^native /);
        assert.equal(wasmNativeKernels(), counted!.kernels, 'our overrides (with the native kernels) are the ones installed');
        const before = gemmCalls();
        const tensors = tf.memory().numTensors;
        const onNative = await losses();
        assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
        assert.ok(gemmCalls() - before > 12, `the native kernels ran only ${gemmCalls() - before} times`);
        assert.equal(onNative.length, onCpu.length);
        assert.ok(onCpu.length >= 12);
        for (let i = 0; i < onCpu.length; i++) {
          assert.ok(Number.isFinite(onNative[i]), `step ${i}: loss ${onNative[i]}`);
          const d = Math.abs(onNative[i] - onCpu[i]) / Math.max(1e-6, Math.abs(onCpu[i]));
          assert.ok(d < 1e-4, `step ${i}: loss ${onNative[i]} with native kernels, ${onCpu[i]} on cpu (relative ${d})`);
        }
      } finally {
        tf.env().set('IS_TEST', isTest);
      }
    });
  });
});
