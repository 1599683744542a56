// The native elementwise kernels (native/src/elementwise.c, built once per instruction set): exp
// against float64 Math.exp for every instruction set this CPU runs, its special values and argument
// checks, and the wasm Exp override through tfjs (softmax, logSoftmax and their gradients) against
// the cpu backend; the fused GELU against a float64 evaluation for every instruction set, and as geluTanh's
// kernels against the op-by-op form on the cpu backend.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastKernels, wasmFastKernelsActive, wasmNativeKernels } from '../../../src/engine/kernels/wasmFastKernels';
import type { NativeKernels } from '../../../src/engine/kernels/nativeKernels';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { geluTanh } from '../../../src/engine/kernels/gelu';
import { layerNorm, rmsNorm } from '../../../src/engine/kernels/norm';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { idsTensor } from '../../../src/models/causalLm';
import { PEFT_FIXTURES, maxAbsDiff, readReference } from '../interop/helpers';
import { callsOf, countingNative } from './kernelSpies';

const WASM_DIR = path.resolve(__dirname, '../../../node_modules/@tensorflow/tfjs-backend-wasm/dist');
const F32_EPS = 2 ** -23;
const MIN_SUBNORMAL = 2 ** -149;

/** Error of y against the exact e^x, in units of the last place of the float32 result. */
function ulpError(y: number, x: number): number {
  const exact = Math.exp(x);
  const ulp = Math.max(Math.abs(Math.fround(exact)) * F32_EPS, MIN_SUBNORMAL);
  return Math.abs(y - exact) / ulp;
}

