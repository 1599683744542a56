// Greedy generation against the real transformers + PEFT (../shared/pystack/python: transformers 4.39,
// PEFT 0.13.2 on Debian's python3-torch; peftGenerate.py): the same tokens as `model.generate(do_sample=False)`
// (which uses its key/value cache) on the PEFT fixtures and the tiny GPT-2 example. Skipped, saying so,
// only where python3-torch is not installed.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openPlaygroundSession, streamSide } from '../../../src/playground/session';
import { PEFT_FIXTURES, useCpu } from '../interop/helpers';

const ROOT = path.resolve(__dirname, '../../..');
const PYTHON = path.resolve(ROOT, '../shared/pystack/python');
const SCRIPT = path.join(__dirname, 'peftGenerate.py');
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const PROMPT = 'LoRA';
const NEW_TOKENS = 16;

interface Case {
  name: string;
  base: string;
  adapter: string | null;
}

const CASES: Case[] = [
  { name: 'llama-tiny-qkvo-r8 (LoRA on q, k, v, o)', base: path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'), adapter: path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/adapter') },
  { name: 'llama-tiny-dora (DoRA)', base: path.join(PEFT_FIXTURES, 'llama-tiny-dora/base'), adapter: path.join(PEFT_FIXTURES, 'llama-tiny-dora/adapter') },
  { name: 'llama-tiny base, no adapter', base: path.join(PEFT_FIXTURES, 'llama-tiny-qkvo-r8/base'), adapter: null },
  { name: 'examples/models/tiny-gpt2 base', base: path.join(ROOT, 'examples/models/tiny-gpt2'), adapter: null },
];

describe('playground: greedy generation equals transformers + PEFT generate', function () {
  this.timeout(120000);
  let reference: Record<string, { tokens: number[]; margins: number[] }>;

  before(async function () {
    if (!hasTorch) {
      console.log('    python3-torch is not installed: skipping the transformers + PEFT generate comparison');
      this.skip();
    }
    await useCpu();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-peft-generate-'));
    try {
      const file = path.join(tmp, 'cases.json');
      const ids = [...Buffer.from(PROMPT)];
      fs.writeFileSync(file, JSON.stringify(CASES.map((c) => ({ name: c.name, base: c.base, adapter: c.adapter, prompt_ids: ids, max_new_tokens: NEW_TOKENS }))));
      const r = spawnSync(PYTHON, [SCRIPT, file], { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } });
      if (r.status !== 0) throw new Error(`peftGenerate.py failed (exit ${r.status}):\n${r.stderr.slice(-4000)}`);
      reference = JSON.parse(r.stdout) as typeof reference;
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  for (const c of CASES) {
    it(`${c.name}: ${NEW_TOKENS} greedy tokens`, async () => {
      const session = await openPlaygroundSession(c.base, c.adapter ?? undefined);
      try {
        const got: number[] = [];
        const it = streamSide(session, c.adapter ? 'adapter' : 'base', { prompt: PROMPT, maxTokens: NEW_TOKENS, temperature: 0, ignoreEos: true });
        for (let r = await it.next(); !r.done; r = await it.next()) got.push(r.value.id);
        const want = reference[c.name];
        // Logits agree to ~1e-5 (the interop suites); a step whose best two logits are closer than that could
        // legitimately flip, and every later token with it. None of these cases has one (margins printed on failure).
        assert.deepEqual(got, want.tokens, `PEFT's per-step margins between the best two logits: ${want.margins.map((m) => m.toExponential(1)).join(', ')}`);
      } finally {
        session.dispose();
      }
    });
  }
});
