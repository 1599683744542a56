// Runners for exported jobs, with real parts: the Python check runs real interpreters (../shared/pystack,
// a missing one, one whose peft is absent or too old), the SSH runner talks to Debian's sshd started on
// localhost with a temporary key (ssh and rsync are the real clients) and runs the job with the pystack.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkPython, minimumVersions, versionAtLeast } from '../../../src/runners/pythonCheck';
import { checkHost, classifySshFailure, RemoteRunFollower, SshError, sshConfigHosts, startRemoteJob, type SshTarget } from '../../../src/runners/sshRunner';
import { requestStop, startLocalJob } from '../../../src/runners/localRunner';
import { exportJob } from '../../../src/export/exportJob';
import { loadRun } from '../../../src/runs/runStore';
import { loadRunSource } from '../../../src/dashboard/dashboardData';
import { freePort, SSHD, TestSshd } from './sshd';

const REPO = path.resolve(__dirname, '../../..');
const EXAMPLES = path.join(REPO, 'examples');
const PYSTACK = path.resolve(REPO, '../shared/pystack/python');
const hasStack = () => fs.existsSync(PYSTACK);

function config(dir: string, steps: number): string {
  const file = path.join(dir, 'tiny-llama.lora.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      name: 'tiny-llama',
      kind: 'causal-lm',
      model: { modelPath: path.join(EXAMPLES, 'models/tiny-llama'), dataset: { path: path.join(EXAMPLES, 'models/lora-notes.txt'), seqLen: 64, tokenizer: 'bytes' } },
      lora: { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] },
      optimizer: { name: 'adamw', lr: 0.003 },
      training: { steps, batchSize: 8, evalEvery: 100, checkpointEvery: 50 },
    }),
  );
  return file;
}

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('runners: the Python check', function () {
  this.timeout(60_000);
  let dir: string;
  let stackSite: string | undefined;
  before(function () {
    if (!hasStack()) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-pycheck-'));
    const r = spawnSync(PYSTACK, ['-c', 'import os, transformers; print(os.path.dirname(os.path.dirname(transformers.__file__)))'], { encoding: 'utf8' });
    stackSite = r.stdout.trim();
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('versions compare numerically; the bounds are requirements.txt\'s', () => {
    assert.ok(versionAtLeast('1.13.0a0', '1.13'));
    assert.ok(versionAtLeast('4.39.0.dev0', '4.39'));
    assert.ok(!versionAtLeast('0.9.1', '0.13'));
    assert.deepEqual(minimumVersions('torch>=1.13\ntransformers>=4.39,<5\n# x>=1\npeft >= 0.13'), { torch: '1.13', transformers: '4.39', peft: '0.13' });
  });

  it('passes the pystack, with the versions it imported', async () => {
    const c = await checkPython(PYSTACK);
    assert.equal(c.ok, true, c.message);
    assert.deepEqual(Object.keys(c.versions).sort(), ['accelerate', 'peft', 'torch', 'transformers']);
  });

  it('no Python: says so and names the setting', async () => {
    const c = await checkPython(path.join(dir, 'no-such-python'));
    assert.equal(c.ok, false);
    assert.match(c.message, /no Python at .*no-such-python.*loraLab\.python/);
  });

  it('a Python without peft, or with a too old peft: names the package and gives the install command', async () => {
    for (const [name, body, expect] of [
      ['missing', 'raise ImportError("No module named peft")', /not importable: peft\..*Install with: .* -m pip install -r .*requirements\.txt/],
      ['old', '__version__ = "0.5.0"', /too old: peft 0\.5\.0 \(need >= 0\.13\)/],
    ] as const) {
      const shadow = path.join(dir, name);
      fs.mkdirSync(path.join(shadow, 'peft'), { recursive: true });
      fs.writeFileSync(path.join(shadow, 'peft/__init__.py'), body + '\n');
      const c = await checkPython('/usr/bin/python3', { env: { ...process.env, PYTHONPATH: `${shadow}:${stackSite}` } });
      assert.equal(c.ok, false, name);
      assert.match(c.message, expect);
    }
  });

  it('the local runner starts the job detached; STOP ends it with a checkpoint', async () => {
    const job = path.join(dir, 'job');
    await exportJob({ configPath: config(dir, 400), outDir: job });
    const runDir = path.join(dir, 'local-run');
    const started = startLocalJob({ python: PYSTACK, jobDir: job, runDir, args: ['--use-cpu'], env: { ...process.env, OMP_NUM_THREADS: '1' } });
    await until('metrics', 30_000, () => (fs.existsSync(path.join(runDir, 'metrics.jsonl')) && fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n').length > 3 ? true : undefined));
    assert.equal(loadRun(runDir).info.status, 'running');
    requestStop(runDir);
    await until('the job to exit', 30_000, () => (alive(started.pid) ? undefined : true));
    const run = loadRun(runDir);
    assert.equal(run.info.status, 'cancelled', fs.readFileSync(started.logFile, 'utf8').slice(-2000));
    assert.equal(run.checkpoints[run.checkpoints.length - 1], run.info.step);
  });
});

describe('runners: SSH host (Debian sshd on localhost)', function () {
  this.timeout(120_000);
  let sshd: TestSshd;
  let dir: string;
  let job: string;
  before(async function () {
    if (!hasStack() || !fs.existsSync(SSHD)) this.skip();
    sshd = await TestSshd.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-ssh-'));
    job = path.join(dir, 'job');
    await exportJob({ configPath: config(dir, 400), outDir: job });
  });
  after(async () => {
    await sshd?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('logs in with the key; a wrong key and an unreachable host are clear errors', async () => {
    await checkHost(sshd.target);
    const wrongKey: SshTarget = { ...sshd.target, identityFile: path.join(sshd.dir, 'other_key') };
    await assert.rejects(checkHost(wrongKey), (e: unknown) => SshError.is(e, 'auth') && /login was refused.*other_key/.test((e as Error).message));
    const nobody: SshTarget = { ...sshd.target, port: await freePort() };
    await assert.rejects(checkHost(nobody), (e: unknown) => SshError.is(e, 'unreachable') && /unreachable \(.*refused/i.test((e as Error).message));
  });

  it('a remote Python without the stack is refused before anything is copied', async () => {
    const remoteDir = path.join(dir, 'remote-nopy');
    await assert.rejects(
      startRemoteJob({ target: sshd.target, jobDir: job, mirrorDir: path.join(dir, 'mirror-nopy'), remoteDir, python: path.join(dir, 'no-python') }),
      (e: unknown) => SshError.is(e, 'no-python') && /cannot import torch/.test((e as Error).message),
    );
    assert.equal(fs.existsSync(remoteDir), false, 'nothing copied');
    assert.equal(fs.existsSync(path.join(dir, 'mirror-nopy')), false);
  });

  it('starts detached, streams the run back, reattaches, survives a dropped connection, stops with a checkpoint', async () => {
    const mirror = path.join(dir, 'mirror');
    const remoteDir = path.join(dir, 'remote');
    const rec = await startRemoteJob({ target: sshd.target, jobDir: job, mirrorDir: mirror, remoteDir, python: PYSTACK, args: ['--use-cpu'] });
    assert.ok(fs.existsSync(path.join(remoteDir, 'job/train.py')), 'the job was copied');

    // Live metrics: each sync brings the run folder back; the dashboard reads the mirror like any run.
    const follower = new RemoteRunFollower(mirror);
    const n1 = await until('metrics over ssh', 30_000, async () => {
      await follower.sync();
      const m = fs.existsSync(path.join(mirror, 'run.json')) ? loadRun(mirror).metrics.length : 0;
      return m >= 3 ? m : undefined;
    });
    assert.equal(loadRun(mirror).info.status, 'running');
    assert.ok(((await loadRunSource(mirror)).metrics?.step.length ?? 0) >= 3);

    // A reloaded window: a new follower from remote.json picks the run up again.
    const again = new RemoteRunFollower(mirror);
    assert.equal(again.record.pid, rec.pid);
    await until('more metrics after reattaching', 30_000, async () => {
      await again.sync();
      return loadRun(mirror).metrics.length > n1 ? true : undefined;
    });

    // The connection drops: the run is marked disconnected, the remote job keeps training.
    await sshd.down();
    const lost = await again.sync();
    assert.equal(lost.state, 'disconnected');
    assert.match(lost.lastError ?? '', /unreachable/);
    assert.ok(alive(rec.pid), 'the remote job was left alone');
    await sshd.up();
    assert.equal((await again.sync()).state, 'connected');
    assert.equal(await again.alive(), true);

    // Stop: STOP remotely, the job ends after its update with a checkpoint, and that comes back too.
    await again.stop();
    await until('the job to stop', 30_000, async () => ((await again.alive()) ? undefined : true));
    await again.sync();
    const run = loadRun(mirror);
    assert.equal(run.info.status, 'cancelled');
    assert.ok(run.info.step < 400);
    assert.equal(run.checkpoints[run.checkpoints.length - 1], run.info.step, 'the final checkpoint was copied back');
  });

  it('a full remote disk: the copy fails with what to do, nothing is started, the job folder is unchanged', async function () {
    // A 16 KiB tmpfs stands in for the remote disk (the job is ~60 KiB); mounting needs CAP_SYS_ADMIN.
    const full = path.join(dir, 'full-disk');
    fs.mkdirSync(full);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', full], { encoding: 'utf8' });
    if (m.status !== 0) {
      console.log(`    (no full-disk case: cannot mount a small tmpfs here: ${m.stderr.trim()})`);
      this.skip();
    }
    try {
      const before = fs.readdirSync(job).sort();
      await assert.rejects(
        startRemoteJob({ target: sshd.target, jobDir: job, mirrorDir: path.join(dir, 'mirror-full'), remoteDir: path.join(full, 'job1'), python: PYSTACK }),
        (e: unknown) => SshError.is(e, 'disk-full') && /remote disk is full while copying the job.*Free space there/.test((e as Error).message),
      );
      assert.equal(fs.existsSync(path.join(full, 'job1/run/run.json')), false, 'nothing started');
      assert.equal(fs.existsSync(path.join(dir, 'mirror-full')), false);
      assert.deepEqual(fs.readdirSync(job).sort(), before);
    } finally {
      // Lazy: the receiving rsync may still be closing its files there.
      spawnSync('umount', ['-l', full]);
    }
  });

  it('names a full remote disk and ssh config hosts', () => {
    const e = classifySshFailure(sshd.target, 'rsync: [receiver] write failed on "/data/x/job/train.py": No space left on device (28)\nrsync error: error in file IO (code 11)', 'copying the job');
    assert.equal(e.reason, 'disk-full');
    assert.match(e.message, /remote disk is full while copying the job.*Free space/);
    assert.deepEqual(sshConfigHosts('Host gpu-box\n  HostName 10.0.0.5\nHost *.corp a100 *\nhost b200\n'), ['gpu-box', 'a100', 'b200']);
  });
});