describe('perf: native exp, GELU and norms', function () {
  let nk: NativeKernels;
  let isa0: string;

  before(function () {
    const load = loadNativeKernels({});
    if (!load.kernels) {
      if ((process.platform === 'linux' || process.platform === 'darwin') && (process.arch === 'x64' || process.arch === 'arm64')) {
        assert.fail(`the native kernels should be built on ${process.platform}-${process.arch}: ${load.note}`);
      }
      this.skip();
    }
    nk = load.kernels!;
    isa0 = nk.isa();
  });
  after(function () {
    if (nk) nk.selectIsa(isa0);
  });

  it('is within 1 ulp of float64 exp from -104 to 88.7 on every instruction set (2^20 points each)', function () {
    const n = 1 << 20;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = -104 + (192.7 * i) / n;
    for (const isa of nk.isas()) {
      nk.selectIsa(isa);
      const y = new Float32Array(n);
      nk.exp(x, 0, y, 0, n);
      let worst = 0;
      let at = 0;
      for (let i = 0; i < n; i++) {
        const e = ulpError(y[i], x[i]);
        if (e > worst) {
          worst = e;
          at = x[i];
        }
      }
      assert.ok(worst <= 1, `${isa}: ${worst.toFixed(2)} ulp at x = ${at}`);
    }
  });

  it('keeps NaN and the infinities, overflows to +∞ and underflows to 0 as Math.exp rounded to float32 does', function () {
    const x = new Float32Array([NaN, Infinity, -Infinity, 0, -0, 88.72, 88.73, 1000, -103.9, -104.5, -1000, 1e-30]);
    for (const isa of nk.isas()) {
      nk.selectIsa(isa);
      const y = new Float32Array(x.length);
      nk.exp(x, 0, y, 0, x.length);
      assert.ok(Number.isNaN(y[0]), `${isa}: exp(NaN) = ${y[0]}`);
      const want = Array.from(x.slice(1), (v) => Math.fround(Math.exp(v)));
      const got = Array.from(y.slice(1));
      for (let i = 0; i < want.length; i++) {
        const wi = want[i];
        if (!Number.isFinite(wi) || wi === 0) assert.equal(got[i], wi, `${isa}: exp(${x[i + 1]})`);
        else assert.ok(ulpError(got[i], x[i + 1]) <= 1, `${isa}: exp(${x[i + 1]}) = ${got[i]}, want ${wi}`);
      }
    }
  });

  it('GELU (tanh form) and its gradient match a float64 evaluation on every instruction set, tails and offsets included', function () {
    // Float64 reference of the formula the kernels document: z = 2c·(x + k·x³), s = σ(z), y = x·s,
    // dx = dy·(s + x·s·(1 − s)·2c·(1 + 3k·x²)), c = √(2/π), k = 0.044715.
    const C2 = 2 * Math.sqrt(2 / Math.PI);
    const K = 0.044715;
    const n = 1003; // not a multiple of any vector width: every ISA's tail runs too
    const xs = Float32Array.from({ length: n }, (_, i) => (i - 501) / 40); // [-12.5, 12.55]
    xs.set([0, -0, 1e-20, -1e-20, 30, -30, 88, -88, Math.fround(0.5)], 0);
    const dys = Float32Array.from({ length: n }, (_, i) => Math.cos(0.37 * i) * 2);
    const ref = Array.from(xs, (x, i) => {
      const sg = 1 / (1 + Math.exp(-C2 * (x + K * x ** 3)));
      return { y: x * sg, s: sg, dx: dys[i] * (sg + x * sg * (1 - sg) * C2 * (1 + 3 * K * x * x)) };
    });
    const isas = nk.isas();
    assert.ok(isas.includes('generic'), `isas() = ${JSON.stringify(isas)}`);
    const original = nk.isa();
    try {
      for (const isa of isas) {
        assert.equal(nk.selectIsa(isa), isa);
        // Inputs and outputs at different offsets, with guard values around the written range.
        const x = new Float32Array(n + 3).fill(7);
        x.set(xs, 3);
        const y = new Float32Array(n + 4).fill(-5);
        const sg = new Float32Array(n + 2).fill(-5);
        nk.geluTanh(x, 3, y, 2, sg, 1, n);
        const dy = new Float32Array(n + 1).fill(9);
        dy.set(dys, 1);
        const dx = new Float32Array(n + 5).fill(-5);
        nk.geluTanhGrad(dy, 1, x, 3, sg, 1, dx, 4, n);
        assert.deepEqual([y[0], y[1], y[n + 2], y[n + 3], sg[0], sg[n + 1], dx[3]], [-5, -5, -5, -5, -5, -5, -5], `${isa}: wrote outside its range`);
        for (let i = 0; i < n; i++) {
          const r = ref[i];
          const at = `${isa}, x = ${xs[i]}`;
          assert.ok(Math.abs(y[2 + i] - r.y) <= 1e-6 * Math.max(1, Math.abs(r.y)), `${at}: gelu ${y[2 + i]}, float64 ${r.y}`);
          assert.ok(Math.abs(sg[1 + i] - r.s) <= 1e-6, `${at}: σ(z) ${sg[1 + i]}, float64 ${r.s}`);
          assert.ok(Math.abs(dx[4 + i] - r.dx) <= 1e-5 * Math.max(1, Math.abs(r.dx)), `${at}: gelu' ${dx[4 + i]}, float64 ${r.dx}`);
        }
        assert.ok(Object.is(y[2], 0) && Object.is(y[3], -0), `${isa}: gelu(±0) = ${y[2]}, ${y[3]}`);
        const nan = new Float32Array(2);
        nk.geluTanh(new Float32Array([NaN, 1]), 0, nan, 0, new Float32Array(2), 0, 2);
        assert.ok(Number.isNaN(nan[0]), `${isa}: gelu(NaN) = ${nan[0]}`);
      }
    } finally {
      nk.selectIsa(original);
    }
  });

  it('works in place and at offsets, and refuses bad arguments naming them', function () {
    const buf = new Float32Array([9, 0, 1, 2, 9]);
    nk.exp(buf, 1, buf, 1, 3);
    assert.deepEqual(Array.from(buf), [9, 1, Math.fround(Math.E), Math.fround(Math.exp(2)), 9]);
    const big = new Float32Array(3000).fill(1);
    nk.exp(big, 0, big, 0, 3000); // in place across the 1024-element staging chunks
    assert.ok(big.every((v) => v === Math.fround(Math.E)));
    const out = new Float32Array(4);
    assert.throws(() => nk.exp(new Float32Array(2), 0, out, 0, 3), (e: Error) => e instanceof RangeError && /x needs 3 floats from offset 0 but has 2/.test(e.message));
    assert.throws(() => nk.exp(new Float32Array(4), 0, out, 2, 3), (e: Error) => e instanceof RangeError && /out needs 3 floats from offset 2/.test(e.message));
    assert.throws(() => nk.exp(buf, 0, buf, 1, 3), (e: Error) => e instanceof RangeError && /out partly overlaps x/.test(e.message));
    assert.throws(() => nk.exp(new Float64Array(4) as unknown as Float32Array, 0, out, 0, 4), (e: Error) => e instanceof TypeError && /x must be a Float32Array/.test(e.message));
    assert.throws(() => nk.exp(out, -1, out, 0, 1), (e: Error) => e instanceof RangeError && /xOff must be an integer/.test(e.message));
  });

  describe('as wasm kernels through tfjs (Exp, GELU, norms)', function () {
    let previous: string;
    let restore: (() => void) | undefined;
    let before0: NativeKernels | undefined;
    let wasActive = false;
    /** Calls of the native kernels (by method) made through the overrides. */
    let calls: Record<string, number> = {};
    const nativeExp = (): number => callsOf(calls, 'exp');
    const nativeGelu = (): number => callsOf(calls, 'geluTanh', 'geluTanhGrad');
    const nativeNorm = (): number => callsOf(calls, 'norm', 'normGrad');

    before(async function () {
      previous = tf.getBackend();
      setWasmPaths(WASM_DIR + '/');
      assert.ok(await tf.setBackend('wasm'), 'wasm backend failed to initialise');
      wasActive = wasmFastKernelsActive();
      before0 = wasmNativeKernels();
      const counted = countingNative(nk);
      calls = counted.calls;
      restore = registerWasmFastKernels(counted.kernels);
    });
    after(async function () {
      // Leave the kernels as found: re-registering with the previous native kernels (or restoring).
      if (wasActive) registerWasmFastKernels(before0);
      else restore?.();
      if (previous) await tf.setBackend(previous);
    });

    async function onBoth<T extends tf.Tensor | tf.Tensor[]>(f: () => T): Promise<[Float32Array[], Float32Array[]]> {
      const run = async (name: string): Promise<Float32Array[]> => {
        assert.ok(await tf.setBackend(name));
        const out = tf.tidy(f);
        const list = Array.isArray(out) ? out : [out];
        const data = await Promise.all(list.map(async (t) => (await t.data()) as Float32Array));
        tf.dispose(list);
        return data;
      };
      const w = await run('wasm');
      const c = await run('cpu');
      assert.ok(await tf.setBackend('wasm'));
      return [w, c];
    }

    it('gives softmax, logSoftmax and their gradients of the cpu backend (1e-6 relative)', async function () {
      const n0 = nativeExp();
      const vals = Float32Array.from({ length: 64 * 301 }, (_, i) => Math.sin(i * 0.37) * 12);
      const [w, c] = await onBoth(() => {
        const x = tf.tensor2d(vals, [64, 301]);
        const sm = tf.softmax(x);
        const lsm = tf.logSoftmax(x);
        const ex = tf.exp(x);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.logSoftmax(t), tf.sin(t))))(x);
        return [sm, lsm, ex, g];
      });
      for (let i = 0; i < w.length; i++) {
        let scale = 1e-30;
        let d = 0;
        for (let j = 0; j < c[i].length; j++) {
          scale = Math.max(scale, Math.abs(c[i][j]));
          d = Math.max(d, Math.abs(w[i][j] - c[i][j]));
        }
        assert.ok(d / scale < 1e-6, `output ${i}: max |wasm+native − cpu| / max |cpu| = ${(d / scale).toExponential(2)}`);
      }
      assert.ok(nativeExp() > n0, 'the native exp did not run');
    });

    it('runs geluTanh as one native kernel each way on every instruction set, equal to the op-by-op form on the cpu backend (values 1e-6, gradients 1e-5)', async function () {
      const xs = Float32Array.from({ length: 3 * 1000 }, (_, i) => (i - 1500) / 120); // [-12.5, 12.5)
      const ws = Float32Array.from(xs, (v) => Math.cos(3 * v)); // a non-uniform upstream gradient
      try {
        for (const isa of nk.isas()) {
          nk.selectIsa(isa);
          const n0 = nativeGelu();
          const [w, c] = await onBoth(() => {
            const x = tf.tensor2d(xs, [3, 1000]);
            const wt = tf.tensor2d(ws, [3, 1000]);
            const y = geluTanh(x);
            const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(geluTanh(t), wt)))(x);
            return [y, g];
          });
          assert.ok(nativeGelu() >= n0 + 3, `${isa}: the native GELU kernels did not run (forward twice, backward once)`);
          const tol = [1e-6, 1e-5];
          for (let o = 0; o < 2; o++) {
            for (let i = 0; i < xs.length; i++) {
              const d = Math.abs(w[o][i] - c[o][i]);
              assert.ok(d <= tol[o] * Math.max(1, Math.abs(c[o][i])), `${isa}: ${o ? "gelu'" : 'gelu'}(${xs[i]}): native ${w[o][i]}, cpu ${c[o][i]}`);
            }
          }
        }
      } finally {
        nk.selectIsa(isa0);
      }
    });

    it('native GELU refuses arrays that are too short or outputs that overlap inputs, naming them', function () {
      const x = new Float32Array(8);
      const y = new Float32Array(8);
      const s = new Float32Array(8);
      assert.throws(() => nk.geluTanh(x, 0, y, 0, new Float32Array(7), 0, 8), (e: Error) => e instanceof RangeError && /s needs 8 floats from offset 0 but has 7/.test(e.message));
      assert.throws(() => nk.geluTanh(x, 0, x, 0, s, 0, 8), (e: Error) => e instanceof RangeError && /overlaps/.test(e.message));
      assert.throws(() => nk.geluTanhGrad(x, 0, x, 0, s, 0, s, 0, 8), (e: Error) => e instanceof RangeError && /overlaps/.test(e.message));
      assert.throws(() => nk.geluTanhGrad(x, 0, x, 0, s, 0, y, 1, 8), (e: Error) => e instanceof RangeError && /dx needs 8 floats from offset 1/.test(e.message));
      assert.throws(() => (nk.geluTanh as (...a: unknown[]) => void)(x, 0, y, 0, s, 0), (e: Error) => e instanceof TypeError && /expected 7 arguments/.test(e.message));
      // The norms: sizes checked per array, outputs may not overlap inputs, center must be 0 or 1.
      const st = new Float32Array(4);
      assert.throws(() => nk.norm(x, 0, new Float32Array(3), 0, null, 0, y, 0, st, 0, 2, 4, 1e-5, 1), (e: Error) => e instanceof RangeError && /^lora-lab-native norm: w needs 4 floats from offset 0 but has 3/.test(e.message));
      assert.throws(() => (nk.normGrad as (...a: unknown[]) => void)(x, 0, x, 0, new Float64Array(4), 0, st, 0, y, 0, s, 0, null, 0, 2, 4, 0), (e: Error) => e instanceof TypeError && /^lora-lab-native normGrad: w must be a Float32Array/.test(e.message));
      assert.throws(() => nk.exp(x, 0, y, 1, 8), (e: Error) => e instanceof RangeError && /^lora-lab-native exp: out needs 8 floats from offset 1/.test(e.message));
      assert.throws(() => nk.norm(x, 0, s, 0, null, 0, x, 0, st, 0, 2, 4, 1e-5, 1), (e: Error) => e instanceof RangeError && /overlaps/.test(e.message));
      assert.throws(() => nk.norm(x, 0, s, 0, null, 0, y, 0, st, 0, 2, 4, 1e-5, 2), (e: Error) => e instanceof RangeError && /center must be 0 or 1/.test(e.message));
      assert.throws(() => nk.normGrad(x, 0, x, 0, s, 0, st, 0, y, 0, new Float32Array(2), 0, null, 0, 2, 4, 0), (e: Error) => e instanceof RangeError && /dw needs 4 floats/.test(e.message));
      nk.geluTanhGrad(x, 0, x, 4, s, 0, y, 0, 4); // inputs may overlap each other
      // eps that is not a number is a TypeError naming eps (not a generic N-API failure); a negative one a RangeError.
      const looseNorm = nk.norm as (...a: unknown[]) => void;
      for (const [eps, got] of [['1e-5', 'a string'], [1n, 'a BigInt'], [{}, 'an object'], [undefined, 'undefined'], [null, 'null']] as const) {
        assert.throws(() => looseNorm(x, 0, s, 0, null, 0, y, 0, st, 0, 2, 4, eps, 1), (e: Error) => e instanceof TypeError && e.message.includes(`eps must be a number ≥ 0, got ${got}`), String(eps));
      }
      assert.throws(() => nk.norm(x, 0, s, 0, null, 0, y, 0, st, 0, 2, 4, -1, 1), (e: Error) => e instanceof RangeError && /eps must be a number ≥ 0/.test(e.message));
      // An empty or detached bias (b, db) is a RangeError naming it, not "no bias".
      const detached = new Float32Array(4);
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      for (const b of [new Float32Array(0), detached]) {
        assert.throws(() => nk.norm(x, 0, s, 0, b, 0, y, 0, st, 0, 2, 4, 1e-5, 1), (e: Error) => e instanceof RangeError && /b needs 4 floats from offset 0 but has 0/.test(e.message));
        assert.throws(() => nk.normGrad(x, 0, y, 0, s, 0, st, 0, new Float32Array(8), 0, new Float32Array(4), 0, b, 0, 2, 4, 1), (e: Error) => e instanceof RangeError && /db needs 4 floats from offset 0 but has 0/.test(e.message));
      }
    });

    for (const kind of ['rmsNorm', 'layerNorm', 'layerNorm with bias'] as const) {
      it(`${kind}: one native kernel each way, values and gradients (x, w${kind.endsWith('bias') ? ', b' : ''}) equal to the op-by-op form on cpu (1e-5)`, async function () {
        const n0 = nativeNorm();
        const rows = 37;
        const dim = 96;
        const xs = Float32Array.from({ length: rows * dim }, (_, i) => Math.sin(i * 0.7) * 3 + (i % dim === 5 ? 40 : 0) + Math.floor(i / dim) * 0.25);
        const ws = Float32Array.from({ length: dim }, (_, i) => 0.5 + Math.cos(i));
        const bs = Float32Array.from({ length: dim }, (_, i) => Math.sin(i) * 0.1);
        const up = Float32Array.from({ length: rows * dim }, (_, i) => Math.cos(i * 1.3)); // upstream gradient
        const [w, c] = await onBoth(() => {
          const x = tf.tensor3d(xs, [1, rows, dim]);
          const wt = tf.tensor1d(ws);
          const bt = tf.tensor1d(bs);
          const u = tf.tensor3d(up, [1, rows, dim]);
          const withBias = kind === 'layerNorm with bias';
          const f = (xx: tf.Tensor, ww: tf.Tensor, bb?: tf.Tensor): tf.Tensor =>
            kind === 'rmsNorm' ? rmsNorm(xx, ww as tf.Tensor1D, 1e-6) : layerNorm(xx, ww as tf.Tensor1D, bb as tf.Tensor1D | undefined, 1e-5);
          const y = f(x, wt, withBias ? bt : undefined);
          // Gradients with respect to every input the norm has (x, w, and b where there is one).
          const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(a[0], a[1], a[2]), u)))(withBias ? [x, wt, bt] : [x, wt]);
          return [y, ...g];
        });
        assert.ok(nativeNorm() >= n0 + 3, 'the native norm kernels did not run');
        const names = ['y', 'dx', 'dw', 'db'];
        for (let o = 0; o < w.length; o++) {
          let scale = 1e-30;
          let d = 0;
          for (let i = 0; i < c[o].length; i++) {
            scale = Math.max(scale, Math.abs(c[o][i]));
            d = Math.max(d, Math.abs(w[o][i] - c[o][i]));
          }
          assert.ok(d / scale < 1e-5, `${kind} ${names[o]}: max |native − cpu| / max |cpu| = ${(d / scale).toExponential(2)}`);
        }
      });
    }

    it('Llama and its fused norms, GELU and products on wasm + native give the PEFT fixture\'s logits (1e-4)', async function () {
      const folder = await loadHfFolder(path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'));
      const ref = readReference('llama-tiny-qkvo-r8');
      const n0 = nativeNorm();
      const model = buildCausalLm(folder.config, folder.weights);
      const logits = tf.tidy(() => model.forward(idsTensor(ref.probe_input_ids, 256)));
      const d = maxAbsDiff(logits.dataSync(), ref.base_logits);
      logits.dispose();
      model.dispose();
      assert.ok(nativeNorm() > n0, 'the native RMSNorm did not run');
      assert.ok(d < 1e-4, `max |Δ| ${d}`);
    });

    it('leaves int32 exp and empty tensors to work as before', async function () {
      const i = tf.tensor1d([0, 1, 2], 'int32');
      const e = tf.exp(i);
      assert.equal(e.dtype, 'float32');
      assert.ok(Math.abs((await e.data())[1] - Math.E) < 1e-6);
      const z = tf.exp(tf.zeros([0, 3]));
      assert.deepEqual(z.shape, [0, 3]);
      tf.dispose([i, e, z]);
    });
  });
});
