import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { LoRAAttention, MultiHeadLoRAAttention, causalBias, randomAttentionWeights, type AttentionWeights } from '../../../src/engine/attention';
import { EngineError } from '../../../src/engine/errors';
import { Rng } from '../../../src/engine/rng';
import { assertClose, f32, loadSeedFixture, transpose2d, useCpu, type FixtureTensor } from './helpers';

type Case = Record<string, FixtureTensor> & { embed_dim: number; r: number; loss_mean_square: number; params_trainable: number; params_total: number };

function seedWeights(c: Case): AttentionWeights {
  const lin = (p: string) => ({ weight: f32(c[`W_${p}.weight`]), bias: f32(c[`W_${p}.bias`]) });
  return { q: lin('Q'), k: lin('K'), v: lin('V'), o: lin('O') };
}

function seedModule(c: Case): LoRAAttention {
  return new LoRAAttention({
    embedDim: c.embed_dim,
    r: c.r,
    scaling: 'none',
    weights: seedWeights(c),
    factors: {
      q: { A: f32(c.A_Q), B: f32(c.B_Q) },
      k: { A: f32(c.A_K), B: f32(c.B_K) },
      v: { A: f32(c.A_V), B: f32(c.B_V) },
    },
  });
}

const t3 = (t: FixtureTensor) => tf.tensor3d(f32(t), t.shape as [number, number, number]);

