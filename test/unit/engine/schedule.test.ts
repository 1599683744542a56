import * as assert from 'node:assert/strict';
import { lrAt, type ScheduleSpec } from '../../../src/engine/schedule';

const spec = (over: Partial<ScheduleSpec>): ScheduleSpec => ({ name: 'constant', warmupSteps: 0, minLrRatio: 0, lr: 1, totalSteps: 11, ...over });
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≠ ${b}`);

describe('engine/schedule', () => {
  it('constant, with and without warm-up', () => {
    assert.equal(lrAt(0, spec({})), 1);
    assert.equal(lrAt(10, spec({})), 1);
    const w = spec({ warmupSteps: 4, lr: 0.1 });
    close(lrAt(0, w), 0.025);
    close(lrAt(3, w), 0.1);
    close(lrAt(4, w), 0.1);
  });

  it('linear decays from lr to lr·minLrRatio at the last step', () => {
    const s = spec({ name: 'linear', minLrRatio: 0.1 });
    close(lrAt(0, s), 1);
    close(lrAt(5, s), 1 - 0.5 * 0.9);
    close(lrAt(10, s), 0.1);
    close(lrAt(50, s), 0.1); // clamped past the end
  });

  it('cosine with warm-up: peak after warm-up, half-way value, floor at the end', () => {
    const s = spec({ name: 'cosine', warmupSteps: 2, minLrRatio: 0, totalSteps: 12 });
    close(lrAt(0, s), 0.5);
    close(lrAt(1, s), 1);
    close(lrAt(2, s), 1);
    // progress p = (step − warmup)/(totalSteps − 1 − warmup); the end is step 11.
    close(lrAt(11, s), 0);
    const p = (7 - 2) / 9;
    close(lrAt(7, s), 0.5 * (1 + Math.cos(Math.PI * p)));
    // Monotone non-increasing after warm-up.
    for (let i = 2; i < 11; i++) assert.ok(lrAt(i + 1, s) <= lrAt(i, s));
  });

  it('minLrRatio sets the floor of cosine and linear decay (nanoGPT: min_lr + coeff·(lr − min_lr)), after warm-up', () => {
    const cos = spec({ name: 'cosine', warmupSteps: 1, minLrRatio: 0.1, lr: 2, totalSteps: 6 });
    close(lrAt(0, cos), 2); // warm-up of one step reaches lr at once
    close(lrAt(1, cos), 2);
    close(lrAt(5, cos), 0.2);
    close(lrAt(3, cos), 0.2 + 0.5 * (1 + Math.cos(Math.PI * 0.5)) * 1.8); // p = (3 − 1)/4
    const lin = spec({ name: 'linear', warmupSteps: 2, minLrRatio: 0.5, lr: 1, totalSteps: 7 });
    close(lrAt(0, lin), 0.5);
    close(lrAt(2, lin), 1);
    close(lrAt(4, lin), 0.75); // p = (4 − 2)/4
    close(lrAt(6, lin), 0.5);
  });
});
