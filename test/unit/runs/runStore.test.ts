import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { ExperimentConfig } from '../../../src/formats/experimentTypes';
import type { MetricPoint, RunInfo } from '../../../src/protocol/runFormat';
import { parseSafetensors } from '../../../src/formats/safetensors';
import { RunError } from '../../../src/runs/runErrors';
import { RunFolder, effectiveStatus, listRuns, loadRun, makeRunId, markInterrupted, parseMetricsJsonl } from '../../../src/runs/runStore';
import { explainFsError, nodeRunFs, type RunFs } from '../../../src/runs/runFs';
import { FaultyFs } from './faultyFs';

/** A device that takes at most 7 bytes per write call (as a write near a file size limit may). */
const trickleFs: RunFs = { ...nodeRunFs, writeSync: (fd, buf, off, len, pos) => nodeRunFs.writeSync(fd, buf, off, Math.min(len, 7), pos) };
/** A device that says it wrote everything but kept only the first half of each checkpoint tensor file. */
const lyingFs = (): RunFs => {
  const files = new Map<number, string>();
  return {
    ...nodeRunFs,
    openSync: (f, flags, mode) => {
      const fd = nodeRunFs.openSync(f, flags, mode);
      files.set(fd, f);
      return fd;
    },
    writeSync: (fd, buf, off, len, pos) => {
      if (!/tensors\.safetensors$/.test(files.get(fd) ?? '')) return nodeRunFs.writeSync(fd, buf, off, len, pos);
      nodeRunFs.writeSync(fd, buf, off, Math.floor(len / 2), pos);
      return len;
    },
  };
};

const config: ExperimentConfig = {
  name: 'tiny test',
  kind: 'low-rank-recovery',
  model: { kind: 'low-rank-recovery', inFeatures: 8, outFeatures: 6, trueRank: 2, updateScale: 0.5, noise: 0 },
  lora: { r: 2, alpha: 2, scaling: 'standard', dropout: 0, init: 'gaussian', targetModules: ['linear'], trainBias: false },
  optimizer: { name: 'adam', lr: 0.01, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0, gradClip: 0 },
  schedule: { name: 'constant', warmupSteps: 0, minLrRatio: 0 },
  training: { steps: 10, batchSize: 4, seed: 7, evalEvery: 5, evalBatches: 1, checkpointEvery: 5, logEvery: 1 },
  outputDir: 'lora-runs',
};
const backend = { name: 'cpu' as const, notes: [] };
const versions = { loraLab: '0.0.0', tfjs: '4.22.0', node: process.versions.node };
const point = (step: number): MetricPoint => ({ step, loss: 1 / step, lr: 0.01, gradNorm: 0.5, elapsedMs: step * 10 });

