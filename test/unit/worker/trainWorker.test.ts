import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker } from '../../../src/protocol/worker';
import { loadRun } from '../../../src/runs/runStore';
import { REPO_ROOT, makeTmpDir, tinyExperiment, writeExperiment } from '../runs/tinyExperiment';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';

/**
 * The real worker script from source (what dist/worker.js is built from). tsx's CommonJS hook: with
 * `--import tsx` Node 20 resolves a worker's .ts entry before the ESM hooks are in place and refuses it.
 */
const TSX_CJS = path.join(REPO_ROOT, 'node_modules/tsx/dist/cjs/index.cjs');

function startWorker(onMessage: (m: FromWorker, w: Worker) => void): { worker: Worker; done: Promise<number> } {
  const worker = new Worker(path.join(REPO_ROOT, 'src/worker/trainWorker.ts'), { execArgv: ['--require', TSX_CJS] });
  worker.on('message', (m: FromWorker) => onMessage(m, worker));
  const done = new Promise<number>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', resolve);
  });
  return { worker, done };
}

describe('worker: trainWorker', function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => {
    tmp = makeTmpDir('worker');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains on the default backend, batches progress, and stops within one step of a cancel', async () => {
    // Steps of a few ms, so a step is long next to the message round trip.
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'worker', steps: 100_000, d: 192, batchSize: 192, checkpointEvery: 100_000 }));
    const messages: FromWorker[] = [];
    let cancelAtStep = -1;
    let startedAt = 0;
    const { worker, done } = startWorker((m, w) => {
      messages.push(m);
      if (m.type === 'didStart') startedAt = Date.now();
      // Let it run ~1.5 s (to measure the progress rate), then cancel.
      if (m.type === 'didProgress' && cancelAtStep < 0 && Date.now() - startedAt > 1500) {
        cancelAtStep = m.step;
        w.postMessage({ type: 'cancel' } satisfies ToWorker);
      }
    });
    worker.postMessage({ type: 'start', configPath: cfg, outDir: path.join(tmp, 'runs') } satisfies ToWorker);
    const exitCode = await done;
    assert.equal(exitCode, 0, 'the thread ends by itself after the run');

    const start = messages.find((m) => m.type === 'didStart') as Extract<FromWorker, { type: 'didStart' }>;
    assert.ok(start, JSON.stringify(messages.filter((m) => m.type === 'log')));
    assert.ok(['wasm', 'cpu', 'tensorflow'].includes(start.backend.name));
    const finish = messages[messages.length - 1] as Extract<FromWorker, { type: 'didFinish' }>;
    assert.equal(finish.type, 'didFinish');
    assert.equal(finish.status, 'cancelled');
    // The worker keeps training while the progress message and the cancel travel, so a few steps may
    // pass; promptness is counted in steps, which a loaded machine does not stretch.
    assert.ok(finish.step - cancelAtStep <= 10, `stopped at ${finish.step}, cancel sent at ${cancelAtStep}`);

    const progress = messages.filter((m) => m.type === 'didProgress') as Extract<FromWorker, { type: 'didProgress' }>[];
    const seconds = (Date.now() - startedAt) / 1000;
    assert.ok(progress.length <= Math.ceil(seconds * 4) + 2, `${progress.length} progress messages in ${seconds.toFixed(1)} s`);
    assert.ok(progress.some((p) => p.points.length > 1), 'points arrive in batches');

    const run = loadRun(finish.runDir);
    assert.equal(run.info.status, 'cancelled');
    assert.equal(run.info.backend.name, start.backend.name);
    assert.equal(run.checkpoints[run.checkpoints.length - 1], finish.step);
  });

  it('threads: 2 without native kernels trains on the threaded wasm build and the thread still exits by itself', async function () {
    if (typeof SharedArrayBuffer !== 'function') this.skip();
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'threads', steps: 10 }), 'threads.lora.json');
    const messages: FromWorker[] = [];
    // The worker copies process.env when it starts.
    const saved = process.env.LORA_LAB_NATIVE;
    process.env.LORA_LAB_NATIVE = '0';
    let started: ReturnType<typeof startWorker>;
    try {
      started = startWorker((m) => messages.push(m));
    } finally {
      if (saved === undefined) delete process.env.LORA_LAB_NATIVE;
      else process.env.LORA_LAB_NATIVE = saved;
    }
    const { worker, done } = started;
    worker.postMessage({ type: 'start', configPath: cfg, outDir: path.join(tmp, 'runs'), threads: 2 } satisfies ToWorker);
    assert.equal(await done, 0);
    const start = messages.find((m) => m.type === 'didStart') as Extract<FromWorker, { type: 'didStart' }>;
    assert.ok(start, JSON.stringify(messages));
    assert.deepEqual([start.backend.name, start.backend.threads, start.backend.kernels], ['wasm', 2, undefined]);
    assert.equal((messages[messages.length - 1] as { status?: string }).status, 'completed');
  });

  it('threads: 2 with native kernels loads them in the worker thread and gives them the threads', async function () {
    if (!loadNativeKernels({}).kernels) this.skip();
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'threads-native', steps: 10 }), 'threads-native.lora.json');
    const messages: FromWorker[] = [];
    const { worker, done } = startWorker((m) => messages.push(m));
    worker.postMessage({ type: 'start', configPath: cfg, outDir: path.join(tmp, 'runs'), threads: 2 } satisfies ToWorker);
    assert.equal(await done, 0);
    const start = messages.find((m) => m.type === 'didStart') as Extract<FromWorker, { type: 'didStart' }>;
    assert.ok(start, JSON.stringify(messages));
    assert.deepEqual([start.backend.name, start.backend.threads], ['wasm', 1]);
    assert.match(start.backend.kernels ?? '', /^native \w+ kernels, 2 threads/);
    assert.equal((messages[messages.length - 1] as { status?: string }).status, 'completed');
  });

  it('reports a bad config as a log error and a failed finish, then exits', async () => {
    const messages: FromWorker[] = [];
    const { worker, done } = startWorker((m) => messages.push(m));
    worker.postMessage({ type: 'start', configPath: path.join(tmp, 'nope.lora.json') } satisfies ToWorker);
    assert.equal(await done, 0);
    assert.ok(messages.some((m) => m.type === 'log' && m.level === 'error' && /nope\.lora\.json: no such file/.test(m.message)));
    const finish = messages[messages.length - 1];
    assert.equal(finish.type, 'didFinish');
    assert.equal((finish as { status: string }).status, 'failed');
  });
});
