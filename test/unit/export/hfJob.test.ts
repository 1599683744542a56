// `lora-lab export` against the real Hugging Face stack (../shared/pystack: transformers 4.39, PEFT 0.13,
// accelerate 0.34 on Debian's torch 1.13): the exported train.py, run on the CPU in one process and in two
// (gloo), trains the same loss curve as LoRA Lab's own run of the experiment, and its run folder reads
// like one of ours. The refusals need no Python.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { parse as parseYaml } from 'yaml';
import { exportJob, type JobSpec } from '../../../src/export/exportJob';
import { ExportError } from '../../../src/export/exportError';
import { trainRun } from '../../../src/runs/trainRun';
import { loadRun } from '../../../src/runs/runStore';
import { loadPeftAdapterDir, loadHfFolder } from '../../../src/io/hfFolder';
import { buildCausalLm } from '../../../src/models/buildCausalLm';
import { attachPeftAdapter } from '../../../src/models/peftAdapter';
import { idsTensor } from '../../../src/models/causalLm';
import { loadRunSource } from '../../../src/dashboard/dashboardData';
import { useCpu } from '../interop/helpers';

const REPO = path.resolve(__dirname, '../../..');
const EXAMPLES = path.join(REPO, 'examples');
const PYSTACK = path.resolve(REPO, '../shared/pystack/python');
const STEPS = 20;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lora-export-'));
}

/** An example experiment shortened to `steps`, with absolute paths, written as JSON into `dir`. */
function exampleConfig(dir: string, name: 'tiny-llama' | 'tiny-gpt2', patch: (c: Record<string, any>) => void = () => {}): string {
  const c: Record<string, any> = {
    name,
    kind: 'causal-lm',
    model: { modelPath: path.join(EXAMPLES, 'models', name), dataset: { path: path.join(EXAMPLES, 'models/lora-notes.txt'), seqLen: 64, tokenizer: 'bytes' } },
    lora: name === 'tiny-llama' ? { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] } : { r: 8, alpha: 16, targetModules: ['c_attn'] },
    optimizer: { name: 'adamw', lr: 0.003 },
    schedule: { name: 'cosine', warmupSteps: 5 },
    training: { steps: STEPS, batchSize: 8, seed: 0, evalEvery: 10 },
  };
  patch(c);
  const file = path.join(dir, `${name}.lora.json`);
  fs.writeFileSync(file, JSON.stringify(c, null, 2));
  return file;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Runs the job (one process, or `procs` gloo processes through launch.sh); resolves with the output. */
function runJob(job: string, outDir: string, procs: number, port: number, extra: string[] = [], onStart?: (p: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; output: string }> {
  const env = { ...process.env, PYTHON: PYSTACK, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' };
  const cmd = procs > 1 ? path.join(job, 'launch.sh') : PYSTACK;
  const args = procs > 1 ? ['--cpu-procs', String(procs), '--master-port', String(port), '--', '--output-dir', outDir, ...extra] : [path.join(job, 'train.py'), '--use-cpu', '--output-dir', outDir, ...extra];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
    onStart?.(p);
  });
}

const readMetrics = (runDir: string) => loadRun(runDir).metrics;

function worstRelative(a: { step: number; loss: number }[], b: { step: number; loss: number }[]): number {
  assert.deepEqual(
    b.map((p) => p.step),
    a.map((p) => p.step),
    'the same logged steps',
  );
  return Math.max(...a.map((p, i) => Math.abs(p.loss - b[i].loss) / Math.abs(p.loss)));
}

