// The memory-lean training paths must give the plain paths' numbers: the chunked cross-entropy (values
// and gradients, with ignored labels and ragged chunks) and activation checkpointing per transformer
// block (every LoRA gradient ≤ 1e-6 relative), on the example GPT-2 and Llama models.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useCpu } from './helpers';
import { loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { causalLmLoss, causalLmTrainLoss, type CausalLm } from '../../../src/models/causalLm';
import { initTrainableAdapter, type TrainableAdapter } from '../../../src/models/loraTrainable';
import type { LoraLookup } from '../../../src/models/linear';
import { causalLabels, chunkedCrossEntropy, plainCrossEntropy } from '../../../src/engine/crossEntropy';
import { Rng } from '../../../src/engine/rng';

const EXAMPLES = path.resolve(__dirname, '../../../examples/models');

/** max |a − b| / max |b|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let scale = 0;
  let d = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    d = Math.max(d, Math.abs(a[i] - b[i]));
  }
  return scale === 0 ? d : d / scale;
}

function randn(shape: number[], seed: number, std = 1): tf.Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => std * rng.normal()), shape);
}

describe('interop: chunked cross-entropy', () => {
  before(useCpu);

  const [N, H, V] = [13, 8, 37];
  const labels = Int32Array.from({ length: N }, (_, i) => (i % 5 === 4 ? -100 : (i * 7) % V));
  labels[0] = -1; // any negative label is ignored

  for (const chunkRows of [1, 4, 13, 64]) {
    for (const withBias of [false, true]) {
      it(`equals the plain form in value and gradient (chunks of ${chunkRows} rows${withBias ? ', bias' : ''}, ignored labels)`, () => {
        tf.tidy(() => {
          const h = randn([N, H], 1) as tf.Tensor2D;
          const wt = randn([H, V], 2, 0.5) as tf.Tensor2D;
          const bias = withBias ? (randn([V], 3) as tf.Tensor1D) : undefined;
          const plain = (x: tf.Tensor) => {
            const z = tf.matMul(x as tf.Tensor2D, wt);
            return plainCrossEntropy((bias ? tf.add(z, bias) : z) as tf.Tensor2D, labels);
          };
          const chunked = (x: tf.Tensor) => chunkedCrossEntropy(x as tf.Tensor2D, wt, bias, labels, chunkRows);
          const p = tf.valueAndGrad(plain)(h);
          const c = tf.valueAndGrad(chunked)(h);
          assert.ok(relDiff(c.value.dataSync(), p.value.dataSync()) <= 1e-6, `loss ${c.value.dataSync()[0]} vs ${p.value.dataSync()[0]}`);
          assert.ok(relDiff(c.grad.dataSync(), p.grad.dataSync()) <= 1e-5, 'dL/dh');
          // ignored rows get no gradient at all
          const g = c.grad.arraySync() as number[][];
          for (let i = 0; i < N; i++) if (labels[i] < 0) assert.ok(g[i].every((x) => x === 0), `row ${i} is ignored but has a gradient`);
        });
      });
    }
  }

  it('names bad labels: wrong count, id outside the vocabulary', () => {
    tf.tidy(() => {
      const h = randn([3, H], 1) as tf.Tensor2D;
      const wt = randn([H, V], 2) as tf.Tensor2D;
      assert.throws(() => chunkedCrossEntropy(h, wt, undefined, new Int32Array(2)), /2 labels for 3 rows/);
      assert.throws(() => chunkedCrossEntropy(h, wt, undefined, Int32Array.from([0, V, 1])), new RegExp(`label ${V} at row 1 is outside the vocabulary of ${V}`));
      assert.throws(() => chunkedCrossEntropy(h, randn([H + 1, V], 2) as tf.Tensor2D, undefined, new Int32Array(3)), /expected \[8, V\]/);
    });
  });

  it('causalLabels: each row predicts the next token; the last of each window is ignored', () => {
    assert.deepEqual([...causalLabels(Int32Array.from([5, 6, 7, 8, 9, 10]), 2, 3)], [6, 7, -100, 9, 10, -100]);
  });
});

interface Fixture {
  model: CausalLm;
  adapter: TrainableAdapter;
  ids: tf.Tensor2D;
}

async function fixture(name: string, targets: string[], dora = false): Promise<Fixture> {
  const folder = await loadHfFolder(path.join(EXAMPLES, name));
  const model = buildCausalLm(folder.config, folder.weights);
  const rng = new Rng(11);
  const paths = [...model.linears.keys()].filter((p) => targets.some((t) => p.endsWith(t)));
  const adapter = initTrainableAdapter(model, paths.map((p) => ({ path: p, r: 4, alpha: 8, scale: 2 })), { init: 'kaiming-uniform', dora, uniform: () => rng.uniform(), normal: () => rng.normal() });
  // B is 0 at init, which would make every A gradient 0: give B values so both gradients are tested.
  let seed = 100;
  for (const [k, v] of Object.entries(adapter.variables)) if (k.includes('lora_B')) tf.tidy(() => v.assign(randn(v.shape, seed++, 0.05)));
  const ids = tf.tensor2d(Int32Array.from({ length: 2 * 17 }, (_, i) => (i * 37 + 11) % 256), [2, 17], 'int32');
  return { model, adapter, ids };
}

function lossAndGrads(f: Fixture, loss: (lookup: LoraLookup) => tf.Scalar, dropout: number): { value: number; grads: Record<string, Float32Array> } {
  // Seeded dropout on the LoRA input, as the session makes it: a recomputed block replays its masks.
  const lookup: LoraLookup = (p) => {
    const m = f.adapter.lookup(p);
    return m && dropout > 0 ? { ...m, inputDropout: (x: tf.Tensor2D) => tf.dropout(x, dropout, undefined, p.length) as tf.Tensor2D } : m;
  };
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => loss(lookup));
    const out: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(f.adapter.variables)) out[k] = grads[v.name].dataSync() as Float32Array;
    return { value: value.dataSync()[0], grads: out };
  });
}

describe('interop: chunked loss and activation checkpointing on the example models', () => {
  before(useCpu);

  const cases: [string, string[], boolean, number][] = [
    ['tiny-gpt2', ['c_attn', 'c_proj', 'c_fc'], false, 0],
    ['tiny-gpt2', ['c_attn'], false, 0.2],
    ['tiny-llama', ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'], false, 0],
    ['tiny-llama', ['q_proj', 'v_proj'], true, 0.1],
  ];
  for (const [name, targets, dora, dropout] of cases) {
    it(`${name}${dora ? ' (DoRA)' : ''}${dropout ? `, LoRA dropout ${dropout}` : ''}: the chunked loss and a checkpointed step give the plain step's loss and LoRA gradients`, async () => {
      const f = await fixture(name, targets, dora);
      const before = tf.memory().numTensors;
      try {
        const plain = lossAndGrads(f, (lk) => causalLmLoss(f.model.forward(f.ids, lk), f.ids), dropout);
        const chunked = lossAndGrads(f, (lk) => causalLmTrainLoss(f.model, f.ids, lk), dropout);
        const ckpt = lossAndGrads(f, (lk) => causalLmTrainLoss(f.model, f.ids, lk, { checkpoint: true }), dropout);
        assert.ok(Math.abs(chunked.value - plain.value) <= 1e-6 * Math.abs(plain.value), `chunked loss ${chunked.value} vs ${plain.value}`);
        assert.equal(ckpt.value, chunked.value, 'the checkpointed forward is the same forward');
        assert.ok(Object.keys(plain.grads).length > 0);
        for (const k of Object.keys(plain.grads)) {
          assert.ok(plain.grads[k].some((x) => x !== 0), `${k}: zero gradient (the test would prove nothing)`);
          assert.ok(relDiff(chunked.grads[k], plain.grads[k]) <= 1e-5, `${k}: chunked loss gradient`);
          assert.ok(relDiff(ckpt.grads[k], chunked.grads[k]) <= 1e-6, `${k}: checkpointed gradient differs by ${relDiff(ckpt.grads[k], chunked.grads[k])}`);
        }
      } finally {
        f.adapter.dispose();
        f.ids.dispose();
        f.model.dispose();
      }
      // Nothing kept: the model's cached masks and tables go with it.
      assert.ok(tf.memory().numTensors <= before, `${tf.memory().numTensors - before} tensors leaked`);
    });
  }
});
