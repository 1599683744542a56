import * as assert from 'node:assert/strict';
import { Rng, hashInts } from '../../../src/engine/rng';

describe('engine/rng', () => {
  it('same seed → same sequence; different seeds differ', () => {
    const a = new Rng(42).normalArray(100);
    const b = new Rng(42).normalArray(100);
    const c = new Rng(43).normalArray(100);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('state round-trips mid-stream, including the cached Box–Muller value', () => {
    const r = new Rng(7);
    r.normal(); // leaves a spare
    const state = JSON.parse(JSON.stringify(r.getState()));
    const expected = [r.normal(), r.uniform(), r.normal()];
    const r2 = Rng.fromState(state);
    assert.deepEqual([r2.normal(), r2.uniform(), r2.normal()], expected);
  });

  it('normal samples have mean ≈ 0 and std ≈ 1; uniform in [0, 1)', () => {
    const r = new Rng(1);
    const xs = r.normalArray(20000);
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(std - 1) < 0.03, `mean ${mean} std ${std}`);
    for (let i = 0; i < 1000; i++) {
      const u = r.uniform();
      assert.ok(u >= 0 && u < 1);
    }
  });

  it('derived streams are independent and pure functions of their indices', () => {
    assert.deepEqual(Rng.derive(5, 'batch', 3).normalArray(4), Rng.derive(5, 'batch', 3).normalArray(4));
    assert.notDeepEqual(Rng.derive(5, 'batch', 3).normalArray(4), Rng.derive(5, 'batch', 4).normalArray(4));
    assert.notDeepEqual(Rng.derive(5, 'batch', 3).normalArray(4), Rng.derive(5, 'eval', 3).normalArray(4));
    assert.notEqual(hashInts(1, 2), hashInts(2, 1));
  });

  it('sampleWithoutReplacement gives distinct indices in range', () => {
    const idx = new Rng(3).sampleWithoutReplacement(50, 20);
    assert.equal(new Set(idx).size, 20);
    assert.ok(idx.every((i) => i >= 0 && i < 50));
    assert.throws(() => new Rng(3).sampleWithoutReplacement(5, 6), /cannot draw 6 distinct indices from 5/);
  });
});
