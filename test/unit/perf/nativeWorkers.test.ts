// The native kernels loaded only by worker threads, one after another, as in VS Code's extension host
// (its main thread never loads them): Node unloads an addon when the last worker that loaded it exits,
// which used to leave the thread pool asleep in unmapped code, so the next worker's product hung or
// crashed. The library now pins itself (native/src/binding.c, pin_library; -z nodelete).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { loadNativeKernels, nativeCandidates } from '../../../src/runs/nativeLoader';
import * as fs from 'node:fs';

describe('perf: native kernels in worker threads only', function () {
  this.timeout(90_000);

  it('four workers in turn load the addon, multiply on 2 threads, exit; the process ends cleanly', function () {
    if (!loadNativeKernels({}).kernels) this.skip();
    const file = nativeCandidates().find((p) => fs.existsSync(p))!;
    // A fresh process: in this one the main thread has loaded the addon already (which hides the bug).
    const script = `
      const { Worker } = require('node:worker_threads');
      const body = \`
        const nk = require(${JSON.stringify(file)});
        nk.setThreads(2);
        const m = 96, k = 300, n = 200;
        const a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(2), c = new Float32Array(m * n);
        for (let i = 0; i < 10; i++) nk.gemm(a, 0, b, 0, c, 0, null, 0, 1, m, n, k, i & 3);
        const e = new Float32Array(4096).fill(1);
        nk.exp(e, 0, e, 0, e.length);
        require('node:worker_threads').parentPort.postMessage([c[0], c[c.length - 1], e[4095]]);
      \`;
      (async () => {
        for (let i = 0; i < 4; i++) {
          await new Promise((resolve, reject) => {
            const w = new Worker(body, { eval: true });
            w.on('message', (v) => console.log(JSON.stringify(v)));
            w.on('error', reject);
            w.on('exit', resolve);
          });
        }
        console.log('done');
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, null, `the process was killed by ${r.signal} (a hang or a crash): ${r.stdout} ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.pop(), 'done');
    assert.equal(lines.length, 4);
    for (const l of lines) assert.deepEqual(JSON.parse(l), [300, 300, Math.fround(Math.E)]);
  });
});
