import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../../src/runs/backendSetup';
(async () => {
  await startBackend({ prefer: 'wasm', threads: 1 });
  const [N, H, V] = [256, 768, 50257];
  const h = tf.randomNormal([N, H]) as tf.Tensor2D; const wt = tf.randomNormal([H, V], 0, 0.02) as tf.Tensor2D;
  for (let k = 0; k < 2; k++) {
    let t = performance.now();
    const z = tf.matMul(h, wt);
    const a = performance.now() - t; t = performance.now();
    const s = tf.sum(z).dataSync();
    const b = performance.now() - t; t = performance.now();
    const d = z.dataSync();
    const c = performance.now() - t; t = performance.now();
    const sm = tf.softmax(z); tf.sum(sm).dataSync();
    console.log('matmul', a.toFixed(0), 'sum', b.toFixed(0), 'dataSync', c.toFixed(0), 'softmax', (performance.now() - t).toFixed(0), s[0], d.length);
    z.dispose(); sm.dispose();
  }
})();
