// The Parameters view's memory estimate for causal-lm runs, as a user reads it in the report: a real
// run of examples/models/tiny-gpt2 (trained here on the wasm backend, as `lora-lab train` would) and a
// copy of it pointed at a GPT-2-small config.json at batch 8 × seqLen 512 without checkpointing, which
// the training run would refuse. Every number shown equals estimateTrainingMemory on the run's configs
// and the backend run.json records; two parts are also worked out here from first principles (the
// heap's frozen tensors from the safetensors header, LoRA + AdamW from the shapes). Screenshot in the
// dark theme to test/.artifacts/.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeReport } from '../../src/cli/commands/report';
import type { ExperimentConfig } from '../../src/formats/experimentTypes';
import { parseHfConfig } from '../../src/formats/hfConfig';
import { causalLmMemoryInput, estimateTrainingMemory, WASM_HEAP_BYTES } from '../../src/formats/memoryEstimate';
import type { RunInfo } from '../../src/protocol/runFormat';
import { trainRun } from '../../src/runs/trainRun';
import { formatBytes } from '../../src/shared/format';
import { chromiumAvailable, openPage, screenshot } from './support/browser';
import { ensureWebviewBuilt } from './support/build';
import { tempDir } from './support/runs';

const EXAMPLES = path.resolve(__dirname, '../../examples/models');
const TINY_GPT2 = path.join(EXAMPLES, 'tiny-gpt2');
const GPT2_SMALL = { model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 };

interface Shown {
  label: string;
  parts: Record<string, { bytes: number; text: string }>;
  heading: string;
  assumption: string;
  verdict: string;
}

/** What each source's memory block shows, in the order of the sources. */
async function shownEstimates(page: import('playwright-core').Page): Promise<Shown[]> {
  return page.$$eval('.params-view .source-block', (blocks) =>
    blocks.map((b) => {
      const parts: Record<string, { bytes: number; text: string }> = {};
      for (const td of Array.from(b.querySelectorAll('[data-testid=memory-table] td[data-bytes]'))) {
        parts[td.getAttribute('data-testid')!.replace(/^memory-/, '')] = { bytes: Number(td.getAttribute('data-bytes')), text: td.firstChild?.textContent ?? '' };
      }
      return {
        label: b.querySelector('h2')?.textContent ?? '',
        parts,
        heading: b.querySelector('[data-testid=memory-estimate] h3')?.textContent ?? '',
        assumption: b.querySelector('[data-testid=memory-assumption]')?.textContent ?? '',
        verdict: b.querySelector('[data-testid=memory-verdict]')?.textContent ?? '',
      };
    }),
  );
}

/** Elements of the tensors of a safetensors file whose names pass `keep`, from its header. */
function headerElements(file: string, keep: (name: string, shape: number[]) => boolean): number {
  const raw = fs.readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>;
  return Object.entries(header)
    .filter(([k, v]) => k !== '__metadata__' && keep(k, v.shape))
    .reduce((acc, [, v]) => acc + v.shape.reduce((x, y) => x * y, 1), 0);
}

