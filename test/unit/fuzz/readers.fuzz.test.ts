// Mutation fuzzing of the readers (test/unit/fuzz/fuzzCore.ts): a few thousand seeded cases from the
// committed seed corpus through the safetensors parser and file readers, inspect, the PEFT and
// Hugging Face config parsers and the experiment-config parser, in a worker thread. Each case must end
// in a result or a typed error (no other exception); a case that makes no progress for 30 s is a hang
// and the worker is stopped; the worker's heap is capped and the process's resident size checked.
// Every file in test/fixtures/fuzz/crashers is replayed.
//
// The longer campaign: LORA_LAB_FUZZ_CASES=200000 [LORA_LAB_FUZZ_SEED=n] npm run fuzz
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CRASHERS_DIR, DRIVERS, cleanupTmp, crasherName, driverOfCrasher, loadCorpus, makeCase, runCase } from './fuzzCore';
import type { FuzzResult, FuzzWorkerData } from './fuzzWorker';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const TSX_CJS = path.join(REPO_ROOT, 'node_modules/tsx/dist/cjs/index.cjs');
const CASES = Number(process.env.LORA_LAB_FUZZ_CASES ?? 4000);
const SEED = Number(process.env.LORA_LAB_FUZZ_SEED ?? 20261206);
/** No case may go this long without finishing: a hang, not slowness. */
const HANG_MS = 30_000;
const HEAP_MB = 512;
const RSS_GROWTH_BYTES = 1024 * 2 ** 20;

/** Writes a failing case where a developer can pick it up, and says where. */
function saveCase(index: number): string {
  const corpus = loadCorpus();
  const c = makeCase(corpus, SEED, index);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-fuzz-crasher-'));
  const file = path.join(dir, crasherName(c, SEED, index));
  fs.writeFileSync(file, c.bytes);
  return `case ${index} (${c.driver}, from seed ${c.seed}); its input is ${file} — copy it into test/fixtures/fuzz/crashers/ with the fix`;
}

describe('fuzz: readers under seeded mutations', function () {
  this.timeout(HANG_MS + CASES * 200 + 60_000);

  it(`${CASES} cases (seed ${SEED}): a result or a typed error each, no other exception, no hang, bounded memory`, async function () {
    const progress = new SharedArrayBuffer(4);
    const data: FuzzWorkerData = { seed: SEED, start: 0, count: CASES, progress, maxRssBytes: process.memoryUsage.rss() + RSS_GROWTH_BYTES };
    const worker = new Worker(path.join(__dirname, 'fuzzWorker.ts'), {
      execArgv: ['--require', TSX_CJS],
      workerData: data,
      resourceLimits: { maxOldGenerationSizeMb: HEAP_MB },
    });
    const current = new Int32Array(progress);
    const started = Date.now();
    const result = await new Promise<FuzzResult>((resolve, reject) => {
      let last = 0;
      let lastAt = Date.now();
      const watchdog = setInterval(() => {
        const now = Atomics.load(current, 0);
        if (now !== last) {
          last = now;
          lastAt = Date.now();
        } else if (Date.now() - lastAt > HANG_MS) {
          clearInterval(watchdog);
          void worker.terminate();
          reject(new Error(`hang: no progress for ${HANG_MS / 1000} s at ${saveCase(now - 1)}`));
        }
      }, 500);
      worker.once('message', (m: FuzzResult) => {
        clearInterval(watchdog);
        resolve(m);
      });
      worker.once('error', (e) => {
        clearInterval(watchdog);
        // ERR_WORKER_OUT_OF_MEMORY: the heap cap was hit.
        reject(new Error(`the fuzz worker died (${(e as NodeJS.ErrnoException).code ?? e.message}) at ${saveCase(Atomics.load(current, 0) - 1)}`));
      });
    });
    await worker.terminate();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const table = DRIVERS.map((d) => `${d} ${result.counts[d].ok} ok / ${result.counts[d]['typed-error']} typed errors`).join('; ');
    console.log(`      ${result.cases} cases in ${seconds} s, peak RSS ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MiB: ${table}`);
    assert.equal(result.memoryFailure, undefined, result.memoryFailure && `memory: RSS ${(result.memoryFailure.rssBytes / 2 ** 20).toFixed(0)} MiB at ${saveCase(result.memoryFailure.index)}`);
    if (result.crashers.length) {
      const lines = result.crashers.slice(0, 5).map((c) => `${saveCase(c.index)}\n    ${c.error.split('\n').slice(0, 4).join('\n    ')}`);
      assert.fail(`${result.crashers.length} case(s) threw something other than a typed error:\n${lines.join('\n')}`);
    }
    assert.equal(result.cases, CASES);
    // The mutations reach past the first check: every driver had both outcomes.
    for (const d of DRIVERS) assert.ok(result.counts[d].ok > 0 && result.counts[d]['typed-error'] > 0, `${d}: ${JSON.stringify(result.counts[d])}`);
  });

  it('every saved crasher (test/fixtures/fuzz/crashers) ends in a result or a typed error', async function () {
    const corpus = loadCorpus();
    const files = fs.existsSync(CRASHERS_DIR) ? fs.readdirSync(CRASHERS_DIR).filter((f) => !f.startsWith('.') && !f.endsWith('.md')) : [];
    try {
      for (const f of files) {
        const driver = driverOfCrasher(f);
        assert.ok(driver, `${f}: the name must start with a driver (${DRIVERS.join(', ')}) and "--"`);
        await runCase(corpus, { driver, seed: f, bytes: new Uint8Array(fs.readFileSync(path.join(CRASHERS_DIR, f))) });
      }
    } finally {
      cleanupTmp();
    }
  });
});