describe('engine/attention', () => {
  before(useCpu);
  const fx = loadSeedFixture();

  for (const name of ['attention_self', 'attention_cross']) {
    it(`seed LoRAAttention matches the reference (${name}): output, loss, grads of A/B (q, k, v) and W_O (1e-4 relative)`, () => {
      const c = fx[name] as unknown as Case;
      const E = c.embed_dim;
      const m = seedModule(c);
      const [q, k, v] = [t3(c.query), t3(c.key), t3(c.value)];
      const out = m.apply(q, k, v);
      assert.deepEqual(out.shape, c.output.shape);
      assertClose(out.dataSync(), c.output.data, 1e-4, 'output');
      const vars = m.trainableVariables();
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(m.apply(q, k, v))) as tf.Scalar, Object.values(vars));
      assertClose(value.dataSync(), [c.loss_mean_square], 1e-4, 'loss');
      for (const p of ['q', 'k', 'v']) {
        const P = p.toUpperCase();
        assertClose(grads[vars[`${p}.lora_A`].name].dataSync(), c[`grad_A_${P}`].data, 1e-4, `grad A_${P}`);
        assertClose(grads[vars[`${p}.lora_B`].name].dataSync(), c[`grad_B_${P}`].data, 1e-4, `grad B_${P}`);
      }
      // Ours is W_Oᵀ [in, out]; the reference is PyTorch's [out, in].
      assertClose(transpose2d(grads[vars['o.weightT'].name].dataSync(), E, E), c['grad_W_O.weight'].data, 1e-4, 'grad W_O');
      // Trainable count includes W_O (the seed leaves it trainable).
      const count = Object.values(vars).reduce((s, t) => s + t.size, 0);
      assert.equal(count, c.params_trainable);
      tf.dispose([q, k, v, out, value, ...Object.values(grads)]);
      m.dispose();
    });
  }

  it('multi-head with one head, LoRA on q, k, v equals the seed module output', () => {
    const c = fx.attention_cross as unknown as Case;
    const seed = seedModule(c);
    const mh = new MultiHeadLoRAAttention({ embedDim: c.embed_dim, numHeads: 1, targets: ['q', 'k', 'v'], r: c.r, scaling: 'none', weights: seedWeights(c) });
    for (const p of ['q', 'k', 'v'] as const) {
      const lin = mh.proj[p] as unknown as { A: tf.Variable; B: tf.Variable };
      lin.A.assign(seed[p].A);
      lin.B.assign(seed[p].B);
    }
    const [q, k, v] = [t3(c.query), t3(c.key), t3(c.value)];
    const a = seed.apply(q, k, v);
    const b = mh.apply(q, k, v);
    assertClose(b.dataSync(), a.dataSync(), 1e-5, 'multi-head(1) vs seed');
    tf.dispose([q, k, v, a, b]);
    seed.dispose();
    mh.dispose();
  });

  it('multi-head: B = 0 gives the base output; LoRA on o passes gradients to q/k/v factors', () => {
    const E = 16;
    const rng = new Rng(9);
    const weights = randomAttentionWeights(E, rng);
    const plain = new MultiHeadLoRAAttention({ embedDim: E, numHeads: 4, targets: [], r: 2, weights, causal: true });
    const lora = new MultiHeadLoRAAttention({ embedDim: E, numHeads: 4, targets: ['q', 'k', 'v', 'o'], r: 2, weights, causal: true, rng });
    const x = tf.tensor3d(rng.normalArray(2 * 5 * E), [2, 5, E]);
    const a = plain.apply(x, x, x);
    const b = lora.apply(x, x, x);
    assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
    // Give every B a value; then all 8 factors must receive a non-zero gradient through o.
    for (const [, m] of lora.loraModules()) m.B.assign(tf.mul(tf.onesLike(m.B), 0.1));
    const vars = lora.trainableVariables();
    assert.equal(Object.keys(vars).length, 8);
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(lora.apply(x, x, x))) as tf.Scalar, Object.values(vars));
    for (const [n, v] of Object.entries(vars)) assert.ok(tf.max(tf.abs(grads[v.name])).dataSync()[0] > 0, `zero gradient for ${n}`);
    tf.dispose([x, a, b, value, ...Object.values(grads)]);
    plain.dispose();
    lora.dispose();
  });

  it('causal mask: an output position does not depend on later tokens', () => {
    const E = 8;
    const rng = new Rng(2);
    const m = new MultiHeadLoRAAttention({ embedDim: E, numHeads: 2, targets: ['q', 'v'], r: 2, causal: true, rng });
    const xs = rng.normalArray(1 * 4 * E);
    const x1 = tf.tensor3d(xs, [1, 4, E]);
    const changed = xs.slice();
    for (let i = 3 * E; i < 4 * E; i++) changed[i] += 5; // perturb the last token only
    const x2 = tf.tensor3d(changed, [1, 4, E]);
    const y1 = m.apply(x1, x1, x1).dataSync();
    const y2 = m.apply(x2, x2, x2).dataSync();
    assertClose(y2.slice(0, 3 * E), y1.slice(0, 3 * E), 1e-6, 'first three positions');
    assert.ok(Math.abs(y2[3 * E] - y1[3 * E]) > 1e-4);
    const bias = causalBias(2, 3).arraySync();
    assert.deepEqual(bias, [[0, 0, -1e9], [0, 0, 0]]);
    tf.dispose([x1, x2]);
    m.dispose();
  });

  it('both attention modules reject inputs of the wrong shape, naming the input', () => {
    const seed = new LoRAAttention({ embedDim: 8, r: 2, rng: new Rng(1) });
    const mh = new MultiHeadLoRAAttention({ embedDim: 8, numHeads: 2, targets: ['q'], r: 2, rng: new Rng(1) });
    const q = tf.zeros([2, 3, 8]) as tf.Tensor3D;
    const kv = tf.zeros([2, 5, 8]) as tf.Tensor3D;
    const wrongE = tf.zeros([2, 5, 6]) as tf.Tensor3D;
    const otherBatch = tf.zeros([1, 5, 8]) as tf.Tensor3D;
    for (const [name, m] of [['LoRAAttention', seed], ['MultiHeadLoRAAttention', mh]] as const) {
      assert.throws(() => m.apply(q, wrongE, kv), (e: unknown) => EngineError.is(e, 'shape-mismatch') && (e as Error).message.startsWith(`${name} key [batch, length, embedDim]: expected shape [-1, -1, 8], got [2, 5, 6]`));
      assert.throws(() => m.apply(q, otherBatch, otherBatch), (e: unknown) => EngineError.is(e, 'shape-mismatch') && (e as Error).message.startsWith(`${name} key/value`));
      const ok = m.apply(q, kv, kv);
      assert.deepEqual(ok.shape, [2, 3, 8]);
      ok.dispose();
    }
    tf.dispose([q, kv, wrongE, otherBatch]);
    seed.dispose();
    mh.dispose();
  });

  it('rejects a head count that does not divide the embedding and unknown targets', () => {
    assert.throws(() => new MultiHeadLoRAAttention({ embedDim: 10, numHeads: 3, targets: ['q'], r: 1 }), /numHeads should divide embedDim \(10\), got 3/);
    assert.throws(() => new MultiHeadLoRAAttention({ embedDim: 8, numHeads: 2, targets: ['x' as 'q'], r: 1 }), /"x" is not one of q, k, v, o/);
  });
});
