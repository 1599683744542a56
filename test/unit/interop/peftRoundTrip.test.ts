// Round trip with the real PEFT (../shared/pystack/python: transformers 4.39, PEFT 0.13.2 on Debian's
// python3-torch), on float32 copies of the tiny example models:
// (a) every adapter kind LoRA Lab trains loads in PEFT with no missing or unexpected keys, PEFT's logits
//     equal `lora-lab logits` within 1e-4 and its merge_and_unload equals `lora-lab merge` within 1e-5;
// (b) adapters PEFT saves for the features LoRA Lab reads (bias="all", unconverted PiSSA / OLoRA,
//     embedding / lm_head targets, resized vocabularies, rank_pattern from 0.13 and with peft_version,
//     modules_to_save (also on GPT-2's tied lm_head), DoRA on Conv1D, regex targets, layers_to_transform)
//     load in LoRA Lab with the same tolerances,
//     and every merged folder LoRA Lab writes loads in transformers with no missing or unexpected keys.
// Everything is made at test time from fixed seeds (peftRoundTrip.py). Skipped, saying so, only where
// python3-torch is not installed. LORA_LAB_ROUNDTRIP_TABLE=1 prints the table of max |Δ|.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { maxAbsDiff, useCpu, openCausalLm } from './helpers';
import { logitsCommand } from '../../../src/cli/commands/logits';
import { mergeCommand } from '../../../src/cli/commands/merge';
import { parseSafetensors, serializeSafetensors } from '../../../src/formats/safetensors';
import type { ExperimentConfig, LoraSettings } from '../../../src/formats/experimentTypes';

const ROOT = path.resolve(__dirname, '../../..');
const PYTHON = path.resolve(ROOT, '../shared/pystack/python');
const SCRIPT = path.join(__dirname, 'peftRoundTrip.py');
const EXAMPLES = path.join(ROOT, 'examples/models');
const LOGITS_TOL = 1e-4;
const MERGE_TOL = 1e-5;

// The pystack runs on the system Python (/usr/bin/python3), where Debian's python3-torch installs torch.
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

function py(...args: string[]): string {
  const r = spawnSync(PYTHON, [SCRIPT, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } });
  if (r.status !== 0) throw new Error(`peftRoundTrip.py ${args[0]} failed (exit ${r.status}):\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** Runs a CLI command in this process (no child process per call), keeping its stdout out of the test output. */
async function run(cmd: { run(argv: string[]): number | void | Promise<number | void> }, ...argv: string[]): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  const err = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    const code = await cmd.run(argv);
    assert.ok(code === undefined || code === 0, `exit ${code}`);
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
  return out;
}

function readLogits(file: string): number[] {
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { data: number[] }).data;
}

/** max |Δ| over the tensors of LoRA Lab's merged folder against PEFT's merge_and_unload state dict, same names. */
function mergeDiff(loraLabDir: string, peftFile: string, baseDir: string, extra: string[] = []): number {
  const got = parseSafetensors(fs.readFileSync(path.join(loraLabDir, 'model.safetensors')));
  const want = parseSafetensors(fs.readFileSync(peftFile));
  const base = parseSafetensors(fs.readFileSync(path.join(baseDir, 'model.safetensors')));
  // The merged checkpoint has exactly the base checkpoint's tensors (and an untied lm_head where expected).
  assert.deepEqual(got.names().sort(), [...base.names(), ...extra].sort(), `${loraLabDir}: tensor names differ from the base checkpoint's`);
  let worst = 0;
  for (const n of got.names()) {
    assert.ok(want.has(n), `PEFT's merged model has no "${n}"`);
    assert.deepEqual(got.entry(n).shape, want.entry(n).shape, n);
    worst = Math.max(worst, maxAbsDiff(got.toFloat32(n), want.toFloat32(n)));
  }
  return worst;
}

interface Row {
  kind: string;
  direction: 'LoRA Lab → PEFT' | 'PEFT → LoRA Lab';
  logits: number;
  merge: number;
  mergedLogits?: number;
}

function experiment(modelPath: string, lora: Partial<LoraSettings>, dataset: string): ExperimentConfig {
  return {
    name: 'round-trip',
    kind: 'causal-lm',
    outputDir: 'lora-runs',
    model: { kind: 'causal-lm', modelPath, dataset: { path: dataset, seqLen: 16, evalFraction: 0.1, tokenizer: 'bytes' } },
    lora: { r: 4, alpha: 8, scaling: 'standard', dropout: 0, init: 'kaiming-uniform', targetModules: ['q_proj', 'v_proj'], trainBias: false, useDora: false, ...lora },
    optimizer: { name: 'adamw', lr: 0.05, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 1 },
    schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
    training: { steps: 3, batchSize: 2, seed: 11, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, logEvery: 0 },
  };
}

