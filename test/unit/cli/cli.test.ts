import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { FromWorker } from '../../../src/protocol/worker';
import { RunFolder, loadRun } from '../../../src/runs/runStore';
import { loadExperimentConfig } from '../../../src/runs/trainRun';
import { REPO_ROOT, TSX_IMPORT, makeTmpDir, tinyExperiment, writeExperiment } from '../runs/tinyExperiment';
import { loadNativeKernels } from '../../../src/runs/nativeLoader';
import { CliError, EXIT, UsageError } from '../../../src/cli/command';
import { ReasonError } from '../../../src/shared/errors';

/** Run `lora-lab ...args` from source (tsx), as a user's shell would: not a TTY. */
function cli(args: string[], cwd = REPO_ROOT, env?: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [...TSX_IMPORT, path.join(REPO_ROOT, 'src/cli/main.ts'), ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    env: env ? { ...process.env, ...env } : undefined,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cli: lora-lab', function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => {
    tmp = makeTmpDir('cli');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('CliError and UsageError are ReasonErrors: the reason picks the exit code and is() matches by it', () => {
    const usage = new UsageError('--threads expects a number');
    assert.ok(CliError.is(usage, 'usage') && UsageError.is(usage) && ReasonError.is(usage));
    assert.equal(usage.exitCode, EXIT.usage);
    assert.equal(usage.name, 'UsageError');
    const failed = new CliError('x.json: no such file');
    assert.equal(failed.exitCode, EXIT.failed);
    assert.equal(failed.name, 'CliError');
    assert.ok(CliError.is(failed, 'failed'));
    assert.equal(CliError.is(failed, 'usage'), false);
    assert.equal(UsageError.is(failed), false);
  });

  it('--help lists the commands, --version prints package.json version, unknown commands exit 2', () => {
    const help = cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: lora-lab <command>/);
    assert.match(help.stdout, /^\s+train\s+\S/m);
    assert.match(help.stdout, /^\s+params\s+\S/m);
    const version = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).version;
    assert.equal(cli(['--version']).stdout.trim(), `lora-lab ${version}`);
    const bad = cli(['trian']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command "trian"/);
    const trainHelp = cli(['train', '--help']);
    assert.match(trainHelp.stdout, /--resume RUN_DIR/);
  });

  it('params prints the LoRA article numbers (text and --json) and rejects bad input', () => {
    const text = cli(['params', '--in', '1024', '--out', '1024', '-r', '4', '--bias']);
    assert.equal(text.code, 0, text.stderr);
    for (const s of ['1,049,600', '9,216', '0.88 %', '113.9×']) assert.ok(text.stdout.includes(s), `${s} in:\n${text.stdout}`);
    const json = cli(['params', '--in', '1024', '--out', '1024', '-r', '4', '--json']);
    const o = JSON.parse(json.stdout);
    assert.equal(o.full, 1_049_600);
    assert.equal(o.lora, 8_192); // PEFT convention: the bias stays frozen
    assert.equal(o.trainBias, false);
    const zero = cli(['params', '--in', '8', '--out', '8', '-r', '0']);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /-r must be ≥ 1, got 0/);
    const missing = cli(['params', '--in', '8']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing --out, -r/);
    assert.match(cli(['params', '--in', 'x', '--out', '8', '-r', '2']).stderr, /--in expects a number, got "x"/);
    assert.match(cli(['params', '--in', '8', '--out', '8', '-r', '2', '--frob']).stderr, /Unknown option '--frob'/);
  });

  it('train: plain progress lines when not a TTY, prints the backend, run and adapter folders', () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ steps: 30 }));
    const r = cli(['train', cfg, '--out', 'runs', '--backend', 'cpu'], tmp);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Backend: cpu/m);
    // tfjs-backend-cpu's "install tfjs-node" banner is not printed.
    assert.equal(r.stderr, '');
    // Progress and checkpoint lines in step order (the last points are printed before the final checkpoint).
    const order = [...r.stdout.matchAll(/^(?:step (\d+)\/30|checkpoint at step (\d+))/gm)].map((m) => Number(m[1] ?? m[2]));
    assert.deepEqual(order, [...order].sort((a, b) => a - b), r.stdout);
    assert.match(r.stdout, /^Trainable: 64 of 272 base parameters \(19\.05 % of all/m); // A 2×16 + B 16×2 on W 16×16 + b 16
    assert.match(r.stdout, /^step 30\/30 loss \S+ eval \S+/m);
    assert.ok(!r.stdout.includes('\r'), 'no carriage returns outside a terminal');
    const runLine = /^Run:\s+(\S+)$/m.exec(r.stdout);
    const adapterLine = /^Adapter:\s+(\S+)$/m.exec(r.stdout);
    assert.ok(runLine && adapterLine, r.stdout);
    const runDir = path.resolve(tmp, runLine[1]);
    assert.equal(loadRun(runDir).info.status, 'completed');
    assert.ok(fs.existsSync(path.resolve(tmp, adapterLine[1], 'adapter_model.safetensors')));
  });

  it('train: a config with a list for lora.r trains one run per value, in order, each named after its value', () => {
    const cfg = writeExperiment(tmp, { ...tinyExperiment({ steps: 10, evalEvery: 5, name: 'swp' }), lora: { r: [1, 2], alpha: 2 } }, 'sweep.lora.json');
    const r = cli(['train', cfg, '--out', 'sweep-runs', '--backend', 'cpu'], tmp);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Sweep: 2 runs from /m);
    const runs = [...r.stdout.matchAll(/^Run:\s+(\S+)$/gm)].map((m) => loadRun(path.resolve(tmp, m[1])));
    assert.deepEqual(
      runs.map((x) => [x.info.name, x.info.status, x.config.lora.r]),
      [
        ['swp-r1', 'completed', 1],
        ['swp-r2', 'completed', 2],
      ],
    );
    assert.ok(r.stdout.indexOf('Sweep run 1/2') < r.stdout.indexOf('Sweep run 2/2'));
    // trainRun itself refuses to guess which run of a sweep is meant.
    assert.throws(() => loadExperimentConfig(cfg), /sweep of 2 runs \(lora\.r = 1; lora\.r = 2\); say which run to train \(0 to 1\)/);
    assert.equal(loadExperimentConfig(cfg, 1).config.lora.r, 2);
  });

  it('train: bad configs and bad flags give clear errors and non-zero exits', () => {
    const bad = path.join(tmp, 'bad.lora.json');
    fs.writeFileSync(bad, '{\n  "kind": "low-rank-recovery",\n  "lora": { "r": 0 }\n}\n');
    const r = cli(['train', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.lora\.json:3:\d+: error: .*lora\.r/);
    assert.equal(cli(['train']).code, 2);
    assert.match(cli(['train', bad, '--backend', 'gpu']).stderr, /--backend must be one of tensorflow, wasm, cpu/);
    const zeroThreads = cli(['train', bad, '--threads', '0']);
    assert.equal(zeroThreads.code, 2);
    assert.match(zeroThreads.stderr, /--threads must be ≥ 1, got 0/);
    const notRun = cli(['train', '--resume', tmp]);
    assert.equal(notRun.code, 1);
    assert.match(notRun.stderr, /not a LoRA Lab run folder/);
  });

  it('train: a diverging run exits 1 and says which checkpoint is kept', () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'diverge', steps: 200, checkpointEvery: 2, optimizer: { name: 'sgd', lr: 1e6 } }), 'diverge.lora.json');
    const r = cli(['train', cfg, '--out', 'runs', '--backend', 'cpu'], tmp);
    assert.equal(r.code, 1, r.stdout);
    // Failures go to stderr (a script capturing stdout still sees them on the terminal).
    assert.match(r.stderr, /^error: Training diverged: .*(NaN|Infinity|non-finite)/im);
    assert.match(r.stderr, /^Failed at step \d+: .*(NaN|Infinity|non-finite)/im);
    assert.doesNotMatch(r.stdout, /error:|Failed at step/);
    const kept = /^Run: (\S+) \(last good checkpoint: step (\d+)\)$/m.exec(r.stderr);
    assert.ok(kept, r.stderr);
    assert.ok(loadRun(path.resolve(tmp, kept[1])).checkpoints.includes(Number(kept[2])));
  });

  it('train: an output folder that cannot be written fails on stderr naming it and --out, without errno text alone', () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'blocked', steps: 4, evalEvery: 2, checkpointEvery: 2 }), 'blocked.lora.json');
    fs.writeFileSync(path.join(tmp, 'a-file'), '');
    const r = cli(['train', cfg, '--out', 'a-file/runs', '--backend', 'cpu'], tmp);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^lora-lab train: \/\S*a-file\/runs: cannot create the folder: a part of the path is a file, not a folder \(ENOTDIR\)\. Nothing was trained\. .* \(--out a-file\/runs\), then start again$/m);
    assert.equal(r.stdout, '');
  });

  it('train --threads 2 without native kernels: the threaded wasm build runs with 2 threads and the process exits at the end', function () {
    if (typeof SharedArrayBuffer !== 'function') this.skip();
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'threads', steps: 10 }), 'threads.lora.json');
    const r = cli(['train', cfg, '--out', 'runs', '--backend', 'wasm', '--threads', '2', '--json'], tmp, { LORA_LAB_NATIVE: '0' });
    assert.equal(r.code, 0, r.stderr);
    const start = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as FromWorker).find((e) => e.type === 'didStart');
    assert.ok(start && start.type === 'didStart', r.stdout);
    assert.equal(start.backend.name, 'wasm');
    assert.equal(start.backend.threads, 2, JSON.stringify(start.backend));
    assert.equal(start.backend.kernels, undefined);
    assert.ok(start.backend.notes.some((n) => /native kernels: turned off \(LORA_LAB_NATIVE=0\)/.test(n)), JSON.stringify(start.backend.notes));
  });

  it('train --threads 2 with native kernels: their pool gets the 2 threads, the wasm build stays single-threaded', function () {
    if (!loadNativeKernels({}).kernels) this.skip();
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'threads-native', steps: 10 }), 'threads-native.lora.json');
    const r = cli(['train', cfg, '--out', 'runs', '--backend', 'wasm', '--threads', '2', '--json'], tmp);
    assert.equal(r.code, 0, r.stderr);
    const start = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as FromWorker).find((e) => e.type === 'didStart');
    assert.ok(start && start.type === 'didStart', r.stdout);
    assert.deepEqual([start.backend.name, start.backend.threads], ['wasm', 1], JSON.stringify(start.backend));
    assert.match(start.backend.kernels ?? '', /^native (avx512|avx2|neon|generic) kernels, 2 threads \(lora-lab-native \d+\)$/);
  });

  it('inspect on a run folder describes its adapter, or says the run has none yet', async () => {
    const { config } = loadExperimentConfig(writeExperiment(tmp, tinyExperiment({ name: 'inspect-run' }), 'inspect-run.lora.json'));
    const folder = await RunFolder.create(path.join(tmp, 'inspect-runs'), { config, backend: { name: 'cpu', notes: [] }, versions: { loraLab: '0', tfjs: '0', node: '0' }, totalSteps: 40 });
    await folder.update({ status: 'cancelled', step: 12 });
    const none = cli(['inspect', folder.dir]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /is a LoRA Lab run \(status cancelled, step 12\/40\) without an adapter yet: .*lora-lab train --resume/);
    const A = { shape: [2, 16], data: new Float32Array(32).fill(0.1) };
    const B = { shape: [16, 2], data: new Float32Array(32).fill(0.2) };
    folder.writeAdapter({ config: { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['linear'] }, tensors: { 'base_model.model.linear.lora_A.weight': A, 'base_model.model.linear.lora_B.weight': B } });
    const ok = cli(['inspect', folder.dir, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    const rep = JSON.parse(ok.stdout) as { path: string; format: string; modules: { name: string; scale: number }[] };
    assert.equal(rep.path, path.join(folder.dir, 'adapter'));
    assert.deepEqual([rep.format, rep.modules.map((m) => [m.name, m.scale])], ['peft', [['linear', 2]]]);
  });

  it('train: Ctrl-C saves a checkpoint and exits 130 with a resume hint; --resume finishes the run', async () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'sigint', steps: 400, d: 48, batchSize: 64, checkpointEvery: 400 }), 'sigint.lora.json');
    const child = spawn(process.execPath, [...TSX_IMPORT, 'src/cli/main.ts', 'train', cfg, '--out', path.join(tmp, 'sigint'), '--backend', 'cpu'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for await (const line of createInterface({ input: child.stdout })) {
      out += line + '\n';
      if (/^step \d+\/400/.test(line)) {
        child.kill('SIGINT');
        break;
      }
    }
    child.stdout.on('data', (b) => (out += b));
    const code = await exited;
    assert.equal(code, 130, out);
    assert.match(out, /Stopped at step \d+\/400; checkpoint saved/);
    const hint = /Resume with: lora-lab train --resume (\S+)/.exec(out);
    assert.ok(hint, out);
    const runDir = path.resolve(REPO_ROOT, hint[1]);
    const stopped = loadRun(runDir);
    assert.equal(stopped.info.status, 'cancelled');
    assert.equal(stopped.checkpoints[stopped.checkpoints.length - 1], stopped.info.step);

    const resumed = cli(['train', '--resume', runDir, '--backend', 'cpu', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const lines = resumed.stdout.trim().split('\n').map((l) => JSON.parse(l) as FromWorker | { type: 'result'; status: string });
    assert.equal(lines[0].type, 'log'); // "Resuming ..."
    assert.ok(lines.some((l) => l.type === 'didStart'));
    const result = lines[lines.length - 1] as { type: string; status: string; step: number };
    assert.equal(result.type, 'result');
    assert.equal(result.status, 'completed');
    assert.equal(result.step, 400);
    assert.deepEqual(loadRun(runDir).metrics.map((p) => p.step), Array.from({ length: 400 }, (_, i) => i + 1));
  });
});
