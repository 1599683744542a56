// Runs the same calls on two builds of the native addon (node compareBuilds.cjs A.node [B.node]) and
// prints JSON: the ISAs tried, how many outputs were compared, those that differ in any bit, and the
// worst relative error of A's products against a float64 reference. Every ISA the CPU has, products
// split by rows and by columns (2 threads), exp, GELU both ways, both norms, a BF16 frozen weight.
// With one build it only checks A against the reference.
'use strict';

const [fileA, fileB] = process.argv.slice(2);
const a = require(fileA);
const b = fileB ? require(fileB) : undefined;

let seed = 7;
function rnd() {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 8) / (1 << 24) * 2 - 1;
}
const f32 = (n, scale = 1) => Float32Array.from({ length: n }, () => rnd() * scale);

/** Each case: a name and a function of an addon that returns its outputs. */
const cases = [];
for (const [m, n, k, flags] of [[37, 45, 29, 0], [160, 70, 300, 1], [70, 160, 300, 2], [300, 100, 270, 3], [33, 20, 17, 12]]) {
  const batch = flags & 12 ? 3 : 1;
  const A = f32((flags & 4 ? batch : 1) * m * k), B = f32((flags & 8 ? batch : 1) * k * n), bias = f32(n);
  cases.push({
    name: `gemm ${m}x${n}x${k} flags ${flags}`,
    run: (nk) => {
      const C = new Float32Array(batch * m * n);
      nk.gemm(A, 0, B, 0, C, 0, bias, 0, batch, m, n, k, flags);
      return [C];
    },
    ref: () => {
      const C = new Float64Array(batch * m * n);
      for (let e = 0; e < batch; e++) {
        const ae = flags & 4 ? e * m * k : 0, be = flags & 8 ? e * k * n : 0;
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = bias[j];
            for (let p = 0; p < k; p++) s += (flags & 1 ? A[ae + p * m + i] : A[ae + i * k + p]) * (flags & 2 ? B[be + j * k + p] : B[be + p * n + j]);
            C[e * m * n + i * n + j] = s;
          }
        }
      }
      return C;
    },
  });
}
const X = f32(5000, 30);
cases.push({ name: 'exp', run: (nk) => { const y = new Float32Array(X.length); nk.exp(X, 0, y, 0, X.length); return [y]; } });
cases.push({
  name: 'geluTanh, geluTanhGrad',
  run: (nk) => {
    const n = X.length, y = new Float32Array(n), s = new Float32Array(n), dx = new Float32Array(n);
    nk.geluTanh(X, 0, y, 0, s, 0, n);
    nk.geluTanhGrad(X, 0, X, 0, s, 0, dx, 0, n);
    return [y, s, dx];
  },
});
for (const center of [0, 1]) {
  const rows = 9, dim = 70, x = f32(rows * dim, 3), w = f32(dim), bb = f32(dim), dy = f32(rows * dim);
  cases.push({
    name: `norm, normGrad (center ${center})`,
    run: (nk) => {
      const y = new Float32Array(rows * dim), st = new Float32Array(2 * rows), dx = new Float32Array(rows * dim), dw = new Float32Array(dim), db = new Float32Array(dim);
      nk.norm(x, 0, w, 0, bb, 0, y, 0, st, 0, rows, dim, 1e-5, center);
      nk.normGrad(dy, 0, x, 0, w, 0, st, 0, dx, 0, dw, 0, db, 0, rows, dim, center);
      return [y, st, dx, dw, db];
    },
  });
}
const bytes = Uint8Array.from({ length: 300 * 200 * 2 }, (_, i) => (i % 2 ? 0x3c + (i % 3) : (i * 37) & 255));
const xw = f32(150 * 200), xh = f32(150 * 300);
cases.push({
  name: 'frozenMatMul BF16 (both modes)',
  run: (nk) => {
    if (!nk.frozenWeight) return [];
    const w = nk.frozenWeight(bytes, 'BF16', 300, 200);
    const y0 = new Float32Array(150 * 300), y1 = new Float32Array(150 * 200);
    nk.frozenMatMul(w, xw, 0, y0, 0, 150, 0);
    nk.frozenMatMul(w, xh, 0, y1, 0, 150, 1);
    return [y0, y1];
  },
});

const out = { isas: a.isas(), compared: 0, mismatches: [], maxRel: 0 };
for (const isa of out.isas) {
  for (const nk of b ? [a, b] : [a]) nk.selectIsa(isa);
  for (const threads of [1, 2]) {
    for (const nk of b ? [a, b] : [a]) nk.setThreads(threads);
    for (const c of cases) {
      const ra = c.run(a);
      if (c.ref) {
        const want = c.ref();
        let scale = 1e-30, worst = 0;
        for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(ra[0][i] - want[i]) / scale);
        out.maxRel = Math.max(out.maxRel, worst);
      }
      if (!b) continue;
      const rb = c.run(b);
      ra.forEach((arr, i) => {
        out.compared++;
        if (Buffer.compare(Buffer.from(arr.buffer), Buffer.from(rb[i].buffer)) !== 0) out.mismatches.push(`${isa}, ${threads} threads: ${c.name}, output ${i}`);
      });
    }
  }
}
console.log(JSON.stringify(out));
