import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { EngineError, NonFiniteLossError } from '../../../src/engine/errors';
import { recoveryError } from '../../../src/engine/experiments/lowRankRecovery';
import { buildBuiltinSession, type TrainingSession } from '../../../src/engine/session';
import type { MetricPoint } from '../../../src/protocol/runFormat';
import { attnConfig, lrrConfig } from './configs';
import { useCpu } from './helpers';

async function losses(s: TrainingSession, signal?: AbortSignal): Promise<MetricPoint[]> {
  const out: MetricPoint[] = [];
  for await (const p of s.run({ signal })) out.push(p);
  return out;
}

/** M·Mᵀ [rows, rows] of a row-major [rows, cols] matrix, in float64. */
function gram(m: Float32Array, rows: number, cols: number): Float64Array {
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rows; j++) {
      let t = 0;
      for (let c = 0; c < cols; c++) t += m[i * cols + c] * m[j * cols + c];
      g[i * rows + j] = t;
    }
  }
  return g;
}

/** The `count` largest eigenvalues of a symmetric PSD matrix [n, n] (power iteration with deflation). */
function topEigenvalues(sym: Float64Array, n: number, count: number): number[] {
  const a = Float64Array.from(sym);
  const out: number[] = [];
  for (let e = 0; e < count; e++) {
    let v = Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1 + e));
    let lambda = 0;
    for (let it = 0; it < 1000; it++) {
      const w = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[i] += a[i * n + j] * v[j];
      lambda = Math.hypot(...w);
      v = w.map((x) => x / lambda);
    }
    out.push(lambda);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] -= lambda * v[i] * v[j];
  }
  return out;
}