/** The adapter kinds LoRA Lab trains (LoRA Lab adapts linear layers; it trains no embedding LoRA). */
const TRAINED: { kind: string; base: 'base-llama' | 'base-gpt2'; lora: Partial<LoraSettings> }[] = [
  { kind: 'plain (Llama q/v)', base: 'base-llama', lora: {} },
  { kind: 'rsLoRA', base: 'base-llama', lora: { scaling: 'rslora', alpha: 6 } },
  { kind: 'DoRA', base: 'base-llama', lora: { useDora: true, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] } },
  { kind: 'Conv1D (GPT-2)', base: 'base-gpt2', lora: { targetModules: ['c_attn', 'c_proj', 'c_fc'] } },
  { kind: 'DoRA on Conv1D (GPT-2)', base: 'base-gpt2', lora: { useDora: true, targetModules: ['c_attn'] } },
  { kind: 'all-linear', base: 'base-llama', lora: { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
  { kind: 'scaling "none" (α 16, r 4)', base: 'base-llama', lora: { scaling: 'none', alpha: 16 } },
  { kind: 'trained biases (GPT-2, bias "lora_only")', base: 'base-gpt2', lora: { targetModules: ['c_attn', 'c_fc'], trainBias: true } },
];

describe('interop: round trip with the real PEFT 0.13.2', function () {
  // Two Python processes, each paying torch's start-up, and tiny models per case.
  this.timeout(300000);
  let tmp: string;
  let ids: string;
  let peftCases: Record<string, { base: string; saved: string[] }> = {};
  const rows: Row[] = [];
  /** What the one `check` run gives per case, filled in by the first test that needs it. */
  let checked: Record<string, { unexpected?: string[]; missing?: string[]; scaling?: number[]; logits?: number[]; merged_file?: string; merged_load?: { missing: string[]; unexpected: string[]; mismatched: string[] }; merged_dir_logits?: number[] }> | undefined;
  const checkCases: Record<string, { base: string; probe: number[][]; adapter?: string; merged_dir?: string }> = {};
  const trained: Record<string, { base: string; adapter: string; logits: string; merged: string }> = {};

  before(async function () {
    if (!hasTorch) {
      console.log('    (skipped: python3-torch is not installed; `.ci/run` installs it with the pystack packages, see ../shared/pystack/README.md)');
      this.skip();
    }
    await useCpu();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lab-peft-rt-'));
    py('bases', tmp, EXAMPLES);
    py('make', tmp);
    peftCases = JSON.parse(fs.readFileSync(path.join(tmp, 'peft/cases.json'), 'utf8'));
    const probe = (JSON.parse(fs.readFileSync(path.join(tmp, 'peft/llama-plain/reference.json'), 'utf8')) as { probe: number[][] }).probe;
    ids = path.join(tmp, 'ids.json');
    fs.writeFileSync(ids, JSON.stringify(probe));

    // (a) LoRA Lab trains each kind (3 steps: B moves off zero), exports, and runs `logits` and `merge` on it.
    for (const [i, t] of TRAINED.entries()) {
      const session = await openCausalLm(experiment(t.base, t.lora, path.join(EXAMPLES, 'lora-notes.txt')), tmp);
      for await (const _ of session.run()) void _;
      const exported = session.exportAdapter();
      session.dispose();
      const dir = path.join(tmp, `lora-lab-${i}`);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(exported.config, null, 2));
      fs.writeFileSync(
        path.join(dir, 'adapter_model.safetensors'),
        serializeSafetensors(Object.fromEntries(Object.entries(exported.tensors).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])), { format: 'pt' }),
      );
      const logits = path.join(tmp, `lora-lab-${i}-logits.json`);
      await run(logitsCommand, '--model', path.join(tmp, t.base), '--adapter', dir, '--input-ids', ids, '--out', logits, '--backend', 'cpu', '--json');
      const merged = path.join(tmp, `lora-lab-${i}-merged`);
      await run(mergeCommand, '--model', path.join(tmp, t.base), '--adapter', dir, '--out', merged, '--json');
      trained[t.kind] = { base: path.join(tmp, t.base), adapter: dir, logits, merged };
      checkCases[`a:${t.kind}`] = { base: t.base, probe, adapter: dir, merged_dir: merged };
    }
    // (b) LoRA Lab reads each PEFT-saved adapter: logits and merge.
    for (const [name, c] of Object.entries(peftCases)) {
      const dir = path.join(tmp, 'peft', name);
      await run(logitsCommand, '--model', path.join(tmp, c.base), '--adapter', path.join(dir, 'adapter'), '--input-ids', ids, '--out', path.join(dir, 'lora-lab-logits.json'), '--backend', 'cpu', '--json');
      await run(mergeCommand, '--model', path.join(tmp, c.base), '--adapter', path.join(dir, 'adapter'), '--out', path.join(dir, 'lora-lab-merged'), '--json');
      checkCases[`b:${name}`] = { base: c.base, probe, merged_dir: path.join(dir, 'lora-lab-merged') };
    }
    await useCpu();
    fs.writeFileSync(path.join(tmp, 'check.json'), JSON.stringify(checkCases));
    checked = JSON.parse(py('check', tmp, path.join(tmp, 'check.json')));
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (process.env.LORA_LAB_ROUNDTRIP_TABLE === '1' && rows.length) {
      const fmt = (x: number | undefined) => (x === undefined ? '' : x.toExponential(1));
      console.log(['', '| adapter kind | direction | max |Δ| logits | max |Δ| merge | merged-folder logits |', '|---|---|---|---|---|', ...rows.map((r) => `| ${r.kind} | ${r.direction} | ${fmt(r.logits)} | ${fmt(r.merge)} | ${fmt(r.mergedLogits)} |`)].join('\n'));
    }
  });

  for (const t of TRAINED) {
    it(`LoRA Lab → PEFT: ${t.kind}`, () => {
      const c = checked![`a:${t.kind}`];
      const mine = trained[t.kind];
      assert.deepEqual(c.unexpected, [], 'PEFT reports unexpected keys');
      assert.deepEqual(c.missing, [], 'PEFT reports missing LoRA keys');
      if (t.lora.scaling === 'none') assert.deepEqual(c.scaling, [1], "PEFT's scale for scaling \"none\"");
      const logits = maxAbsDiff(readLogits(mine.logits), c.logits!);
      const merge = mergeDiff(mine.merged, c.merged_file!, mine.base);
      assert.deepEqual(c.merged_load, { missing: [], unexpected: [], mismatched: [] }, 'transformers loading the merged folder');
      const mergedLogits = maxAbsDiff(c.merged_dir_logits!, c.logits!);
      rows.push({ kind: t.kind, direction: 'LoRA Lab → PEFT', logits, merge, mergedLogits });
      assert.ok(logits <= LOGITS_TOL, `logits max |Δ| ${logits}`);
      assert.ok(merge <= MERGE_TOL, `merge max |Δ| ${merge}`);
      assert.ok(mergedLogits <= LOGITS_TOL, `merged folder (transformers) vs PEFT logits max |Δ| ${mergedLogits}`);
    });
  }

  const PEFT_KINDS = [
    'llama-plain', 'llama-rslora-all-linear', 'llama-dora', 'gpt2-conv1d-dora', 'gpt2-bias-all', 'llama-pissa', 'llama-olora',
    'llama-embed-lm-head', 'llama-resized-vocab', 'llama-rank-pattern-0.13', 'llama-rank-pattern-peft-version', 'llama-modules-to-save', 'gpt2-modules-to-save-tied-lm-head', 'llama-regex-targets', 'gpt2-layers-to-transform',
  ];
  for (const name of PEFT_KINDS) {
    it(`PEFT → LoRA Lab: ${name}`, () => {
      assert.ok(peftCases[name], `peftRoundTrip.py made no case "${name}"`);
      const dir = path.join(tmp, 'peft', name);
      const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as { logits: number[]; loaded_logits: number[]; merged_logits: number[] };
      // PEFT's own model before saving and after loading agree (PiSSA/OLoRA: PEFT rebuilt the residual).
      assert.ok(maxAbsDiff(ref.logits, ref.loaded_logits) <= 1e-5, 'PEFT before save vs after load');
      const logits = maxAbsDiff(readLogits(path.join(dir, 'lora-lab-logits.json')), ref.loaded_logits);
      const merge = mergeDiff(path.join(dir, 'lora-lab-merged'), path.join(dir, 'merged.safetensors'), path.join(tmp, peftCases[name].base), name.includes('tied-lm-head') ? ['lm_head.weight'] : []);
      const c = checked![`b:${name}`];
      assert.deepEqual(c.merged_load, { missing: [], unexpected: [], mismatched: [] }, 'transformers loading the merged folder');
      const mergedLogits = maxAbsDiff(c.merged_dir_logits!, ref.merged_logits);
      rows.push({ kind: name, direction: 'PEFT → LoRA Lab', logits, merge, mergedLogits });
      assert.ok(logits <= LOGITS_TOL, `logits max |Δ| ${logits}`);
      assert.ok(merge <= MERGE_TOL, `merge max |Δ| ${merge}`);
      assert.ok(mergedLogits <= LOGITS_TOL, `merged folder (transformers) vs merge_and_unload logits max |Δ| ${mergedLogits}`);
    });
  }
});