describe('runs/runStore', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-runs-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const newRun = (now?: Date) => RunFolder.create(tmp, { config, backend, versions, totalSteps: 10, now });

  it('names runs <name>-<yyyymmdd-hhmmss>-<4 hex> with a file-system-safe name', () => {
    const id = makeRunId('my run/../x', new Date(2026, 0, 2, 3, 4, 5), 'beef');
    assert.equal(id, 'my-run-x-20260102-030405-beef');
    assert.match(makeRunId('///'), /^run-\d{8}-\d{6}-[0-9a-f]{4}$/);
  });

  it('creates run.json (running, this pid and host) and config.json', async () => {
    const run = await newRun();
    assert.match(path.basename(run.dir), /^tiny-test-\d{8}-\d{6}-[0-9a-f]{4}$/);
    const info = JSON.parse(fs.readFileSync(path.join(run.dir, 'run.json'), 'utf8')) as RunInfo;
    assert.equal(info.status, 'running');
    assert.equal(info.pid, process.pid);
    assert.equal(info.hostname, os.hostname());
    assert.equal(info.seed, 7);
    assert.deepEqual(run.readConfig(), config);
    await run.update({ status: 'cancelled', step: 4 });
    assert.equal(RunFolder.open(run.dir).runInfo.status, 'cancelled');
    // Only run.json, config.json and the run's lock: no temp files left behind by the atomic writes.
    assert.deepEqual(fs.readdirSync(run.dir).sort(), ['config.json', 'run.json', 'run.lock.1']);
  });

  it('appends metrics, skips a torn last line, rejects damage elsewhere, truncates past a step', async () => {
    const run = await newRun();
    run.appendMetrics([point(1), point(2)]);
    run.appendMetrics([point(3)]);
    fs.appendFileSync(path.join(run.dir, 'metrics.jsonl'), '{"step":4,"loss":0.2'); // killed mid-write
    assert.deepEqual(run.readMetrics().map((p) => p.step), [1, 2, 3]);
    assert.throws(() => parseMetricsJsonl('{"step":1}\n{"st\n{"step":3}\n', 'm.jsonl'), /m\.jsonl:2: not a JSON metric line/);
    const kept = await run.truncateMetrics(2);
    assert.deepEqual(kept.map((p) => p.step), [1, 2]);
    assert.equal(fs.readFileSync(path.join(run.dir, 'metrics.jsonl'), 'utf8').split('\n').length, 3); // 2 lines + final ''
  });

  it('keeps every checkpoint when keep is 0', async () => {
    const run = await newRun();
    for (let step = 1; step <= 12; step++) {
      await run.writeCheckpoint({ step, tensors: { 'lora.A': { shape: [1], data: new Float32Array([step]) } }, state: {} }, 0);
    }
    assert.deepEqual(run.listCheckpoints(), Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('writes checkpoints through a temp folder, keeps the newest K, reads them back exactly', async () => {
    const run = await newRun();
    const data = new Float32Array([1.5, -2.25, 3e-8, Math.fround(Math.PI), 0, -0]);
    for (let step = 1; step <= 5; step++) {
      await run.writeCheckpoint({ step, tensors: { 'lora.A': { shape: [2, 3], data: data.map((x) => x * step) } }, state: { opt: { t: step } } }, 3);
    }
    assert.deepEqual(run.listCheckpoints(), [3, 4, 5]);
    assert.equal(run.storedInfo.lastCheckpointStep, 5);
    const c = run.readCheckpoint();
    assert.equal(c.info.step, 5);
    assert.deepEqual(c.info.state, { opt: { t: 5 } });
    assert.deepEqual(c.tensors['lora.A'].shape, [2, 3]);
    assert.deepEqual(Array.from(c.tensors['lora.A'].data), Array.from(data.map((x) => x * 5)));
    // A write killed half-way leaves a .tmp- folder: it is not a checkpoint, and the next write clears it.
    fs.mkdirSync(path.join(run.dir, 'checkpoints', '.tmp-step-6-dead'));
    fs.mkdirSync(path.join(run.dir, 'checkpoints', 'step-7')); // no checkpoint.json: incomplete
    assert.deepEqual(run.listCheckpoints(), [3, 4, 5]);
    await run.writeCheckpoint({ step: 5, tensors: { x: { shape: [1], data: new Float32Array([9]) } }, state: {} }, 3);
    assert.ok(!fs.existsSync(path.join(run.dir, 'checkpoints', '.tmp-step-6-dead')));
    assert.deepEqual(Array.from(run.readCheckpoint(5).tensors.x.data), [9]);
    assert.throws(() => run.readCheckpoint(2), (e: unknown) => RunError.is(e, 'no-checkpoint') && /step 2/.test((e as Error).message));
  });

  it('writes the adapter in PEFT layout and the reference tensors', async () => {
    const run = await newRun();
    assert.equal(loadRun(run.dir).adapterDir, undefined);
    const A = { shape: [2, 8], data: new Float32Array(16).fill(0.5) };
    const B = { shape: [6, 2], data: new Float32Array(12).fill(-1) };
    run.writeAdapter({
      config: { peft_type: 'LORA', r: 2, lora_alpha: 2, target_modules: ['linear'] },
      tensors: { 'base_model.model.linear.lora_A.weight': A, 'base_model.model.linear.lora_B.weight': B },
    });
    run.writeTruth({ true_delta_w: { shape: [6, 8], data: new Float32Array(48).fill(2) } });
    const loaded = loadRun(run.dir);
    assert.equal(loaded.adapterDir, path.join(run.dir, 'adapter'));
    const cfg = JSON.parse(fs.readFileSync(path.join(loaded.adapterDir!, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    const st = parseSafetensors(fs.readFileSync(path.join(loaded.adapterDir!, 'adapter_model.safetensors')));
    assert.deepEqual(st.entry('base_model.model.linear.lora_A.weight').shape, [2, 8]);
    assert.equal(st.entry('base_model.model.linear.lora_B.weight').dtype, 'F32');
    assert.deepEqual(run.readTruth()!.true_delta_w.shape, [6, 8]);
  });

  it("reports a 'running' run whose process is gone as 'interrupted'", async () => {
    const run = await newRun();
    assert.equal(run.runInfo.status, 'running'); // our own pid is alive
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const info = { ...run.storedInfo, pid: Number(dead.stdout) };
    assert.equal(effectiveStatus(info), 'interrupted');
    assert.equal(effectiveStatus({ ...info, hostname: 'some-other-host' }), 'running'); // cannot tell: trust the file
    assert.equal(effectiveStatus({ ...info, status: 'completed' }), 'completed');
    // Our own (live) pid, but recorded before this machine's last boot: the pid was reused, the run is gone.
    const live = run.storedInfo;
    assert.ok(live.bootTime !== undefined && Math.abs(live.bootTime - (Date.now() - os.uptime() * 1000)) < 5000);
    assert.equal(effectiveStatus({ ...live, bootTime: live.bootTime - 3_600_000 }), 'interrupted');
    assert.equal(effectiveStatus({ ...live, bootTime: live.bootTime + 2_000 }), 'running');
    assert.equal(effectiveStatus({ ...live, bootTime: undefined }), 'running'); // runs written before bootTime existed
    await run.update({ pid: Number(dead.stdout) });
    assert.equal(loadRun(run.dir).info.status, 'interrupted');
    assert.equal(listRuns(tmp)[0].info.status, 'interrupted');
  });

  it('markInterrupted turns a running run whose thread died into a resumable one, and leaves others alone', async () => {
    const run = await newRun();
    assert.equal(await markInterrupted(run.dir, 'the training worker crashed'), 'interrupted');
    const info = loadRun(run.dir).info;
    assert.equal(info.status, 'interrupted');
    assert.equal(info.error, 'the training worker crashed');
    await RunFolder.open(run.dir).update({ status: 'completed' });
    assert.equal(await markInterrupted(run.dir), 'completed');
  });

  it('lists runs newest first and skips folders that are not runs', async () => {
    const a = await newRun(new Date(2026, 0, 1, 10, 0, 0));
    const b = await newRun(new Date(2026, 0, 1, 11, 0, 0));
    fs.mkdirSync(path.join(tmp, 'not-a-run'));
    fs.mkdirSync(path.join(tmp, 'broken'));
    fs.writeFileSync(path.join(tmp, 'broken', 'run.json'), '{ nope');
    fs.writeFileSync(path.join(tmp, 'stray.txt'), '');
    assert.deepEqual(listRuns(tmp).map((r) => r.dir), [b.dir, a.dir]);
    assert.deepEqual(listRuns(path.join(tmp, 'missing')), []);
    assert.throws(() => loadRun(path.join(tmp, 'not-a-run')), (e: unknown) => RunError.is(e, 'not-a-run') && /no run\.json/.test((e as Error).message));
    assert.throws(() => RunFolder.open(path.join(tmp, 'broken')), (e: unknown) => RunError.is(e, 'bad-run-file') && /not valid JSON/.test((e as Error).message));
  });

  it('writes every byte when the device takes a few at a time', async () => {
    const run = await RunFolder.create(tmp, { config, backend, versions, totalSteps: 10, fs: trickleFs });
    const data = Float32Array.from({ length: 300 }, (_, i) => i / 7);
    await run.writeCheckpoint({ step: 3, tensors: { w: { shape: [300], data } }, state: { t: 3 } }, 3);
    run.writeAdapter({ config: { r: 2 }, tensors: { a: { shape: [300], data } } });
    run.appendMetrics([point(1), point(2)]);
    assert.equal(run.verifyCheckpoint(3), undefined);
    assert.deepEqual(Array.from(run.readCheckpoint(3).tensors.w.data), Array.from(data));
    assert.deepEqual(run.readMetrics().map((p) => p.step), [1, 2]);
    assert.equal(RunFolder.open(run.dir).storedInfo.lastCheckpointStep, 3);
  });

  it('checks each checkpoint against its manifest (size, SHA-256) and for non-finite values', async () => {
    const run = await newRun();
    const t = (x: number) => ({ w: { shape: [4], data: new Float32Array([x, 1, 2, 3]) } });
    for (const step of [1, 2, 3, 4]) await run.writeCheckpoint({ step, tensors: t(step), state: {} }, 0);
    const manifest = JSON.parse(fs.readFileSync(path.join(run.checkpointDir(4), 'manifest.json'), 'utf8'));
    assert.deepEqual(Object.keys(manifest.files).sort(), ['checkpoint.json', 'tensors.safetensors']);
    assert.match(manifest.files['tensors.safetensors'].sha256, /^[0-9a-f]{64}$/);
    assert.equal(run.newestGoodCheckpoint().step, 4);
    // A flipped byte in the newest, a truncated file in the one before: both are skipped, with why.
    const t4 = path.join(run.checkpointDir(4), 'tensors.safetensors');
    const bytes = fs.readFileSync(t4);
    bytes[bytes.length - 1] ^= 0x40;
    fs.writeFileSync(t4, bytes);
    const t3 = path.join(run.checkpointDir(3), 'tensors.safetensors');
    fs.truncateSync(t3, 20);
    const good = run.newestGoodCheckpoint();
    assert.equal(good.step, 2);
    assert.deepEqual(good.skipped.map((s) => s.step), [4, 3]);
    assert.match(good.skipped[0].problem, /tensors\.safetensors does not match the SHA-256 in manifest\.json/);
    assert.match(good.skipped[1].problem, /tensors\.safetensors is 20 bytes, the manifest says \d+/);
    // Written faithfully, but NaN: a checkpoint no training can continue from.
    await run.writeCheckpoint({ step: 5, tensors: t(NaN), state: {} }, 0);
    assert.match(run.verifyCheckpoint(5)!, /tensor w holds NaN at index 0/);
    // A checkpoint whose manifest is missing in a new-style folder (manifest written last, so: incomplete).
    fs.rmSync(path.join(run.checkpointDir(2), 'manifest.json'));
    fs.writeFileSync(path.join(run.checkpointDir(2), 'manifest.json'), '{"formatVersion":1,"files":{"../run.json":{"size":1,"sha256":"x"}}}');
    assert.match(run.verifyCheckpoint(2)!, /does not list|outside the checkpoint/);
    assert.equal(run.newestGoodCheckpoint().step, 1);
  });

  it('never prunes the last good checkpoint: a new one that does not read back as written stops the run first', async () => {
    const good = await newRun();
    await good.writeCheckpoint({ step: 1, tensors: { w: { shape: [64], data: new Float32Array(64).fill(1) } }, state: {} }, 1);
    const lying = RunFolder.open(good.dir, lyingFs());
    await assert.rejects(
      lying.writeCheckpoint({ step: 2, tensors: { w: { shape: [64], data: new Float32Array(64).fill(2) } }, state: {} }, 1),
      (e: unknown) => RunError.is(e, 'io') && /step-2: the checkpoint did not read back as written \(tensors\.safetensors is \d+ bytes, the manifest says \d+\); the older checkpoints are kept/.test((e as Error).message),
    );
    assert.equal(good.verifyCheckpoint(1), undefined, 'step-1 is still there and good');
    assert.equal(RunFolder.open(good.dir).newestGoodCheckpoint().step, 1);
  });

  it('names the file and the cause in words when a write fails, and marks run.json failed in place on a full disk', async () => {
    const run = await newRun();
    const full = RunFolder.open(run.dir, new FaultyFs({ op: 'write', n: 1, mode: 'full' }));
    await assert.rejects(full.update({ step: 3 }), (e: unknown) => {
      assert.ok(RunError.is(e, 'io'));
      assert.match((e as Error).message, new RegExp(`^${run.dir}/\\.run\\.json\\..*\\.tmp: cannot write: the disk is full \\(ENOSPC\\)$`));
      return true;
    });
    assert.equal(RunFolder.open(run.dir).storedInfo.status, 'running');
    assert.equal(full.markFailedInPlace(), true);
    const info = JSON.parse(fs.readFileSync(path.join(run.dir, 'run.json'), 'utf8')) as RunInfo;
    assert.equal(info.status, 'failed');
    assert.equal(info.runId, run.storedInfo.runId);
    assert.deepEqual(fs.readdirSync(run.dir).filter((n) => n.endsWith('.tmp')), [], 'no temp file left');
  });

  it('refuses a run folder cut off before run.json was written, saying how to start again', async () => {
    const dir = path.join(tmp, 'cut');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    assert.throws(
      () => RunFolder.open(dir),
      (e: unknown) => RunError.is(e, 'cut-off') && /cut off while it was being created, before its run\.json was written; no step was trained.*lora-lab train CONFIG/.test((e as Error).message),
    );
    // A creation that fails takes its half-made folder away.
    const failing = new FaultyFs({ op: 'write', n: 2, mode: 'error', code: 'EROFS' });
    await assert.rejects(RunFolder.create(path.join(tmp, 'ro'), { config, backend, versions, totalSteps: 10, fs: failing }), /config\.json.*: cannot write: the file system is read-only \(EROFS\)/);
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'ro')), []);
  });

  it('says what an errno means in words, with the code, without repeating the path', () => {
    const err = (code: string, text: string) => Object.assign(new Error(`${code}: ${text}`), { code });
    assert.equal(explainFsError(err('EFBIG', "file too large, write '/x'")), 'the file would exceed the largest file this process may write, e.g. a `ulimit -f` limit (EFBIG)');
    assert.equal(explainFsError(err('EROFS', "read-only file system, open '/x'")), 'the file system is read-only (EROFS)');
    assert.equal(explainFsError(err('EXDEV', "cross-device link not permitted, rename '/a' -> '/b'")), 'cross-device link not permitted (EXDEV)');
  });
});
