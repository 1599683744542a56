// The native softmax cross-entropy (native/src/xent.c, used by the chunked loss of
// src/engine/crossEntropy.ts): each row's loss log Σ e^z − z[label] and, with a scale, the gradient
// scale·(softmax(z) − onehot(label)) written over the logits, against a float64 reference computed
// here (loss ≤ 1e-6 relative to max(1, |loss|), gradient ≤ 1e-6 of the scale), on every instruction
// set, the same bits at any thread count, and bad labels refused by name.
import * as assert from 'node:assert/strict';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { values } from './helpers';

const BUILT_HERE = (process.platform === 'linux' || process.platform === 'darwin') && process.arch === 'x64';

function reference(z: Float32Array, rows: number, vocab: number, labels: Int32Array, scale: Float32Array): { loss: Float64Array; grad: Float64Array } {
  const loss = new Float64Array(rows);
  const grad = new Float64Array(rows * vocab);
  for (let i = 0; i < rows; i++) {
    let m = -Infinity;
    for (let j = 0; j < vocab; j++) m = Math.max(m, z[i * vocab + j]);
    let s = 0;
    for (let j = 0; j < vocab; j++) s += Math.exp(z[i * vocab + j] - m);
    loss[i] = m + Math.log(s) - z[i * vocab + labels[i]];
    for (let j = 0; j < vocab; j++) grad[i * vocab + j] = (scale[i] * Math.exp(z[i * vocab + j] - m)) / s - (j === labels[i] ? scale[i] : 0);
  }
  return { loss, grad };
}

describe('perf: native softmax cross-entropy', function () {
  const nk = loadNativeKernels({}).kernels;
  before(function () {
    if (!nk?.softmaxXent) {
      if (BUILT_HERE) assert.fail('native kernels missing or stale: run `npm run build:native`');
      this.skip();
    }
  });

  // Vocabularies below, at and above the 16-lane and 1024-float blocks; a row split over threads.
  for (const [rows, vocab] of [[3, 7], [5, 1024], [9, 5003], [64, 3001]] as const) {
    it(`rows ${rows} × vocab ${vocab}: loss and in-place gradient equal a float64 reference on every instruction set and thread count`, function () {
      const isa0 = nk!.isa();
      const threads0 = nk!.threads();
      const z0 = Float32Array.from(values(rows * vocab, 11), (x) => 8 * x); // logits spread over ±8
      const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab);
      const scale = Float32Array.from({ length: rows }, (_, i) => (i % 4 === 3 ? 0 : 1 / rows)); // some rows ignored
      const ref = reference(z0, rows, vocab, labels, scale);
      let first: Float32Array | undefined;
      try {
        for (const isa of nk!.isas()) {
          nk!.selectIsa(isa);
          for (const t of [1, 3]) {
            nk!.setThreads(t);
            const z = new Float32Array(7 + rows * vocab);
            z.set(z0, 7); // at an offset
            const loss = new Float32Array(rows);
            nk!.softmaxXent!(z, 7, rows, vocab, labels, null, loss);
            assert.ok(z.subarray(7).every((x, j) => Object.is(x, z0[j])), `${isa}, ${t} threads: without a scale the logits must stay`);
            const lossG = new Float32Array(rows);
            nk!.softmaxXent!(z, 7, rows, vocab, labels, scale, lossG);
            for (let i = 0; i < rows; i++) {
              assert.ok(Math.abs(loss[i] - ref.loss[i]) <= 1e-6 * Math.max(1, Math.abs(ref.loss[i])), `${isa}, ${t} threads: row ${i} loss ${loss[i]} vs ${ref.loss[i]}`);
              assert.equal(lossG[i], loss[i], `${isa}: the loss does not depend on the gradient being asked`);
            }
            for (let j = 0; j < rows * vocab; j++) {
              const tol = 1e-6 * scale[Math.floor(j / vocab)] + 1e-12;
              assert.ok(Math.abs(z[7 + j] - ref.grad[j]) <= tol, `${isa}, ${t} threads: gradient [${Math.floor(j / vocab)}, ${j % vocab}] ${z[7 + j]} vs ${ref.grad[j]}`);
            }
            if (!first) first = z.slice();
            else assert.ok(z.every((x, j) => Object.is(x, first![j])), `${isa}, ${t} threads: not the same bits as the first run`);
          }
          first = undefined; // instruction sets may round the exponentials differently
        }
      } finally {
        nk!.selectIsa(isa0);
        nk!.setThreads(threads0);
      }
    });
  }

  it('refuses labels outside the vocabulary and short arrays, naming them', function () {
    const z = new Float32Array(12);
    assert.throws(() => nk!.softmaxXent!(z, 0, 3, 4, Int32Array.from([0, 4, 1]), null, new Float32Array(3)), /softmaxXent: labels\[1\] = 4 is outside \[0, 4\)/);
    assert.throws(() => nk!.softmaxXent!(z, 0, 3, 4, Int32Array.from([0, -1, 1]), null, new Float32Array(3)), /labels\[1\] = -1/);
    assert.throws(() => nk!.softmaxXent!(z, 1, 3, 4, new Int32Array(3), null, new Float32Array(3)), /z needs 12 floats from offset 1 but has 12/);
    assert.throws(() => nk!.softmaxXent!(z, 0, 3, 4, new Int32Array(3), new Float32Array(2), new Float32Array(3)), /scale needs 3 floats/);
    assert.throws(() => nk!.softmaxXent!(z, 0, 3, 4, new Int32Array(3), null, z.subarray(0, 3)), /loss or scale overlaps z/);
  });
});
