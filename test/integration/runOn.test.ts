// "Run Experiment On…" in the real VS Code: an SSH host (Debian's sshd started here on localhost with a
// temporary key; ssh and rsync are the real clients; the job runs on ../shared/pystack), followed live in
// the Runs view and the dashboard, reattached after the extension forgets it (as after a reload), marked
// disconnected while sshd is down and followed again after, then stopped with a checkpoint. Then a local
// Python run, and the bad inputs the command must explain (no Python, no stack, wrong key, no host).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LoraLabApi } from '../../src/extension';
import { RemoteRunFollower, sshRun, type RemoteRunRecord } from '../../src/runners/sshRunner';
import { freePort, SSHD, TestSshd } from '../unit/runners/sshd';
import { api, EXTENSION_ID, waitFor, workspaceDir } from './helpers';

const restricted = process.env.LORA_LAB_RESTRICTED === '1';

function extensionPath(): string {
  return vscode.extensions.getExtension(EXTENSION_ID)!.extensionPath;
}

/** ../shared/pystack/python beside the repository (the real transformers + PEFT stack), if present. */
function pystack(): string | undefined {
  const p = path.resolve(extensionPath(), '..', 'shared', 'pystack', 'python');
  return fs.existsSync(p) ? p : undefined;
}

/** A short tiny-llama experiment in the workspace (its model and data from the repository's examples). */
function writeConfig(name: string, steps: number): vscode.Uri {
  const ex = path.join(extensionPath(), 'examples', 'models');
  const file = path.join(workspaceDir(), `${name}.lora.json`);
  fs.writeFileSync(
    file,
    JSON.stringify(
      {
        name,
        kind: 'causal-lm',
        model: { modelPath: path.join(ex, 'tiny-llama'), dataset: { path: path.join(ex, 'lora-notes.txt'), seqLen: 32, tokenizer: 'bytes' } },
        lora: { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] },
        optimizer: { name: 'adamw', lr: 0.003 },
        training: { steps, batchSize: 4, evalEvery: steps, checkpointEvery: steps },
        outputDir: `runs-${name}`,
      },
      null,
      2,
    ),
  );
  return vscode.Uri.file(file);
}

function metricSteps(dir: string): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => (JSON.parse(l) as { step: number }).step);
  } catch {
    return [];
  }
}

const lastStep = (dir: string) => metricSteps(dir).pop() ?? 0;
const record = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'remote.json'), 'utf8')) as RemoteRunRecord;
const runJson = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')) as { status: string; step: number };

async function setting(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('loraLab').update(key, value, vscode.ConfigurationTarget.Workspace);
}

/** Runs the command and returns the message it showed (it must not start anything). */
async function refusal(a: LoraLabApi, args: unknown[]): Promise<string> {
  const before = a.runOnMessages.length;
  const r = await vscode.commands.executeCommand<string | undefined>('loraLab.runExperimentOn', ...args);
  assert.equal(r, undefined, 'the command started a run on bad input');
  const shown = a.runOnMessages.slice(before).filter((m) => m.level === 'error');
  assert.equal(shown.length, 1, `expected one error message, got ${JSON.stringify(a.runOnMessages.slice(before))}`);
  return shown[0].message;
}

