import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { FromWorker } from '../../../src/protocol/worker';
import { parseSafetensors } from '../../../src/formats/safetensors';
import { RunError } from '../../../src/runs/runErrors';
import { listRuns, loadRun, RunFolder } from '../../../src/runs/runStore';
import { loadExperimentConfig, trainRun, type TrainRunOptions } from '../../../src/runs/trainRun';
import { REPO_ROOT, TSX_IMPORT, adapterTensors, curve, makeTmpDir, runOutcome, tinyExperiment, writeExperiment, type RunOutcome } from './tinyExperiment';
import { FaultyFs } from './faultyFs';

const run = (opts: TrainRunOptions, events: FromWorker[] = []) =>
  trainRun({ backend: 'cpu', progressIntervalMs: 0, onEvent: (e) => events.push(e), ...opts });

describe('runs/trainRun', function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => {
    tmp = makeTmpDir('trainrun');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains a new run to completion and leaves the full run folder', async () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ steps: 40, checkpointEvery: 10 }));
    const events: FromWorker[] = [];
    const res = await run({ configPath: cfg, outDir: path.join(tmp, 'new') }, events);
    assert.equal(res.status, 'completed');
    assert.equal(res.step, 40);
    assert.equal(res.backend.name, 'cpu');
    assert.equal(events[0].type, 'didStart');
    assert.equal(events[events.length - 1].type, 'didFinish');
    assert.deepEqual(events.filter((e) => e.type === 'didCheckpoint').map((e) => (e as { step: number }).step), [10, 20, 30, 40]);

    const loaded = loadRun(res.runDir);
    assert.equal(loaded.info.status, 'completed');
    assert.equal(loaded.info.configFile, cfg);
    assert.equal(loaded.info.versions.tfjs, '4.22.0');
    assert.ok(loaded.info.params && loaded.info.params.trainableParams > 0);
    assert.deepEqual(loaded.metrics.map((p) => p.step), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.ok(loaded.metrics.filter((p) => p.evalLoss !== undefined).length >= 4);
    assert.ok(loaded.metrics[39].loss < loaded.metrics[0].loss, 'loss goes down');
    assert.deepEqual(loaded.checkpoints, [10, 20, 30, 40]); // keepCheckpoints defaults to the newest 10
    // Progress events carry exactly the logged points, in order.
    const streamed = events.flatMap((e) => (e.type === 'didProgress' ? e.points : []));
    assert.deepEqual(curve(streamed), curve(loaded.metrics));

    const cfgJson = JSON.parse(fs.readFileSync(path.join(loaded.adapterDir!, 'adapter_config.json'), 'utf8'));
    assert.equal(cfgJson.peft_type, 'LORA');
    assert.equal(cfgJson.r, 2);
    const tensors = parseSafetensors(fs.readFileSync(path.join(loaded.adapterDir!, 'adapter_model.safetensors')));
    const a = tensors.names().find((n) => n.endsWith('lora_A.weight'))!;
    const b = tensors.names().find((n) => n.endsWith('lora_B.weight'))!;
    assert.deepEqual(tensors.entry(a).shape, [2, 16]);
    assert.deepEqual(tensors.entry(b).shape, [16, 2]);
    const truth = RunFolder.open(res.runDir).readTruth();
    assert.ok(truth && Object.keys(truth).length > 0, 'truth/ holds the reference tensors');

    // Killed after the final checkpoint but before the adapter was written: resume only writes the adapter.
    const written = adapterTensors(loaded.adapterDir!);
    fs.rmSync(loaded.adapterDir!, { recursive: true });
    await RunFolder.open(res.runDir).update({ status: 'interrupted' });
    const again = await run({ resumeRunDir: res.runDir });
    assert.equal(again.status, 'completed');
    assert.equal(again.step, 40);
    assert.deepEqual(adapterTensors(again.adapterDir!), written);
    assert.deepEqual(curve(loadRun(res.runDir).metrics), curve(loaded.metrics));
  });

  it('resumes a run killed mid-training (SIGKILL) onto exactly the uninterrupted loss curve', async () => {
    const exp = tinyExperiment({ name: 'killed', steps: 600, d: 48, batchSize: 64, checkpointEvery: 20, evalEvery: 25 });
    const cfg = writeExperiment(tmp, exp, 'killed.lora.json');

    // Reference: the same experiment, never interrupted.
    const ref = await run({ configPath: cfg, outDir: path.join(tmp, 'ref') });
    assert.equal(ref.status, 'completed');

    // A real kill: the CLI in a child process gets SIGKILL right after its second checkpoint.
    const child = spawn(process.execPath, [...TSX_IMPORT, 'src/cli/main.ts', 'train', cfg, '--out', path.join(tmp, 'killed'), '--json', '--backend', 'cpu'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let runDir = '';
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for await (const line of createInterface({ input: child.stdout })) {
      const e = JSON.parse(line) as FromWorker;
      if (e.type === 'didStart') runDir = e.runDir;
      if (e.type === 'didCheckpoint' && e.step >= 40) {
        child.kill('SIGKILL');
        break;
      }
    }
    const code = await exited;
    assert.equal(code, null, `the child was killed, not finished (stderr: ${stderr})`);
    const killed = loadRun(runDir);
    assert.equal(killed.info.status, 'interrupted');
    assert.ok(killed.info.step < 600);
    const ckpt = killed.checkpoints[killed.checkpoints.length - 1];
    assert.ok(ckpt >= 40);

    const events: FromWorker[] = [];
    const resumed = await run({ resumeRunDir: runDir }, events);
    assert.equal(resumed.status, 'completed');
    const log = events.find((e) => e.type === 'log' && /Resuming/.test(e.message));
    assert.ok(log, 'says it resumes');
    const after = loadRun(runDir);
    assert.equal(after.info.resumedAt?.[0].step, ckpt);
    assert.deepEqual(curve(after.metrics), curve(loadRun(ref.runDir).metrics));
    assert.deepEqual(adapterTensors(after.adapterDir!), adapterTensors(loadRun(ref.runDir).adapterDir!));
    // elapsedMs keeps increasing across the resume.
    const el = after.metrics.map((p) => p.elapsedMs);
    assert.ok(el.every((x, i) => i === 0 || x >= el[i - 1]), 'elapsedMs is continuous');
  });

  it('cancels via AbortSignal with a checkpoint at the stop step; resume then completes the same curve', async () => {
    const exp = tinyExperiment({ name: 'cancelled', steps: 60, checkpointEvery: 25 });
    const cfg = writeExperiment(tmp, exp, 'cancelled.lora.json');
    const ref = await run({ configPath: cfg, outDir: path.join(tmp, 'ref2') });

    const controller = new AbortController();
    let abortedAt = -1;
    const res = await trainRun({
      configPath: cfg,
      outDir: path.join(tmp, 'cancel'),
      backend: 'cpu',
      progressIntervalMs: 0,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'didProgress' && e.step >= 7 && abortedAt < 0) {
          abortedAt = e.step;
          controller.abort();
        }
      },
    });
    assert.equal(res.status, 'cancelled');
    assert.equal(res.step, abortedAt, 'no further step after the abort');
    const c = loadRun(res.runDir);
    assert.equal(c.info.status, 'cancelled');
    assert.equal(c.checkpoints[c.checkpoints.length - 1], res.step);
    assert.equal(c.adapterDir, undefined);

    const resumed = await run({ resumeRunDir: res.runDir });
    assert.equal(resumed.status, 'completed');
    assert.deepEqual(curve(loadRun(res.runDir).metrics), curve(loadRun(ref.runDir).metrics));
    await assert.rejects(run({ resumeRunDir: res.runDir }), (e: unknown) => RunError.is(e, 'already-completed'));
  });

  it('resumes a run killed before its first checkpoint by starting it over', async () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'early', steps: 20, checkpointEvery: 20 }), 'early.lora.json');
    const ref = await run({ configPath: cfg, outDir: path.join(tmp, 'early-ref') });
    // What a kill at step 5 leaves: run.json 'running' with a dead pid, a few metric lines (the last torn), no checkpoint.
    const { config } = loadExperimentConfig(cfg);
    const folder = await RunFolder.create(path.join(tmp, 'early'), { config, configFile: cfg, backend: ref.backend, versions: loadRun(ref.runDir).info.versions, totalSteps: 20 });
    folder.appendMetrics(loadRun(ref.runDir).metrics.slice(0, 5));
    fs.appendFileSync(path.join(folder.dir, 'metrics.jsonl'), '{"step":6,"lo');
    await folder.update({ pid: 2 ** 22 + 12345 }); // beyond pid_max on Linux: no such process
    folder.releaseLock(); // a killed process's lock is stale (test/unit/runs/runLock.test.ts)
    assert.equal(loadRun(folder.dir).info.status, 'interrupted');
    const res = await run({ resumeRunDir: folder.dir });
    assert.equal(res.status, 'completed');
    assert.deepEqual(curve(loadRun(folder.dir).metrics), curve(loadRun(ref.runDir).metrics));
    assert.deepEqual(loadRun(folder.dir).info.resumedAt?.map((r) => r.step), [0]);
  });

  it('refuses to resume from a checkpoint that does not belong to the run, naming the checkpoint', async () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'tampered', steps: 20, checkpointEvery: 5 }), 'tampered.lora.json');
    const controller = new AbortController();
    const res = await trainRun({
      configPath: cfg,
      outDir: path.join(tmp, 'tampered'),
      backend: 'cpu',
      signal: controller.signal,
      onEvent: (e) => e.type === 'didCheckpoint' && controller.abort(),
    });
    assert.equal(res.status, 'cancelled');
    const infoFile = path.join(res.runDir, 'checkpoints', `step-${res.step}`, 'checkpoint.json');
    const info = JSON.parse(fs.readFileSync(infoFile, 'utf8'));
    const foreign = Buffer.from(JSON.stringify({ ...info, state: { ...info.state, seed: 999 } }));
    fs.writeFileSync(infoFile, foreign);
    // A whole checkpoint of another run: its manifest matches its files, so only the restore can tell.
    const manifestFile = path.join(path.dirname(infoFile), 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    manifest.files['checkpoint.json'] = { size: foreign.length, sha256: createHash('sha256').update(foreign).digest('hex') };
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    await assert.rejects(run({ resumeRunDir: res.runDir }), (e: unknown) => {
      assert.ok(RunError.is(e, 'bad-run-file'));
      assert.match((e as Error).message, new RegExp(`step-${res.step}: cannot restore this checkpoint: .*seed`));
      return true;
    });
    assert.equal(loadRun(res.runDir).info.status, 'cancelled', 'the run is left as it was');
  });

  it('stops a diverging run as failed with the NaN step and keeps the last good checkpoint', async () => {
    const exp = tinyExperiment({ name: 'diverge', steps: 200, checkpointEvery: 2, optimizer: { name: 'sgd', lr: 1e6 } });
    const cfg = writeExperiment(tmp, exp, 'diverge.lora.json');
    const events: FromWorker[] = [];
    const res = await run({ configPath: cfg, outDir: path.join(tmp, 'diverge') }, events);
    assert.equal(res.status, 'failed');
    assert.match(res.error ?? '', /(NaN|Infinity|non-finite).*step \d+|step \d+.*(NaN|Infinity)/i);
    const f = loadRun(res.runDir);
    assert.equal(f.info.status, 'failed');
    assert.equal(f.info.error, res.error);
    assert.ok(f.checkpoints.length > 0 && f.checkpoints[f.checkpoints.length - 1] <= res.step, 'a checkpoint at or before the last good step');
    assert.equal(res.lastCheckpointStep, f.checkpoints[f.checkpoints.length - 1]);
    assert.equal(f.adapterDir, undefined);
    assert.ok(events.some((e) => e.type === 'log' && e.level === 'error' && /last good checkpoint: step \d+/.test(e.message)));
  });

  it('reports config errors as file:line:col before creating anything', async () => {
    const bad = path.join(tmp, 'bad.lora.json');
    fs.writeFileSync(bad, '{\n  "kind": "low-rank-recovery",\n  "lora": { "r": "four" },\n  "trainig": {}\n}\n');
    await assert.rejects(run({ configPath: bad, outDir: path.join(tmp, 'bad') }), (e: unknown) => {
      assert.ok(RunError.is(e, 'config'));
      assert.match((e as Error).message, /bad\.lora\.json:3:\d+: error: .*lora\.r/);
      assert.match((e as Error).message, /bad\.lora\.json:4:\d+: error: .*trainig/);
      return true;
    });
    assert.ok(!fs.existsSync(path.join(tmp, 'bad')));
    await assert.rejects(run({ configPath: path.join(tmp, 'missing.lora.json') }), /missing\.lora\.json: no such file/);
  });

  it('checks a resumed run\'s saved config.json like a new one: an edited batchSize 1e9 is refused by field', async () => {
    const cfg = writeExperiment(tmp, tinyExperiment({ name: 'edited', steps: 40, checkpointEvery: 10 }), 'edited.lora.json');
    const controller = new AbortController();
    const res = await trainRun({
      configPath: cfg,
      outDir: path.join(tmp, 'edited'),
      backend: 'cpu',
      progressIntervalMs: 0,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'didProgress' && e.step >= 12) controller.abort();
      },
    });
    assert.equal(res.status, 'cancelled');
    const saved = path.join(res.runDir, 'config.json');
    const before = fs.readFileSync(saved, 'utf8');
    const edited = JSON.parse(before) as { training: { batchSize: number } };
    edited.training.batchSize = 1e9;
    fs.writeFileSync(saved, JSON.stringify(edited, null, 2));
    await assert.rejects(run({ resumeRunDir: res.runDir }), (e: unknown) => {
      assert.ok(RunError.is(e, 'config'), String(e));
      assert.match((e as Error).message, /config\.json:\d+:\d+: error: .*batchSize/);
      return true;
    });
    // Nothing was lost: restoring the file lets the run resume.
    fs.writeFileSync(saved, before);
    assert.equal((await run({ resumeRunDir: res.runDir })).status, 'completed');
  });
});