describe('dashboard Parameters view: the memory estimate (headless Chromium)', function () {
  this.timeout(120_000);
  let work: string;
  let tinyRun: string;
  let bigRun: string;

  before(async function () {
    if (!chromiumAvailable()) {
      console.log('    chromium not found at /usr/bin/chromium: skipping webview tests');
      this.skip();
    }
    ensureWebviewBuilt();
    work = tempDir('lora-lab-params-memory-');
    const cfgFile = path.join(work, 'tiny-gpt2.lora.json');
    fs.writeFileSync(
      cfgFile,
      JSON.stringify({
        name: 'tiny-gpt2',
        kind: 'causal-lm',
        model: { modelPath: TINY_GPT2, dataset: { path: path.join(EXAMPLES, 'lora-notes.txt'), seqLen: 32, evalFraction: 0.1, tokenizer: 'bytes' } },
        lora: { r: 8, alpha: 16, targetModules: ['c_attn'] },
        optimizer: { name: 'adamw', lr: 0.003 },
        training: { steps: 2, batchSize: 2, seed: 0, evalEvery: 0, checkpointEvery: 1 },
      }),
    );
    const res = await trainRun({ configPath: cfgFile, outDir: path.join(work, 'runs'), backend: 'wasm' });
    if (res.status !== 'completed') throw new Error(`tiny-gpt2 run ended ${res.status}: ${res.error ?? ''}`);
    tinyRun = res.runDir;
    // The same run's folder, its configs pointed at GPT-2 small at B8 × T512: the estimate only needs config.json.
    const small = path.join(work, 'gpt2-small');
    fs.mkdirSync(small);
    fs.writeFileSync(path.join(small, 'config.json'), JSON.stringify(GPT2_SMALL));
    bigRun = path.join(work, 'runs', 'gpt2-small-b8-t512');
    fs.cpSync(tinyRun, bigRun, { recursive: true });
    for (const d of ['checkpoints', 'adapter']) fs.rmSync(path.join(bigRun, d), { recursive: true, force: true });
    const info = JSON.parse(fs.readFileSync(path.join(bigRun, 'run.json'), 'utf8')) as RunInfo;
    fs.writeFileSync(path.join(bigRun, 'run.json'), JSON.stringify({ ...info, name: 'gpt2-small-b8-t512', baseModel: small, params: undefined }));
    const cfg = JSON.parse(fs.readFileSync(path.join(bigRun, 'config.json'), 'utf8')) as ExperimentConfig;
    if (cfg.model.kind !== 'causal-lm') throw new Error('not a causal-lm config');
    cfg.model.modelPath = small;
    cfg.model.dataset.seqLen = 512;
    cfg.training.batchSize = 8;
    fs.writeFileSync(path.join(bigRun, 'config.json'), JSON.stringify(cfg));
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('shows estimateTrainingMemory of each run on the backend it ran on; the GPT-2-small one would not fit', async () => {
    const html = path.join(work, 'memory.html');
    await writeReport([tinyRun, bigRun], html);
    const o = await openPage(`file://${html}`, { colorScheme: 'dark', width: 1400 });
    try {
      await o.page.click('[data-testid=tab-params]');
      const shown = await shownEstimates(o.page);
      assert.deepEqual(shown.map((s) => s.label), ['tiny-gpt2 r=8', 'gpt2-small-b8-t512 r=8']);

      const info = JSON.parse(fs.readFileSync(path.join(tinyRun, 'run.json'), 'utf8')) as RunInfo;
      // causalLmSession's rule: the native kernels (and frozen weights outside the heap) only on wasm with them.
      const native = info.backend.name === 'wasm' && info.backend.kernels !== undefined;
      const expected = (runDir: string, modelDir: string, stored?: number) => {
        const config = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as ExperimentConfig;
        const hf = parseHfConfig(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
        return estimateTrainingMemory(causalLmMemoryInput(config, hf, { nativeKernels: native, frozenOutsideHeap: native, storedWeightBytes: stored }));
      };
      const weights = path.join(TINY_GPT2, 'model.safetensors');
      const eTiny = expected(tinyRun, TINY_GPT2, fs.statSync(weights).size);
      const eBig = expected(bigRun, path.join(work, 'gpt2-small'));
      for (const [s, e] of [[shown[0], eTiny], [shown[1], eBig]] as const) {
        const want = { frozenWeights: e.frozenWeights, lora: e.lora, activations: e.activations, loss: e.loss, heap: e.heap, host: e.host, total: e.total };
        assert.deepEqual(Object.fromEntries(Object.entries(s.parts).map(([k, v]) => [k, v.bytes])), want, s.label);
        for (const [k, v] of Object.entries(s.parts)) assert.equal(v.text, formatBytes(v.bytes), `${s.label} ${k}`);
      }

      // By hand. LoRA r 8 on both c_attn layers of tiny-gpt2 (64 → 192): A, B, their gradients and AdamW's m and v, float32.
      assert.equal(shown[0].parts.lora.bytes, 2 * 8 * (64 + 192) * 4 * 4);
      // GPT-2 small: 12 c_attn layers (768 → 2304).
      assert.equal(shown[1].parts.lora.bytes, 12 * 8 * (768 + 2304) * 4 * 4);
      if (native) {
        // Outside the heap go the token embedding and every linear weight: the heap keeps the rank-1
        // tensors (LayerNorms, biases) and the position table, as float32.
        const kept = headerElements(weights, (name, shape) => shape.length === 1 || name.endsWith('wpe.weight'));
        assert.equal(shown[0].parts.frozenWeights.bytes, kept * 4);
        assert.match(shown[0].assumption, /^as this run ran: wasm with the native kernels, frozen weights outside the 4 GiB wasm heap$/);
      } else {
        // Everything in the heap as float32, with the tied output layer's transposed copy and more.
        assert.ok(shown[0].parts.frozenWeights.bytes > headerElements(weights, () => true) * 4);
      }

      assert.equal(shown[0].heading, 'Memory estimate (batch 2 × seqLen 32, AdamW, gradient checkpointing off)');
      assert.equal(shown[0].verdict, 'fits');
      assert.equal(shown[1].heading, 'Memory estimate (batch 8 × seqLen 512, AdamW, gradient checkpointing off)');
      if (info.backend.name === 'wasm') {
        assert.ok(eBig.heap > 0.9 * WASM_HEAP_BYTES);
        assert.match(shown[1].verdict, new RegExp(`^would not fit: the tensor heap needs ${formatBytes(eBig.heap).replace('.', '\\.')}, more than the 3\\.6 GiB usable of the wasm heap's 4 GiB\\. To fit: set training\\.gradientCheckpointing to true`));
        assert.match(shown[1].verdict, /; or lower training\.batchSize \(now 8; .*; or lower model\.dataset\.seqLen \(now 512; /);
      }
      await o.page.evaluate(() => window.scrollTo(0, 0));
      await screenshot(o.page, 'params-memory-dark');
      assert.deepEqual(await o.cspViolations(), []);
    } finally {
      await o.close();
    }
  });
});