(restricted ? describe.skip : describe)('Run Experiment On… (SSH host, local Python)', function () {
  this.timeout(240_000);
  let sshd: TestSshd | undefined;
  let stack: string | undefined;
  // SSH runs started here: ended and removed on the host (this machine) whatever the outcome.
  const remoteRuns: string[] = [];
  let sshdDown = false;

  before(async function () {
    stack = pystack();
    if (!fs.existsSync(SSHD) || !stack) {
      console.log(`skipped: ${!fs.existsSync(SSHD) ? `no sshd at ${SSHD} (apt-get install openssh-server)` : 'no ../shared/pystack/python (transformers + PEFT on python3-torch)'}`);
      this.skip();
    }
    sshd = await TestSshd.start();
    await setting('remotePython', stack);
  });
  after(async () => {
    for (const dir of remoteRuns) {
      const rec = record(dir);
      if (sshdDown) await sshd?.up().catch(() => undefined);
      sshdDown = false;
      await sshRun(sshd!.target, `kill ${rec.pid} 2>/dev/null; sleep 1; kill -9 ${rec.pid} 2>/dev/null; rm -rf '${rec.remoteDir}'`, 'cleaning up').catch((e: Error) => console.log(`cleanup of ${rec.remoteDir}: ${e.message}`));
    }
    await sshd?.dispose();
    await setting('remotePython', undefined);
    await setting('python', undefined);
  });

  it('SSH: starts, follows live in the Runs view and the dashboard, reattaches, survives a dropped connection, stops with a checkpoint', async () => {
    const a = await api();
    const config = writeConfig('ssh-tiny', 100000);
    const runDir = await vscode.commands.executeCommand<string | undefined>('loraLab.runExperimentOn', config, 'ssh', sshd!.target);
    assert.ok(runDir, `no run started: ${JSON.stringify(a.runOnMessages.slice(-2))}`);
    remoteRuns.push(runDir);
    assert.equal(record(runDir).target.port, sshd!.port);
    // Live metrics, synced back by rsync, in the mirror folder and in the dashboard's session.
    await waitFor('the first synced metrics', () => lastStep(runDir) >= 2, 120_000, 200);
    const entry = await waitFor('the run in the Runs view', async () => (await a.runs.getChildren()).find((e) => 'dir' in e && e.dir === runDir), 20_000, 200);
    const item = a.runs.getTreeItem(entry);
    assert.match(String(item.description), /on 127\.0\.0\.1/, 'the Runs view names the host');
    const dashStep = () => {
      const src = a.dashboardSnapshots().flatMap((s) => s.sources).find((s) => s.path === runDir);
      return src?.metrics?.step.at(-1) ?? 0;
    };
    const seen = await waitFor(
      'live points in the dashboard session',
      () => dashStep() >= 2 && dashStep(),
      30_000,
      200,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; dashboards: ${JSON.stringify(a.dashboardSnapshots().map((s) => s.sources.map((x) => [x.kind, x.path, x.metrics?.step.length])))}, requests ${JSON.stringify(a.dashboardRequests.slice(-3))}`);
    });
    await waitFor('more points in the dashboard session', () => dashStep() > seen, 30_000, 200);

    // Reload: the extension forgets the run, then finds it again from remote.json; the job never stopped.
    a.remote.detachAll();
    assert.equal(a.remote.following.length, 0);
    assert.equal(await new RemoteRunFollower(runDir).alive(), true, 'the remote job ended when the window let go of it');
    const beforeReattach = lastStep(runDir);
    await a.remote.reattachAll();
    assert.ok(a.remote.following.includes(runDir), 'reattach did not find the run');
    await waitFor('metrics after reattach', () => lastStep(runDir) > beforeReattach, 30_000, 200);

    // A dropped connection: "disconnected" (the Runs view says so), the job goes on, followed again after.
    await sshd!.down();
    sshdDown = true;
    await waitFor('the run marked disconnected', () => record(runDir).state === 'disconnected', 20_000, 200);
    a.runs.refresh();
    const dropped = await waitFor('the Runs view row', async () => (await a.runs.getChildren()).find((e) => 'dir' in e && e.dir === runDir), 10_000, 200);
    assert.match(String(a.runs.getTreeItem(dropped).description), /\(disconnected\)/);
    const atDrop = lastStep(runDir);
    await sshd!.up();
    sshdDown = false;
    await waitFor('reconnected with newer metrics', () => record(runDir).state === 'connected' && lastStep(runDir) > atDrop, 60_000, 250);

    // Stop: STOP remotely, the job ends with a checkpoint, which comes back with the final status.
    await vscode.commands.executeCommand('loraLab.stopRun', runDir);
    const final = await waitFor('the cancelled run synced back', () => (fs.existsSync(path.join(runDir, 'run.json')) && runJson(runDir).status !== 'running' ? runJson(runDir) : undefined), 90_000, 250);
    assert.equal(final.status, 'cancelled');
    assert.ok(final.step < 100000);
    await waitFor(`checkpoints/step-${final.step}`, () => fs.existsSync(path.join(runDir, 'checkpoints', `step-${final.step}`)), 20_000, 250);
    await waitFor('the dashboard session at the stopped run', () => a.dashboardSnapshots().some((s) => s.sources.some((x) => x.path === runDir && x.run?.status === 'cancelled')), 20_000, 200);
    console.log(`ssh run stopped at step ${final.step}`);
  });

  it('local Python (loraLab.python = the pystack): runs the exported job to the end as a LoRA Lab run', async () => {
    const a = await api();
    await setting('python', stack);
    const runDir = await vscode.commands.executeCommand<string | undefined>('loraLab.runExperimentOn', writeConfig('local-tiny', 6), 'local');
    assert.ok(runDir, `no run started: ${JSON.stringify(a.runOnMessages.slice(-2))}`);
    const done = await waitFor('the local run completed', () => (fs.existsSync(path.join(runDir, 'run.json')) && runJson(runDir).status !== 'running' ? runJson(runDir) : undefined), 150_000, 250);
    assert.equal(done.status, 'completed', fs.existsSync(path.join(runDir, 'train.log')) ? fs.readFileSync(path.join(runDir, 'train.log'), 'utf8').slice(-2000) : '');
    assert.equal(metricSteps(runDir).at(-1), 6);
    assert.ok(fs.existsSync(path.join(runDir, 'adapter', 'adapter_model.safetensors')));
  });

  it('bad input: each a clear message naming what to do, nothing started', async () => {
    const a = await api();
    const config = writeConfig('bad-tiny', 4);
    await setting('python', '/nonexistent/python3');
    assert.match(await refusal(a, [config, 'local']), /no Python at "\/nonexistent\/python3".*loraLab\.python/);
    // Debian's python3 has torch but not transformers / peft (they are in the pystack's own folder).
    const bare = spawnSync('python3', ['-c', 'import transformers, peft'], { encoding: 'utf8' });
    if (bare.status !== 0) {
      await setting('python', 'python3');
      assert.match(await refusal(a, [config, 'local']), /python3 \(Python [\d.]+\) cannot run the job: not importable: .*(transformers|peft).*Install with: python3 -m pip install -r/);
    }
    const t = sshd!.target;
    assert.match(await refusal(a, [config, 'ssh', { ...t, identityFile: path.join(sshd!.dir, 'other_key') }]), /login was refused .*other_key.*authorized_keys/);
    assert.match(await refusal(a, [config, 'ssh', { ...t, port: await freePort() }]), /is unreachable .*Check the host name, port and network/);
    assert.match(await refusal(a, [config, 'ssh', { host: 'x', port: 'twenty-two' }]), /"port" should be 1-65535, got "twenty-two"/);
    if (bare.status !== 0) {
      await setting('remotePython', 'python3');
      assert.match(await refusal(a, [config, 'ssh', t]), /python3 cannot import torch \/ transformers \/ peft \/ accelerate .*nothing was copied or started/);
    }
    assert.ok(!fs.existsSync(path.join(workspaceDir(), 'runs-bad-tiny')) || fs.readdirSync(path.join(workspaceDir(), 'runs-bad-tiny')).every((f) => f === '.jobs'), 'a refused run left a run folder');
  });
});
