import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { NonFiniteLossError } from '../../../src/engine/errors';
import { Sgd } from '../../../src/engine/optim';
import { trainLoop, type TrainTask } from '../../../src/engine/trainLoop';
import type { MetricPoint } from '../../../src/protocol/runFormat';
import { useCpu } from './helpers';

/** Fit w to y = 3x by least squares; `poisonAt` makes the loss NaN at that update index. */
function regression(poisonAt = -1): TrainTask<tf.Tensor1D> & { w: tf.Variable; dispose(): void } {
  const w = tf.variable(tf.scalar(0));
  return {
    w,
    variables: { w },
    nextBatch: (u) => tf.tensor1d([1 + (u % 3), 2 - (u % 2)]),
    disposeBatch: (x) => x.dispose(),
    lossFn: (x, _training, u) =>
      tf.tidy(() => {
        const loss = tf.mean(tf.square(tf.sub(tf.mul(x, w), tf.mul(x, 3)))) as tf.Scalar;
        return u === poisonAt ? (tf.mul(loss, NaN) as tf.Scalar) : loss;
      }),
    evalLoss: () => tf.tidy(() => tf.square(tf.sub(w, 3)).dataSync()[0]),
    dispose: () => w.dispose(),
  };
}

async function collect(it: AsyncIterable<MetricPoint>, each?: (p: MetricPoint) => void): Promise<MetricPoint[]> {
  const out: MetricPoint[] = [];
  for await (const p of it) {
    out.push(p);
    each?.(p);
  }
  return out;
}

describe('engine/trainLoop', () => {
  before(useCpu);

  it('trains, yields at the requested steps with eval loss, lr from the schedule', async () => {
    const task = regression();
    const points = await collect(trainLoop(task, { optimizer: new Sgd(), lrAt: (u) => (u < 10 ? 0.1 : 0.05), totalSteps: 40, evalEvery: 20, yieldEvery: [10] }));
    assert.deepEqual(points.map((p) => p.step), [10, 20, 30, 40]);
    assert.equal(points[0].lr, 0.1);
    assert.equal(points[1].lr, 0.05);
    assert.equal(points[0].evalLoss, undefined);
    assert.ok(points[1].evalLoss !== undefined && points[3].evalLoss! < 1e-6, `eval loss ${points[3].evalLoss}`);
    assert.ok(points[3].loss < 1e-6, `final loss ${points[3].loss}`);
    assert.ok(points.every((p) => p.gradNorm >= 0 && p.elapsedMs >= 0), 'grad norm and elapsed time are non-negative');
    task.dispose();
  });

  it('a NaN loss stops with NonFiniteLossError naming the step, leaving the variables at the last good step', async () => {
    const task = regression(56); // update index 56 = step 57
    const seen: number[] = [];
    await assert.rejects(
      collect(trainLoop(task, { optimizer: new Sgd(), lrAt: () => 0.01, totalSteps: 100 }), () => seen.push(task.w.dataSync()[0])),
      (e: unknown) => NonFiniteLossError.is(e) && e.step === 57 && e.message === 'loss became NaN at step 57',
    );
    assert.equal(seen.length, 56);
    assert.equal(task.w.dataSync()[0], seen[55]);
    assert.ok(Number.isFinite(task.w.dataSync()[0]));
    task.dispose();
  });

  it('no tensor leaks: tf.memory().numTensors is constant from step 2 on', async () => {
    const task = regression();
    const opt = new Sgd(0.9);
    const counts: number[] = [];
    await collect(trainLoop(task, { optimizer: opt, lrAt: () => 0.01, totalSteps: 12, gradClip: 0.5, evalEvery: 3 }), () => counts.push(tf.memory().numTensors));
    assert.equal(counts.length, 12);
    assert.ok(counts.slice(1).every((c) => c === counts[1]), `numTensors per step: ${counts.join(' ')}`);
    opt.dispose();
    task.dispose();
  });

  it('abort between steps: stops cleanly with one final point, no throw', async () => {
    const task = regression();
    const ac = new AbortController();
    const points = await collect(trainLoop(task, { optimizer: new Sgd(), lrAt: () => 0.01, totalSteps: 1000, signal: ac.signal }), (p) => {
      if (p.step === 5) ac.abort();
    });
    assert.equal(points[points.length - 1].step, 5);
    task.dispose();
  });

  it('a signal aborted before the first step: no step, no point, no throw', async () => {
    const task = regression();
    const points = await collect(trainLoop(task, { optimizer: new Sgd(), lrAt: () => 0.01, totalSteps: 10, signal: AbortSignal.abort() }));
    assert.deepEqual(points, []);
    assert.equal(task.w.dataSync()[0], 0);
    task.dispose();
  });

  it('awaits a macrotask between steps, so an abort from a timer/message lands mid-run', async () => {
    const task = regression();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    // Only the last step would be yielded; the abort must still be seen between steps.
    const points = await collect(trainLoop(task, { optimizer: new Sgd(), lrAt: () => 0.01, totalSteps: 1_000_000, yieldEvery: [1_000_000], signal: ac.signal }));
    assert.equal(points.length, 1);
    assert.ok(points[0].step > 0 && points[0].step < 1_000_000);
    task.dispose();
  });

  it('gradient clipping changes the update and reports the pre-clip norm', async () => {
    const a = regression();
    const b = regression();
    const [pa] = await collect(trainLoop(a, { optimizer: new Sgd(), lrAt: () => 0.01, totalSteps: 1 }));
    const [pb] = await collect(trainLoop(b, { optimizer: new Sgd(), lrAt: () => 0.01, totalSteps: 1, gradClip: 1 }));
    assert.equal(pa.gradNorm, pb.gradNorm);
    assert.ok(pa.gradNorm > 1);
    const wa = a.w.dataSync()[0];
    const wb = b.w.dataSync()[0];
    assert.ok(Math.abs(wb - 0.01 * (1 / (pb.gradNorm + 1e-6)) * pb.gradNorm) < 1e-6, `clipped step ${wb}`);
    assert.ok(wa > wb);
    a.dispose();
    b.dispose();
  });
});
