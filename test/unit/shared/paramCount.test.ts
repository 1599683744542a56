import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatCount, formatPercent, formatReduction, linearParamCount, loraScale, modelParamCount } from '../../../src/shared/paramCount';
import { loadSeedFixture } from '../engine/helpers';

describe('shared/paramCount', () => {
  it("the seed's worked example: d = k = 1024, r = 4 → 1,049,600 vs 9,216, 0.88 %, 113.9×", () => {
    const c = linearParamCount({ inFeatures: 1024, outFeatures: 1024 }, 4);
    assert.equal(c.full, 1_049_600);
    assert.equal(c.lora, 9_216);
    assert.equal(formatCount(c.full), '1,049,600');
    assert.equal(formatCount(c.lora), '9,216');
    assert.equal(formatPercent(c.percent), '0.88 %');
    assert.equal(formatReduction(c.reduction), '113.9×');
    const fx = loadSeedFixture().linear_seed_example_shapes as Record<string, number>;
    assert.equal(c.full, fx.params_full);
    assert.equal(c.lora, fx.params_lora);
  });

  it('matches the seed fixture for linear_small (bias trains) and PEFT convention (bias frozen)', () => {
    const fx = loadSeedFixture().linear_small as Record<string, number>;
    const seed = linearParamCount({ inFeatures: fx.in_features, outFeatures: fx.out_features }, fx.r);
    assert.equal(seed.lora, fx.params_trainable); // 124 = 4·16 + 12·4 + 12
    const peft = linearParamCount({ inFeatures: 16, outFeatures: 12 }, 4, false);
    assert.equal(peft.lora, 112);
  });

  it('whole-model sums in PEFT convention: percent of base + LoRA', () => {
    const modules = ['q', 'v'].map((n) => ({ name: n, inFeatures: 64, outFeatures: 64, r: 8, hasBias: false }));
    const c = modelParamCount(100_000, modules);
    assert.equal(c.loraParams, 2 * 8 * (64 + 64));
    assert.equal(c.trainableParams, 2048);
    assert.equal(c.allParams, 102_048);
    assert.ok(Math.abs(c.trainablePercent - (100 * 2048) / 102_048) < 1e-12);
    assert.equal(c.adaptedFull, 2 * 64 * 64);
    // The seed's attention: LoRA on q, k, v plus a trainable W_O (weight + bias) = 1,824 for E = 32, r = 4.
    const att = modelParamCount(4 * (32 * 32 + 32), ['q', 'k', 'v'].map((name) => ({ name, inFeatures: 32, outFeatures: 32, r: 4 })), { extraTrainable: 32 * 32 + 32 });
    assert.equal(att.trainableParams, 1824);
  });

  it('formats large and small numbers without locale surprises and rejects bad shapes', () => {
    assert.equal(formatCount(0), '0');
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1000), '1,000');
    assert.equal(formatCount(6_738_415_616), '6,738,415,616');
    assert.equal(formatPercent(100), '100.00 %');
    assert.throws(() => linearParamCount({ inFeatures: 0, outFeatures: 4 }, 1), /inFeatures should be a positive integer, got 0/);
    assert.throws(() => linearParamCount({ inFeatures: 4, outFeatures: 4 }, 1.5), /r should be a positive integer, got 1.5/);
  });

  it('stays tfjs-free (the extension host imports it), transitively, and carries the LoRA scale', () => {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = fs.readFileSync(file, 'utf8');
      for (const m of src.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'"]*from\s+)?'([^']+)'/gm)) {
        if (m[1]) continue; // type-only imports vanish at runtime
        assert.ok(m[2].startsWith('.'), `${path.basename(file)} imports the package ${m[2]}`);
        visit(path.resolve(path.dirname(file), `${m[2]}.ts`));
      }
    };
    visit(path.join(__dirname, '../../../src/shared/paramCount.ts'));
    assert.ok(seen.size >= 2, [...seen].join(', '));
    assert.equal(loraScale(16, 4, 'standard'), 4);
    assert.equal(loraScale(16, 4, 'rslora'), 8);
    assert.equal(loraScale(16, 4, 'none'), 1);
  });
});