describe('runs/trainRun: damaged runs and full disks', function () {
  this.timeout(60_000);
  let tmp: string;
  let cfg: string;
  let ref: RunOutcome;
  before(async () => {
    tmp = makeTmpDir('trainrun-damage');
    cfg = writeExperiment(tmp, tinyExperiment({ name: 'damage', steps: 12, checkpointEvery: 2, evalEvery: 4 }));
    const r = await run({ configPath: cfg, outDir: path.join(tmp, 'ref') });
    ref = runOutcome(r.runDir);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A run cancelled right after its checkpoint at `step`. */
  async function cancelledAt(step: number, name: string): Promise<string> {
    const controller = new AbortController();
    const res = await trainRun({
      configPath: cfg,
      outDir: path.join(tmp, name),
      backend: 'cpu',
      progressIntervalMs: 0,
      signal: controller.signal,
      onEvent: (e) => e.type === 'didCheckpoint' && e.step === step && controller.abort(),
    });
    assert.equal(res.status, 'cancelled');
    assert.equal(res.step, step);
    return res.runDir;
  }

  it('resumes from the newest checkpoint that verifies, saying which one it skipped and why', async () => {
    const dir = await cancelledAt(8, 'damaged');
    // A damaged header in the newest, a NaN (faithfully written, manifest and all) in the one before.
    const t8 = path.join(dir, 'checkpoints/step-8/tensors.safetensors');
    const b = fs.readFileSync(t8);
    b[12] ^= 0xff;
    fs.writeFileSync(t8, b);
    const folder = RunFolder.open(dir);
    const six = folder.readCheckpoint(6);
    const name = Object.keys(six.tensors)[0];
    six.tensors[name].data[0] = NaN;
    fs.rmSync(folder.checkpointDir(6), { recursive: true });
    await folder.writeCheckpoint({ step: 6, tensors: six.tensors, state: six.info.state }, 0);
    await folder.update({ status: 'cancelled', lastCheckpointStep: 8 });
    folder.releaseLock();

    const events: FromWorker[] = [];
    const res = await run({ resumeRunDir: dir }, events);
    assert.equal(res.status, 'completed');
    const warnings = events.filter((e) => e.type === 'log' && e.level === 'warn').map((e) => (e as { message: string }).message);
    assert.ok(warnings.some((m) => /checkpoint step-8 cannot be used: tensors\.safetensors does not match the SHA-256/.test(m)), warnings.join('\n'));
    assert.ok(warnings.some((m) => new RegExp(`checkpoint step-6 cannot be used: tensor ${name.replace(/\./g, '\\.')} holds NaN`).test(m)), warnings.join('\n'));
    assert.ok(warnings.some((m) => /resuming from checkpoint step-4, the newest that can be used/.test(m)), warnings.join('\n'));
    assert.equal(loadRun(dir).info.resumedAt?.[0].step, 4);
    assert.deepEqual(curve(loadRun(dir).metrics), ref.metrics);
    assert.deepEqual(adapterTensors(res.adapterDir!), ref.adapter);
  });

  it('resumes a run whose metrics.jsonl was cut short from before the first missing step: no gap', async () => {
    const dir = await cancelledAt(8, 'cut-metrics');
    const file = path.join(dir, 'metrics.jsonl');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    fs.writeFileSync(file, lines.slice(0, 5).join('\n') + '\n{"step":6,"lo'); // steps 1-5 and a torn 6
    const events: FromWorker[] = [];
    const res = await run({ resumeRunDir: dir }, events);
    assert.equal(res.status, 'completed');
    assert.ok(events.some((e) => e.type === 'log' && /metrics\.jsonl has no point for step 6 \(the file was cut short\); continuing from checkpoint step-4/.test(e.message)));
    assert.equal(loadRun(dir).info.resumedAt?.[0].step, 4);
    assert.deepEqual(curve(loadRun(dir).metrics), ref.metrics);
    assert.deepEqual(adapterTensors(res.adapterDir!), ref.adapter);
  });

  it('also sees a lost eval point (logged off the logEvery grid) as a gap', async () => {
    const evalCfg = writeExperiment(tmp, tinyExperiment({ name: 'evalgap', steps: 12, checkpointEvery: 2, evalEvery: 3, logEvery: 4 }), 'evalgap.lora.json');
    const full = await run({ configPath: evalCfg, outDir: path.join(tmp, 'evalgap-ref') });
    const controller = new AbortController();
    const cut = await trainRun({
      configPath: evalCfg,
      outDir: path.join(tmp, 'evalgap'),
      backend: 'cpu',
      signal: controller.signal,
      onEvent: (e) => e.type === 'didCheckpoint' && e.step === 6 && controller.abort(),
    });
    const file = path.join(cut.runDir, 'metrics.jsonl');
    assert.deepEqual(loadRun(cut.runDir).metrics.map((p) => p.step), [3, 4, 6]);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').split('\n').slice(0, 2).join('\n') + '\n'); // the eval point at 6 is lost
    const events: FromWorker[] = [];
    await run({ resumeRunDir: cut.runDir }, events);
    assert.ok(events.some((e) => e.type === 'log' && /no point for step 6 .*continuing from checkpoint step-4/.test(e.message)));
    assert.deepEqual(curve(loadRun(cut.runDir).metrics), curve(loadRun(full.runDir).metrics));
  });

  it('lets one trainer at a time resume a run: a second resume is refused while the first holds the lock', async () => {
    const dir = await cancelledAt(4, 'twice');
    const first = run({ resumeRunDir: dir });
    await assert.rejects(run({ resumeRunDir: dir }), (e: unknown) => RunError.is(e, 'busy') && /being trained by another process/.test((e as Error).message));
    assert.equal((await first).status, 'completed');
    assert.deepEqual(curve(loadRun(dir).metrics), ref.metrics);
    await assert.rejects(run({ resumeRunDir: dir }), (e: unknown) => RunError.is(e, 'already-completed'));
  });

  it('stops on a full disk with a message naming the file, outputDir / --out and --resume; run.json says failed', async () => {
    const events: FromWorker[] = [];
    // The disk fills up at the 20th write (a metrics line, mid-run) and stays full.
    const out = path.join(tmp, 'full');
    await assert.rejects(run({ configPath: cfg, outDir: out, fs: new FaultyFs({ op: 'write', n: 20, mode: 'full' }) }, events), (e: unknown) => {
      assert.ok(RunError.is(e, 'io'));
      const m = (e as Error).message;
      assert.match(m, /^\/.*: cannot .*: the disk is full \(ENOSPC\)\. The run stopped; its newest good checkpoint is kept\./);
      assert.match(m, /outputDir in the experiment file, or --out/);
      assert.match(m, /lora-lab train --resume \//);
      return true;
    });
    const dir = listRuns(out)[0].dir;
    assert.equal(RunFolder.open(dir).storedInfo.status, 'failed', 'not left running');
    const finish = events.find((e) => e.type === 'didFinish');
    assert.ok(finish && finish.type === 'didFinish' && finish.status === 'failed');
    const res = await run({ resumeRunDir: dir });
    assert.equal(res.status, 'completed');
    assert.deepEqual(adapterTensors(res.adapterDir!), ref.adapter);
  });
});

describe('runs/trainRun: causal-lm', function () {
  this.timeout(60_000);
  let tmp: string;
  before(() => {
    tmp = makeTmpDir('trainrun-lm');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains the tiny GPT-2 example through src/models, and a cancelled run resumes onto the same curve', async () => {
    const exp = {
      name: 'tiny-gpt2',
      kind: 'causal-lm',
      model: {
        modelPath: path.join(REPO_ROOT, 'examples/models/tiny-gpt2'),
        dataset: { path: path.join(REPO_ROOT, 'examples/models/lora-notes.txt'), seqLen: 16, evalFraction: 0.1, tokenizer: 'bytes' },
      },
      lora: { r: 2, alpha: 4, targetModules: ['c_attn'] },
      optimizer: { name: 'adamw', lr: 0.003 },
      training: { steps: 6, batchSize: 2, seed: 1, evalEvery: 3, checkpointEvery: 3 },
    };
    const cfg = writeExperiment(tmp, exp, 'lm.lora.json');
    const ref = await run({ configPath: cfg, outDir: path.join(tmp, 'ref') });
    assert.equal(ref.status, 'completed');
    const refRun = loadRun(ref.runDir);
    assert.equal(refRun.info.baseModel, exp.model.modelPath);
    assert.ok(Object.keys(adapterTensors(refRun.adapterDir!)).some((n) => /c_attn\.lora_A\.weight$/.test(n)));

    const controller = new AbortController();
    const cut = await trainRun({
      configPath: cfg,
      outDir: path.join(tmp, 'cut'),
      backend: 'cpu',
      progressIntervalMs: 0,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'didCheckpoint' && e.step === 3) controller.abort();
      },
    });
    assert.equal(cut.status, 'cancelled');
    const resumed = await run({ resumeRunDir: cut.runDir });
    assert.equal(resumed.status, 'completed');
    assert.deepEqual(curve(loadRun(cut.runDir).metrics), curve(refRun.metrics));
    assert.deepEqual(adapterTensors(loadRun(cut.runDir).adapterDir!), adapterTensors(refRun.adapterDir!));
  });
});