describe('engine/session (built-in experiments)', () => {
  before(useCpu);

  it('low-rank-recovery, r ≥ r*: loss → ~0 and the learned ΔW matches U·V', async () => {
    for (const r of [4, 6]) {
      const s = await buildBuiltinSession(lrrConfig({ lora: { r, alpha: r }, training: { steps: 250 } }));
      const pts = await losses(s);
      const last = pts[pts.length - 1];
      assert.ok(last.loss < 1e-6 && last.evalLoss! < 1e-6, `r=${r}: final loss ${last.loss}, eval ${last.evalLoss}`);
      const err = recoveryError((s as Awaited<ReturnType<typeof buildBuiltinSession>>).modules.linear, s.reference().true_delta_w.data);
      assert.ok(err < 1e-2, `r=${r}: ‖ΔW − UV‖/‖UV‖ = ${err}`);
      s.dispose();
    }
  });

  it('low-rank-recovery, r < r*: the loss plateaus at the Eckart–Young floor (energy of the discarded singular values)', async () => {
    const s = await buildBuiltinSession(lrrConfig({ lora: { r: 2, alpha: 2 }, training: { steps: 250, evalEvery: 50 } }));
    const evals = (await losses(s)).filter((p) => p.evalLoss !== undefined).map((p) => p.evalLoss!);
    const last = evals[evals.length - 1];
    assert.ok(Math.abs(evals[evals.length - 2] - last) / last < 0.1, `still falling: ${evals.join(', ')}`);
    // With x ~ N(0, I), the loss of the best rank-2 ΔW is ‖UV − best‖_F²/k = (σ₃² + σ₄²)/k. The eval set is a
    // finite sample (and the pool the adapter was fitted on too), so allow 25 %.
    const uv = s.reference().true_delta_w;
    const [k] = uv.shape;
    const sigma2 = topEigenvalues(gram(uv.data, uv.shape[0], uv.shape[1]), k, 4);
    const floor = (sigma2[2] + sigma2[3]) / k;
    assert.ok(Math.abs(last / floor - 1) < 0.25, `plateau ${last} vs Eckart–Young floor ${floor} (σ² = ${sigma2.join(', ')})`);
    s.dispose();
  });

  it('same seed → identical losses; another seed differs', async () => {
    const cfg = lrrConfig({ training: { steps: 20, logEvery: 1 }, lora: { dropout: 0.1 } });
    const a = (await losses(await buildBuiltinSession(cfg))).map((p) => p.loss);
    const b = (await losses(await buildBuiltinSession(cfg))).map((p) => p.loss);
    const c = (await losses(await buildBuiltinSession(lrrConfig({ training: { steps: 20, logEvery: 1, seed: 99 }, lora: { dropout: 0.1 } })))).map((p) => p.loss);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  for (const [label, cfg] of [
    ['low-rank-recovery with dropout, AdamW, cosine warm-up, clipping', lrrConfig({ training: { steps: 20, logEvery: 1, checkpointEvery: 10 }, lora: { dropout: 0.2, trainBias: true }, optimizer: { name: 'adamw', weightDecay: 0.01, gradClip: 0.5 }, schedule: { name: 'cosine', warmupSteps: 3, minLrRatio: 0.1 } })],
    ['attention-adaptation (seed module, cross-attention), SGD momentum', attnConfig({ model: { kvSeqLen: 9 }, training: { steps: 20, logEvery: 1, checkpointEvery: 10 }, optimizer: { name: 'sgd', momentum: 0.9, lr: 0.05 } })],
  ] as const) {
    it(`resume: 10 steps + checkpoint + new session + restore + 10 steps == 20 steps (${label})`, async () => {
      const full = await buildBuiltinSession(cfg);
      const ref = (await losses(full)).map((p) => p.loss);
      full.dispose();
      assert.equal(ref.length, 20);

      const first = await buildBuiltinSession(cfg);
      const ac = new AbortController();
      const part1: number[] = [];
      let ckpt;
      for await (const p of first.run({ signal: ac.signal })) {
        part1.push(p.loss);
        if (p.step === 10) {
          ckpt = first.checkpoint();
          ac.abort();
        }
      }
      first.dispose();
      assert.equal(ckpt!.step, 10);
      // Through JSON for the state, as the run store does.
      const restored = { ...ckpt!, state: JSON.parse(JSON.stringify(ckpt!.state)) };
      const second = await buildBuiltinSession(cfg);
      second.restore(restored);
      assert.equal(second.step, 10);
      const part2 = (await losses(second)).map((p) => p.loss);
      second.dispose();
      const resumed = [...part1, ...part2];
      assert.equal(resumed.length, 20);
      resumed.forEach((l, i) => assert.ok(Math.abs(l - ref[i]) <= 1e-6 * Math.max(1, Math.abs(ref[i])), `step ${i + 1}: ${l} vs ${ref[i]}`));
    });
  }

  it('attention-adaptation learns the teacher (seed single-head and multi-head with LoRA on q, k, v, o)', async () => {
    for (const over of [{}, { model: { numHeads: 4 }, lora: { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], scaling: 'standard', alpha: 8, init: 'kaiming-uniform' } }]) {
      const s = await buildBuiltinSession(attnConfig({ ...over, training: { steps: 120, evalEvery: 40 } }));
      const ev = (await losses(s)).filter((p) => p.evalLoss !== undefined).map((p) => p.evalLoss!);
      assert.ok(ev[ev.length - 1] < ev[0] / 3, `eval losses ${ev.join(', ')}`);
      s.dispose();
    }
  });

  it('no tensor leaks across session steps (constant from step 2), and dispose frees everything', async () => {
    for (const cfg of [
      lrrConfig({ training: { steps: 8, logEvery: 1, evalEvery: 3 }, lora: { dropout: 0.1 } }),
      attnConfig({ model: { numHeads: 2, kvSeqLen: 4 }, training: { steps: 8, logEvery: 1, evalEvery: 3 }, lora: { dropout: 0.1, targetModules: ['q', 'o'], trainBias: true } }),
    ]) {
      const before = tf.memory().numTensors;
      const s = await buildBuiltinSession(cfg);
      const counts: number[] = [];
      for await (const _p of s.run()) counts.push(tf.memory().numTensors);
      assert.ok(counts.slice(1).every((c) => c === counts[1]), `${cfg.kind}: numTensors ${counts.join(' ')}`);
      s.dispose();
      assert.equal(tf.memory().numTensors, before, `${cfg.kind}: tensors left after dispose`);
    }
  });

  it('a diverging run stops with NonFiniteLossError and keeps the parameters of the last good step', async () => {
    const s = await buildBuiltinSession(lrrConfig({ optimizer: { name: 'sgd', lr: 40 }, training: { steps: 200, logEvery: 1 } }));
    let last: ReturnType<TrainingSession['checkpoint']> | undefined;
    await assert.rejects(
      (async () => {
        for await (const _p of s.run()) last = s.checkpoint();
      })(),
      (e: unknown) => NonFiniteLossError.is(e) && e.step === last!.step + 1 && /^(loss|gradient norm) became (NaN|Infinity) at step \d+$/.test(e.message),
    );
    assert.ok(last && last.step > 1, 'diverged immediately; the test needs a few good steps');
    const now = s.checkpoint();
    assert.equal(now.step, last!.step);
    for (const [k, t] of Object.entries(last!.tensors)) assert.deepEqual(now.tensors[k].data, t.data, k);
    s.dispose();
  });

  it('exports a PEFT adapter: keys, shapes [r, in] / [out, r], config fields, values = A and B', async () => {
    const s = await buildBuiltinSession(lrrConfig({ training: { steps: 5 }, lora: { r: 3, alpha: 6 } }));
    await losses(s);
    const ad = s.exportAdapter();
    assert.deepEqual(Object.keys(ad.tensors).sort(), ['base_model.model.linear.lora_A.weight', 'base_model.model.linear.lora_B.weight']);
    assert.deepEqual(ad.tensors['base_model.model.linear.lora_A.weight'].shape, [3, 32]);
    assert.deepEqual(ad.tensors['base_model.model.linear.lora_B.weight'].shape, [24, 3]);
    assert.equal(ad.config.peft_type, 'LORA');
    assert.equal(ad.config.r, 3);
    assert.equal(ad.config.lora_alpha, 6);
    assert.equal(ad.config.bias, 'none');
    assert.equal(ad.config.use_rslora, false);
    assert.equal(ad.config.fan_in_fan_out, false);
    assert.deepEqual(ad.config.target_modules, ['linear']);
    // PEFT convention: A and B train (bias frozen); the percentage is of base + LoRA.
    assert.deepEqual(s.params, { totalParams: 24 * 32 + 24, trainableParams: 3 * (32 + 24), trainablePercentPeft: (100 * 3 * 56) / (24 * 32 + 24 + 3 * 56) });
    const mod = (s as Awaited<ReturnType<typeof buildBuiltinSession>>).modules.linear;
    assert.deepEqual(ad.tensors['base_model.model.linear.lora_B.weight'].data, mod.B.dataSync());
    const dW = (s as Awaited<ReturnType<typeof buildBuiltinSession>>).deltaWeights().linear;
    assert.deepEqual(dW.shape, [24, 32]);
    s.dispose();

    const withBias = await buildBuiltinSession(lrrConfig({ training: { steps: 2 }, lora: { trainBias: true } }));
    await losses(withBias);
    const ab = withBias.exportAdapter();
    assert.equal(ab.config.bias, 'lora_only');
    assert.deepEqual(ab.tensors['base_model.model.linear.bias'].data, withBias.modules.linear.bias!.dataSync());
    withBias.dispose();

    // The seed's attention keeps its q/k/v biases frozen whatever lora.trainBias says: the config must say "none".
    const seedAttn = await buildBuiltinSession(attnConfig({ training: { steps: 1 }, lora: { trainBias: true } }));
    const a2 = seedAttn.exportAdapter();
    assert.equal(a2.config.bias, 'none');
    assert.ok(!Object.keys(a2.tensors).some((k) => /\.[qkv]\.bias$/.test(k)));
    assert.deepEqual(a2.config.target_modules, ['k', 'q', 'v']);
    assert.deepEqual(a2.config.modules_to_save, ['o']);
    assert.equal(a2.config.lora_alpha, a2.config.r); // scaling 'none' ⇒ α = r so PEFT's α/r = 1
    assert.deepEqual(a2.tensors['base_model.model.attention.o.weight'].shape, [16, 16]);
    assert.equal(seedAttn.params.trainableParams, 3 * 4 * 32 + 16 * 16 + 16);
    seedAttn.dispose();

    // Multi-head, LoRA on q and o with trained biases (the seed's convention): r·(d + k) + k per module.
    const mh = await buildBuiltinSession(attnConfig({ model: { numHeads: 2 }, lora: { targetModules: ['q', 'o'], trainBias: true }, training: { steps: 1 } }));
    assert.deepEqual(mh.params, { totalParams: 4 * (16 * 16 + 16), trainableParams: 2 * (4 * 32 + 16), trainablePercentPeft: (100 * 2 * (4 * 32 + 16)) / (4 * (16 * 16 + 16) + 2 * 4 * 32) });
    mh.dispose();
  });

  it('restore rejects a checkpoint from another experiment, seed or shape', async () => {
    const a = await buildBuiltinSession(lrrConfig({ training: { steps: 2 } }));
    const c = a.checkpoint();
    a.dispose();
    const other = await buildBuiltinSession(lrrConfig({ training: { steps: 2, seed: 5 } }));
    assert.throws(() => other.restore(c), (e: unknown) => EngineError.is(e, 'checkpoint-mismatch') && /seed is 1234/.test((e as Error).message));
    other.dispose();
    const bigger = await buildBuiltinSession(lrrConfig({ training: { steps: 2 }, lora: { r: 5 } }));
    assert.throws(() => bigger.restore(c), /tensor "param\/linear.lora_A": expected shape \[5, 32\], got \[4, 32\]/);
    bigger.dispose();
    await assert.rejects(buildBuiltinSession({ ...lrrConfig(), kind: 'causal-lm' }), (e: unknown) => EngineError.is(e, 'unsupported-kind'));
  });

  it('a second run() while one is in progress is refused (and so is restore), the first one carries on', async () => {
    const s = await buildBuiltinSession(lrrConfig({ training: { steps: 4, logEvery: 1 } }));
    const first = s.run()[Symbol.asyncIterator]();
    assert.equal((await first.next()).value?.step, 1);
    await assert.rejects(s.run()[Symbol.asyncIterator]().next(), /already running/);
    assert.throws(() => s.restore(s.checkpoint()), /while run\(\) is in progress/);
    const rest: number[] = [];
    for (let r = await first.next(); !r.done; r = await first.next()) rest.push(r.value.step);
    assert.deepEqual(rest, [2, 3, 4]);
    assert.deepEqual(await losses(s), []); // finished: a new run() is allowed and has nothing left to do
    s.dispose();
  });

  it('a checkpoint that fails to restore (bad optimizer slot) leaves the session untouched', async () => {
    const cfg = lrrConfig({ training: { steps: 6, logEvery: 1 } });
    const a = await buildBuiltinSession(cfg);
    const ac = new AbortController();
    for await (const p of a.run({ signal: ac.signal })) if (p.step === 3) ac.abort();
    const good = a.checkpoint();
    a.dispose();
    const bad = { ...good, tensors: { ...good.tensors, 'optim/v/linear.lora_B': { shape: [1], data: new Float32Array(1) } } };
    const b = await buildBuiltinSession(cfg);
    const before = b.checkpoint();
    assert.throws(() => b.restore(bad), /tensor "v\/linear.lora_B": expected shape \[24, 4\], got \[1\]/);
    const after = b.checkpoint();
    assert.equal(after.step, 0);
    assert.deepEqual(after.state, before.state);
    assert.deepEqual(Object.keys(after.tensors), Object.keys(before.tensors));
    for (const [k, t] of Object.entries(before.tensors)) assert.deepEqual(after.tensors[k].data, t.data, k);
    b.restore(good);
    assert.equal(b.step, 3);
    b.dispose();
  });
});