describe('lora-lab export: refusals and the job folder', () => {
  let dir: string;
  before(() => (dir = tmpDir()));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses the built-in synthetic experiments by name, writing nothing', async () => {
    for (const [file, kind] of [
      ['low-rank-recovery.lora.json', 'low-rank-recovery'],
      ['attention-adaptation.lora.json', 'attention-adaptation'],
    ]) {
      const out = path.join(dir, `job-${kind}`);
      await assert.rejects(exportJob({ configPath: path.join(EXAMPLES, file), outDir: out }), (e: unknown) => {
        assert.ok(ExportError.is(e, 'not-expressible'));
        assert.match((e as Error).message, new RegExp(`kind "${kind}".*cannot express|kind "${kind}".*no equivalent`));
        return true;
      });
      assert.equal(fs.existsSync(out), false);
    }
  });

  it('never writes into a folder that already has files', async () => {
    const out = path.join(dir, 'busy');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
    await assert.rejects(exportJob({ configPath: exampleConfig(dir, 'tiny-llama'), outDir: out }), (e: unknown) => ExportError.is(e, 'out-not-empty') && /busy/.test((e as Error).message));
    assert.deepEqual(fs.readdirSync(out), ['keep.txt']);
  });

  it('refuses --init-from of a run of another experiment, naming the field', async () => {
    const runDir = path.join(dir, 'other-run');
    fs.mkdirSync(runDir);
    const other = JSON.parse(fs.readFileSync(exampleConfig(dir, 'tiny-llama', (c) => (c.lora.r = 4)), 'utf8'));
    const { parseExperimentConfig } = await import('../../../src/formats/experimentConfig');
    fs.writeFileSync(path.join(runDir, 'config.json'), JSON.stringify(parseExperimentConfig(JSON.stringify(other), 'x.lora.json').config));
    fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify({ formatVersion: 1, runId: 'other', status: 'completed', createdAt: '', updatedAt: '' }));
    await assert.rejects(
      exportJob({ configPath: exampleConfig(dir, 'tiny-llama'), outDir: path.join(dir, 'job-other'), initFrom: runDir }),
      (e: unknown) => ExportError.is(e, 'init-from') && /lora is .*"r":4/.test((e as Error).message),
    );
    await assert.rejects(exportJob({ configPath: exampleConfig(dir, 'tiny-llama'), outDir: path.join(dir, 'job-x'), initFrom: path.join(dir, 'nowhere') }), (e: unknown) => ExportError.is(e, 'init-from'));
  });

  it('writes train.py, launch.sh, requirements.txt, README.md, the data and a LoraConfig equal to the experiment', async () => {
    await useCpu();
    const out = path.join(dir, 'job');
    const r = await exportJob({ configPath: exampleConfig(dir, 'tiny-gpt2', (c) => Object.assign(c.lora, { dropout: 0.05, scaling: 'rslora' })), outDir: out, initFrom: '3' });
    for (const f of ['train.py', 'launch.sh', 'requirements.txt', 'README.md', 'experiment.json', 'data/lora-notes.txt', 'init/adapter_model.safetensors', 'init/data_order.json']) {
      assert.ok(fs.existsSync(path.join(out, f)), f);
    }
    assert.ok((fs.statSync(path.join(out, 'launch.sh')).mode & 0o111) !== 0, 'launch.sh is executable');
    const spec = JSON.parse(fs.readFileSync(path.join(out, 'experiment.json'), 'utf8')) as JobSpec;
    assert.deepEqual(spec.peft, { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['c_attn'], bias: 'none', use_rslora: true, use_dora: false });
    assert.equal(spec.experiment.training.seed, 3, '--init-from SEED sets the seed');
    assert.equal(spec.expected.trainWindows + spec.expected.evalWindows, Math.floor(spec.expected.totalTokens / 64));
    const order = JSON.parse(fs.readFileSync(path.join(out, 'init/data_order.json'), 'utf8')) as { indices: number[] };
    assert.equal(order.indices.length, STEPS * 8);
    assert.ok(order.indices.every((i) => Number.isInteger(i) && i >= 0 && i < spec.expected.trainWindows));
    assert.ok(r.notes.some((n) => /dropout 0\.05.*masks/.test(n)), 'says why dropout curves differ');
    assert.match(fs.readFileSync(path.join(out, 'README.md'), 'utf8'), /dropout 0\.05/);
    assert.doesNotMatch(fs.readFileSync(path.join(out, 'README.md'), 'utf8') + fs.readFileSync(path.join(out, 'requirements.txt'), 'utf8'), /\{\{\w+\}\}/);
  });

  it('writes a SkyPilot task and a Slurm batch script for the job (not run), both valid', async () => {
    const out = path.join(dir, 'job-cluster');
    await exportJob({ configPath: exampleConfig(dir, 'tiny-llama', (c) => (c.name = 'Tiny Llama_v2')), outDir: out });
    const sky = parseYaml(fs.readFileSync(path.join(out, 'sky.yaml'), 'utf8')) as Record<string, any>;
    assert.equal(sky.name, 'tiny-llama-v2');
    assert.match(sky.resources.accelerators, /^[A-Za-z0-9]+:\d+$/);
    assert.equal(sky.num_nodes, 1);
    assert.equal(sky.workdir, '.');
    assert.equal(sky.envs.MODEL, path.join(EXAMPLES, 'models/tiny-llama'));
    assert.match(sky.setup, /pip install -r requirements\.txt/);
    for (const v of ['SKYPILOT_NODE_RANK', 'SKYPILOT_NODE_IPS', 'SKYPILOT_NUM_NODES', 'SKYPILOT_NUM_GPUS_PER_NODE']) assert.match(sky.run, new RegExp(v));
    const sbatch = fs.readFileSync(path.join(out, 'slurm.sbatch'), 'utf8');
    assert.match(sbatch, /^#SBATCH --job-name=tiny-llama-v2$/m);
    for (const opt of ['nodes', 'ntasks-per-node', 'gpus-per-node', 'time']) assert.match(sbatch, new RegExp(`^#SBATCH --${opt}=`, 'm'));
    for (const f of ['slurm.sbatch', 'launch.sh']) {
      const r = spawnSync('bash', ['-n', path.join(out, f)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    }
  });

  it('launch.sh --deepspeed: a ZeRO-2 config beside it, flags the real accelerate launcher knows, clear refusals', function () {
    const out = path.join(dir, 'job-cluster');
    const ds = JSON.parse(fs.readFileSync(path.join(out, 'ds_zero2.json'), 'utf8')) as Record<string, any>;
    assert.equal(ds.zero_optimization.stage, 2);
    // "auto" lets the Trainer fill them from its arguments, so the global batch stays the experiment's.
    for (const k of ['train_batch_size', 'train_micro_batch_size_per_gpu', 'gradient_accumulation_steps', 'gradient_clipping']) assert.equal(ds[k], 'auto', k);
    assert.equal(ds.optimizer, undefined, 'train.py keeps its own optimizer and schedule');
    const launch = path.join(out, 'launch.sh');
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync('bash', [launch, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
    const both = run(['--fsdp', '--deepspeed']);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /--fsdp and --deepspeed .* choose one/);
    assert.match(run(['--deepspeed', '--cpu-procs', '2']).stderr, /accelerate launch on GPUs/);
    assert.match(run(['--deepspeed'], { DS_CONFIG: path.join(out, 'nowhere.json') }).stderr, /no DeepSpeed config at .*nowhere\.json/);
    assert.match(run(['--help']).stdout, /--deepspeed .*ZeRO-2/);
    if (!fs.existsSync(PYSTACK)) return;
    // The pystack has no DeepSpeed: launch.sh says how to install it instead of failing inside accelerate.
    const none = run(['--deepspeed'], { PYTHON: PYSTACK });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /needs DeepSpeed .* -m pip install deepspeed/);
    const help = spawnSync(PYSTACK, ['-m', 'accelerate.commands.launch', '--help'], { encoding: 'utf8' }).stdout;
    const passed: string[] = fs.readFileSync(launch, 'utf8').match(/--(use|fsdp|deepspeed)_[a-z_]+/g) ?? [];
    assert.ok(passed.includes('--deepspeed_config_file') && passed.includes('--use_deepspeed'));
    for (const f of new Set(passed)) assert.ok(help.includes(f), `accelerate launch has no ${f}`);
  });
});

describe('exported job on transformers + PEFT (../shared/pystack): same experiment, same curve', function () {
  this.timeout(240_000);
  let dir: string;
  const table: string[] = [];

  before(function () {
    if (!fs.existsSync(PYSTACK)) {
      this.skip(); // the offline Hugging Face stack is not beside this checkout
    }
    const probe = spawnSync(PYSTACK, ['-c', 'import torch, transformers, peft, accelerate, jinja2'], { encoding: 'utf8' });
    assert.equal(probe.status, 0, `the pystack cannot import torch/transformers/peft/accelerate/jinja2 (apt packages of ../shared/pystack/README.md and python3-jinja2):\n${probe.stderr}`);
    dir = tmpDir();
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (table.length) console.log(`    worst per-step relative loss difference vs LoRA Lab (${STEPS} steps):\n${table.map((l) => `      ${l}`).join('\n')}`);
  });

  for (const name of ['tiny-llama', 'tiny-gpt2'] as const) {
    it(`${name}: every step's loss within 1e-4 relative in one and two processes, adapter logits within 1e-4`, async () => {
      await useCpu();
      // LoRA dropout draws different masks in each engine: the curves are compared without it.
      const config = exampleConfig(dir, name, (c) => (c.lora.dropout = 0));
      const ours = await trainRun({ configPath: config, outDir: path.join(dir, `ours-${name}`) });
      assert.equal(ours.status, 'completed');
      const job = path.join(dir, `job-${name}`);
      await exportJob({ configPath: config, outDir: job, initFrom: ours.runDir });

      const one = path.join(dir, `hf1-${name}`);
      const r1 = await runJob(job, one, 1, 0);
      assert.equal(r1.code, 0, r1.output);
      const two = path.join(dir, `hf2-${name}`);
      const r2 = await runJob(job, two, 2, await freePort());
      assert.equal(r2.code, 0, r2.output);

      const base = readMetrics(ours.runDir);
      assert.equal(base.length, STEPS);
      const d1 = worstRelative(base, readMetrics(one));
      const d2 = worstRelative(base, readMetrics(two));
      table.push(`${name}: 1 process ${d1.toExponential(2)}, 2 processes ${d2.toExponential(2)}`);
      assert.ok(d1 < 1e-4, `one process: worst relative loss difference ${d1}`);
      assert.ok(d2 < 1e-4, `two processes: worst relative loss difference ${d2}`);
      const evals = (m: { evalLoss?: number }[]) => m.filter((p) => p.evalLoss !== undefined).map((p) => p.evalLoss!);
      for (const [what, m] of [['one', readMetrics(one)], ['two', readMetrics(two)]] as const) {
        const e = evals(m);
        assert.equal(e.length, evals(base).length, `${what}: eval points`);
        e.forEach((v, i) => assert.ok(Math.abs(v - evals(base)[i]) / evals(base)[i] < 1e-4, `${what}: eval loss ${v} vs ${evals(base)[i]}`));
      }

      // The saved adapter (PEFT layout, written by the callback) gives LoRA Lab's logits.
      const folder = await loadHfFolder(path.join(EXAMPLES, 'models', name));
      const model = buildCausalLm(folder.config, folder.weights);
      const probe = [Array.from(Buffer.from('LoRA adapts a frozen model with a low-rank update B A.')).slice(0, 48)];
      const logitsWith = async (adapterDir: string) => {
        const a = await loadPeftAdapterDir(adapterDir);
        const adapter = attachPeftAdapter(model, a.parsed, a.weights);
        const out = tf.tidy(() => model.forward(idsTensor(probe, 256), adapter.lookup));
        const data = out.dataSync().slice();
        out.dispose();
        adapter.dispose();
        return data;
      };
      try {
        const mine = await logitsWith(ours.adapterDir!);
        for (const run of [one, two]) {
          const theirs = await logitsWith(path.join(run, 'adapter'));
          let worst = 0;
          for (let i = 0; i < mine.length; i++) worst = Math.max(worst, Math.abs(mine[i] - theirs[i]));
          assert.ok(worst < 1e-4, `${run}: adapter logits differ by up to ${worst}`);
        }
      } finally {
        model.dispose();
      }

      // The folder is a LoRA Lab run: the Runs view / dashboard / report read it like ours.
      const run = loadRun(one);
      assert.equal(run.info.status, 'completed');
      assert.equal(run.info.step, STEPS);
      assert.ok(run.checkpoints.length > 0 && run.adapterDir);
      const src = await loadRunSource(one);
      assert.ok(src.modules.length > 0, 'modules (ΔW) from the checkpoints');
      assert.equal(src.metrics?.step.length, STEPS);
    });
  }

  it('a STOP file ends the job with a checkpoint (status cancelled); train.py --resume or LoRA Lab continues the same curve', async () => {
    await useCpu();
    const config = exampleConfig(dir, 'tiny-llama', (c) => Object.assign(c.training, { steps: 60, evalEvery: 30, checkpointEvery: 60 }));
    const ours = await trainRun({ configPath: config, outDir: path.join(dir, 'ours-stop') });
    const job = path.join(dir, 'job-stop');
    await exportJob({ configPath: config, outDir: job, initFrom: ours.runDir });
    const out = path.join(dir, 'hf-stop');
    const metrics = path.join(out, 'metrics.jsonl');
    let timer: NodeJS.Timeout | undefined;
    const r = await runJob(job, out, 1, 0, [], () => {
      timer = setInterval(() => {
        if (fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').split('\n').length > 3) {
          fs.writeFileSync(path.join(out, 'STOP'), '');
          clearInterval(timer);
        }
      }, 20);
    });
    clearInterval(timer);
    assert.equal(r.code, 0, r.output);
    const stopped = loadRun(out);
    assert.equal(stopped.info.status, 'cancelled');
    assert.ok(stopped.info.step > 0 && stopped.info.step < 60, `stopped at ${stopped.info.step}`);
    assert.equal(stopped.checkpoints[stopped.checkpoints.length - 1], stopped.info.step, 'a checkpoint at the step it stopped');
    assert.equal(stopped.metrics[stopped.metrics.length - 1].step, stopped.info.step);
    assert.equal(stopped.adapterDir, undefined, 'a stopped run has no final adapter, as ours');

    // The stopped folder is a LoRA Lab run: LoRA Lab's engine can take it over from that checkpoint too.
    const copy = path.join(dir, 'hf-stop-lab');
    fs.cpSync(out, copy, { recursive: true });
    const lab = await trainRun({ resumeRunDir: copy });
    assert.equal(lab.status, 'completed', lab.error);
    const dLab = worstRelative(readMetrics(ours.runDir), readMetrics(copy));
    assert.ok(dLab < 1e-4, `stopped on transformers, resumed by LoRA Lab: worst relative loss difference ${dLab}`);

    const resumed = await runJob(job, out, 1, 0, ['--resume']);
    assert.equal(resumed.code, 0, resumed.output);
    const run = loadRun(out);
    assert.equal(run.info.status, 'completed');
    assert.deepEqual(run.info.resumedAt?.map((x) => x.step), [stopped.info.step]);
    const d = worstRelative(readMetrics(ours.runDir), run.metrics);
    assert.ok(d < 1e-4, `stopped and resumed: worst relative loss difference ${d}`);
  });
});
