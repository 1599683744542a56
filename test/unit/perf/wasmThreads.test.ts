// wasm threads in Node (src/engine/wasmThreads.ts): the threaded-simd build starts with the pool
// size asked for (not tfjs's half-the-cores cap) and computes what the cpu backend computes. Runs in
// a child process: the pthread workers must not outlive the test run.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { wasmThreadsSupported } from '../../../src/engine/wasmThreads';

describe('perf: wasm threads in Node', function () {
  this.timeout(60_000);

  it('starts the threaded backend with 2 threads and matches the cpu backend', async function () {
    assert.ok(wasmThreadsSupported(), 'Node 20 has SharedArrayBuffer and wasm atomics');
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'threadedWasmProbe.ts')], { encoding: 'utf8', timeout: 50_000 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, `probe printed nothing (exit ${r.status}): ${r.stderr.slice(-500)}`);
    const got = JSON.parse(line) as { error?: string; ok: boolean; backend: string; threads: number; batched: number[]; plain: number[] };
    assert.equal(got.error, undefined);
    assert.equal(got.ok, true);
    assert.equal(got.backend, 'wasm');
    assert.equal(got.threads, 2);

    const previous = tf.getBackend();
    await tf.setBackend('cpu');
    const want = tf.tidy(() => {
      const a = tf.tensor3d(Array.from({ length: 3 * 40 * 24 }, (_, i) => Math.sin(i)), [3, 40, 24]);
      const b = tf.tensor3d(Array.from({ length: 3 * 30 * 24 }, (_, i) => Math.cos(i)), [3, 30, 24]);
      const x = tf.tensor2d(Array.from({ length: 64 * 128 }, (_, i) => Math.sin(i * 0.37)), [64, 128]);
      const w = tf.tensor2d(Array.from({ length: 128 * 96 }, (_, i) => Math.cos(i * 0.11)), [128, 96]);
      return { batched: tf.matMul(a, b, false, true).dataSync(), plain: tf.matMul(x, w).dataSync() };
    });
    if (previous) await tf.setBackend(previous);
    for (const k of ['batched', 'plain'] as const) {
      assert.equal(got[k].length, want[k].length);
      for (let i = 0; i < want[k].length; i++) assert.ok(Math.abs(got[k][i] - want[k][i]) < 1e-4 * (1 + Math.abs(want[k][i])), `${k}[${i}]`);
    }
  });
});
