// One short real training job in the worker, from the command palette's command: progress, Cancel
// (stops within one step, leaves a checkpoint), Resume to the end, the host's longest event-loop stall,
// a crashed worker, and a run interrupted without cleanup (as when the window is closed).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TrainingJob } from '../../src/jobs/trainingJob';
import { listRunsInWorkspace } from '../../src/jobs/runIndex';
import { api, hoverAt, waitFor, wsUri, adapterRows } from './helpers';
import { freedesktopTrashDir } from '../../src/jobs/trash';

const restricted = process.env.LORA_LAB_RESTRICTED === '1';
const STALL_LIMIT_MS = 50;

function metricsSteps(runDir: string): number[] {
  return fs
    .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => (JSON.parse(l) as { step: number }).step);
}

(restricted ? describe.skip : describe)('Training from VS Code', function () {
  this.timeout(180_000);
  const config = () => wsUri('quick.lora.json');

  it('trains in a worker with progress, cancels within a step leaving a checkpoint, and resumes to the end', async () => {
    const a = await api();
    const job = await vscode.commands.executeCommand<TrainingJob>('loraLab.trainExperiment', config());
    const startedAt = new Date().toISOString();
    assert.ok(job, 'Train Experiment returned no job');
    assert.ok(job.runDir && fs.existsSync(path.join(job.runDir, 'run.json')), 'no run folder after didStart');
    const runDir = job.runDir;
    // Wait for progress past the first checkpoint, then cancel through the command.
    await waitFor('progress past step 150', () => job.progress.step >= 150, 60_000);
    const t0 = Date.now();
    await vscode.commands.executeCommand('loraLab.stopTraining');
    const r = await job.finished;
    assert.equal(r.status, 'cancelled', r.error);
    assert.ok(r.step < 3000, 'the run ended instead of stopping');
    // The worker stops after the step it is on and writes a checkpoint; how many steps may pass is the
    // worker's unit test (counted in steps, not milliseconds).
    const ckpts = fs.readdirSync(path.join(runDir, 'checkpoints'));
    assert.ok(ckpts.includes(`step-${r.step}`), `no checkpoint at the cancel step ${r.step}: ${ckpts.join(', ')}`);
    assert.ok(r.maxStallMs < STALL_LIMIT_MS, `extension host stalled ${r.maxStallMs.toFixed(1)} ms during training (${JSON.stringify(r.stalls)}; started ${startedAt}, cancel at ${new Date(t0).toISOString()})`);
    console.log(`stall during training: longest event-loop stall ${r.maxStallMs.toFixed(1)} ms, longest timer lateness ${r.maxLateMs.toFixed(1)} ms`);
    assert.ok(a.jobs.lastMaxStallMs < STALL_LIMIT_MS);
    const listed = (await listRunsInWorkspace(a.jobs)).find((e) => e.dir === runDir);
    assert.equal(listed?.status, 'cancelled');
    assert.equal(listed?.resumable, true);

    const resumedAt = new Date().toISOString();
    const resumed = await vscode.commands.executeCommand<TrainingJob>('loraLab.resumeRun', runDir);
    assert.ok(resumed, 'Resume Run returned no job');
    const done = await resumed.finished;
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.step, 3000);
    assert.ok(done.adapterDir && fs.existsSync(path.join(done.adapterDir, 'adapter_model.safetensors')));
    const steps = metricsSteps(runDir);
    assert.deepEqual(steps, [...steps].sort((x, y) => x - y), 'metrics.jsonl steps are not increasing after resume');
    assert.equal(new Set(steps).size, steps.length, 'a step was logged twice across the resume');
    assert.ok(done.maxStallMs < STALL_LIMIT_MS, `extension host stalled ${done.maxStallMs.toFixed(1)} ms during the resumed run (${JSON.stringify(done.stalls)}; resumed ${resumedAt}, done ${new Date().toISOString()})`);
    console.log(`stall during the resumed run: longest event-loop stall ${done.maxStallMs.toFixed(1)} ms, longest timer lateness ${done.maxLateMs.toFixed(1)} ms`);
    // Resume on the finished run (an old "stopped" notification's button): no job, no failure.
    const again = await vscode.commands.executeCommand<TrainingJob | undefined>('loraLab.resumeRun', runDir);
    assert.equal(again, undefined, 'Resume Run started a job on a completed run');
    assert.equal(a.jobs.running.length, 0);
    const finished = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { status: string; backend: { name: string; kernels?: string; notes: string[] } };
    assert.equal(finished.status, 'completed');
    // The packaged native kernels load in the extension host's training worker (Linux x64 builds them).
    if (process.platform === 'linux' && process.arch === 'x64') {
      assert.match(finished.backend.kernels ?? '', /^native (avx512|avx2|neon|generic) kernels/, `no native kernels in the worker: ${JSON.stringify(finished.backend)}`);
    }
    console.log(`training backend: ${finished.backend.name}${finished.backend.kernels ? ` + ${finished.backend.kernels}` : ''}`);
    // The finished run's adapter shows up in the browser.
    await waitFor('the run adapter in the tree', async () => (await a.adapters.adapters()).some((x) => x.runDir === runDir), 10_000, 200);
    a.adapters.refresh();
    await waitFor('the run adapter in the tree', async () => (await a.adapters.adapters()).some((x) => x.runDir === runDir), 10_000, 200);
    // Its base row says the base is the experiment's synthetic W, not "unknown … found in workspace".
    const runNode = (await adapterRows(a)).find((n) => n.kind === 'adapter' && n.info.runDir === runDir)!;
    const baseItem = a.adapters.getTreeItem((await a.adapters.getChildren(runNode)).find((n) => n.kind === 'base')!);
    assert.equal(baseItem.label, 'Base model: synthetic (built-in experiment)');
    assert.equal(baseItem.description, 'in the run folder (truth/)');
    assert.equal(a.adapters.getTreeItem(runNode).contextValue, 'loraLab.adapter', 'Merge offered for a synthetic experiment');
    // Export HTML Report (Runs view, palette): the CLI's self-contained report of the run, written by the command.
    const html = path.join(path.dirname(runDir), 'report-from-command.html');
    const written = await vscode.commands.executeCommand<string | undefined>('loraLab.exportReport', runDir, { out: html });
    assert.equal(written, html);
    const page = fs.readFileSync(html, 'utf8');
    assert.match(page, /<meta name="generator" content="lora-lab report">/);
    assert.ok(page.includes(path.basename(runDir)), 'the report embeds the run');
    assert.ok(!/<script src=|<link /.test(page), 'self-contained: no external script or stylesheet');
  });

  it('runs two at once in separate folders; a third beyond the limit waits in the queue and starts when one ends', async () => {
    const a = await api();
    await vscode.workspace.getConfiguration('loraLab').update('maxConcurrentRuns', 2, vscode.ConfigurationTarget.Workspace);
    const j1 = await a.jobs.start({ configPath: config().fsPath });
    const j2 = await a.jobs.start({ configPath: config().fsPath });
    let j3: Awaited<ReturnType<typeof a.jobs.start>> | undefined;
    try {
      assert.notEqual(j1.runDir, j2.runDir);
      const third = a.jobs.start({ configPath: config().fsPath });
      void third.then((j) => (j3 = j));
      assert.deepEqual(a.jobs.queued.map((q) => q.label), [path.basename(config().fsPath)]);
      assert.equal(a.jobs.running.length, 2);
      // The Runs view lists it first, as queued.
      const first = a.runs.getTreeItem((await a.runs.getChildren())[0]);
      assert.equal(first.contextValue, 'loraLab.run.queued');
      assert.match(String(first.description), /^queued 1 · since /);
      await assert.rejects(a.jobs.start({ resumeRunDir: j1.runDir }), /already training/);
      await waitFor('both runs to progress', () => j1.progress.step > 10 && j2.progress.step > 10, 60_000);
      // Listed as running (same pid as this host, but live jobs), so Resume does not offer them.
      const listed = (await listRunsInWorkspace(a.jobs)).filter((e) => e.dir === j1.runDir || e.dir === j2.runDir);
      assert.deepEqual(listed.map((e) => [e.status, e.resumable]), [['running', false], ['running', false]]);
      a.jobs.cancel(j1);
      assert.equal((await j1.finished).status, 'cancelled');
      const started = await third;
      assert.equal(a.jobs.queued.length, 0);
      assert.ok(started.runDir && started.runDir !== j1.runDir && started.runDir !== j2.runDir);
      // The user stopped j1: a status bar entry offers Resume (no notification that would go stale).
      assert.equal(a.jobs.stoppedRunDir, j1.runDir);
    } finally {
      a.jobs.cancel();
    }
    const results = await Promise.all([j1.finished, j2.finished, ...(j3 ? [j3.finished] : [])]);
    assert.deepEqual(results.map((r) => r.status), j3 ? ['cancelled', 'cancelled', 'cancelled'] : ['cancelled', 'cancelled']);
    for (const j of [j1, j2]) {
      const info = JSON.parse(fs.readFileSync(path.join(j.runDir!, 'run.json'), 'utf8')) as { status: string; runId: string };
      assert.equal(info.status, 'cancelled');
      assert.equal(path.basename(j.runDir!), info.runId);
    }
    // Resuming the stopped run takes its Resume offer away.
    const offered = a.jobs.stoppedRunDir;
    assert.ok(offered);
    const resumed = await a.jobs.start({ resumeRunDir: offered });
    assert.equal(a.jobs.stoppedRunDir, undefined);
    a.jobs.cancel(resumed);
    await resumed.finished;
  });

  it('renames, tags and deletes (to the trash) a run from the Runs view; a training run is refused', async () => {
    const a = await api();
    const job = await a.jobs.start({ configPath: config().fsPath });
    const live = await vscode.commands.executeCommand('loraLab.renameRun', job.runDir, { name: 'nope' });
    assert.equal(live, undefined, 'a training run is not renamed');
    a.jobs.cancel(job);
    await job.finished;
    const dir = job.runDir!;
    assert.equal(await vscode.commands.executeCommand('loraLab.renameRun', dir, { name: 'renamed run' }), 'renamed run');
    assert.deepEqual(await vscode.commands.executeCommand('loraLab.tagRun', dir, { tags: 'baseline, lr test' }), ['baseline', 'lr-test']);
    const info = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')) as { name: string; tags: string[] };
    assert.equal(info.name, 'renamed run');
    assert.deepEqual(info.tags, ['baseline', 'lr-test']);
    const entry = (await a.runs.getChildren()).find((e) => 'dir' in e && e.dir === dir)!;
    const item = a.runs.getTreeItem(entry);
    assert.equal(item.label, 'renamed run');
    assert.match(String(item.description), /^cancelled · today \d\d:\d\d · [\d.]+ s · step \d+\/\d+ · loss \S+ · #baseline · #lr-test$/);
    assert.equal(await vscode.commands.executeCommand('loraLab.deleteRun', dir, { confirmed: true }), true);
    assert.ok(!fs.existsSync(dir), 'the run folder is gone (to the trash)');
    // Where the host has no desktop trash (code-server) it went to the freedesktop trash: tidy up after the test.
    const trashed = path.join(freedesktopTrashDir(), 'files', path.basename(dir));
    if (fs.existsSync(trashed)) {
      assert.ok(fs.existsSync(path.join(trashed, 'run.json')), 'the trashed folder holds the run');
      fs.rmSync(trashed, { recursive: true, force: true });
      fs.rmSync(path.join(freedesktopTrashDir(), 'info', `${path.basename(dir)}.trashinfo`), { force: true });
    }
  });

  it('a config with lora.r as a list: hovers per value, one run per value (queued beyond the limit), then the comparison', async () => {
    const a = await api();
    const uri = wsUri('sweep-test.lora.json');
    fs.writeFileSync(
      uri.fsPath,
      JSON.stringify({ kind: 'low-rank-recovery', model: { inFeatures: 16, outFeatures: 16, trueRank: 2 }, lora: { r: [1, 2], alpha: 2 }, training: { steps: 30, batchSize: 16, seed: 0, logEvery: 5 } }, null, 2),
    );
    await vscode.workspace.getConfiguration('loraLab').update('maxConcurrentRuns', 1, vscode.ConfigurationTarget.Workspace);
    try {
      // The hover over the second value counts the r = 2 run.
      assert.match(await hoverAt(uri, '2\n    ]', 0), /LoRA r = 2, α = 2/);
      const before = a.dashboardRequests.length;
      const first = await vscode.commands.executeCommand<TrainingJob>('loraLab.trainExperiment', uri);
      assert.ok(first?.runDir, 'the first run of the sweep started');
      assert.deepEqual(a.jobs.queued.map((q) => q.label), ['sweep-test.lora.json (sweep run 2)']);
      const compare = await waitFor('the comparison of the sweep', () => a.dashboardRequests.slice(before).find((r) => r.runDirs && r.runDirs.length === 2), 90_000, 100);
      const runs = compare.runDirs!.map((d) => JSON.parse(fs.readFileSync(path.join(d, 'run.json'), 'utf8')) as { name: string; status: string });
      assert.deepEqual(runs.map((r) => [r.name, r.status]), [
        ['sweep-test-r1', 'completed'],
        ['sweep-test-r2', 'completed'],
      ]);
      for (const d of compare.runDirs!) assert.equal(JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')).lora.r, compare.runDirs!.indexOf(d) + 1);
    } finally {
      await vscode.workspace.getConfiguration('loraLab').update('maxConcurrentRuns', 2, vscode.ConfigurationTarget.Workspace);
      fs.rmSync(uri.fsPath, { force: true });
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    }
  });

  it('reports a crashed worker with its error and keeps working', async () => {
    const a = await api();
    const crash = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lora-crash-')), 'crash.js');
    fs.writeFileSync(crash, "require('node:worker_threads').parentPort.on('message', () => { throw new Error('boom from the test worker'); });\n");
    const job = await a.jobs.start({ configPath: config().fsPath }, { workerPath: crash });
    const r = await job.finished;
    assert.equal(r.status, 'failed');
    assert.match(r.error ?? '', /crashed: boom from the test worker/);
    assert.equal(a.jobs.running.length, 0);
    // Still works: hovers and a real run.
    const ok = await a.jobs.start({ configPath: config().fsPath });
    await waitFor('progress after a crash', () => ok.progress.step > 0, 60_000);
    a.jobs.cancel(ok);
    assert.equal((await ok.finished).status, 'cancelled');
  });

  it('lists a run cut off without cleanup as interrupted, and Resume continues it', async () => {
    const a = await api();
    const job = await a.jobs.start({ configPath: config().fsPath });
    const runDir = job.runDir!;
    await waitFor('a checkpoint', () => fs.existsSync(path.join(runDir, 'checkpoints', 'step-100')), 60_000);
    // Terminate the worker with no cancel and no final checkpoint: the host marks the run interrupted.
    job.dispose();
    const r = await job.finished;
    assert.equal(r.status, 'failed');
    const runJson = path.join(runDir, 'run.json');
    const info = JSON.parse(fs.readFileSync(runJson, 'utf8')) as { status: string; pid?: number };
    assert.equal(info.status, 'interrupted');
    // A reopened window after the whole host died: run.json still says 'running', with a pid that is gone.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    fs.writeFileSync(runJson, JSON.stringify({ ...info, status: 'running', pid: dead }));
    const entry = await waitFor('the run listed as interrupted', async () => (await listRunsInWorkspace(a.jobs)).find((e) => e.dir === runDir && e.status === 'interrupted'));
    assert.equal(entry.resumable, true);
    const resumed = await vscode.commands.executeCommand<TrainingJob>('loraLab.resumeRun', runDir);
    // It continues from a checkpoint (step 100 or later), not from step 0.
    assert.ok((resumed.run?.step ?? 0) >= 100, `resumed at step ${resumed.run?.step}`);
    const done = await resumed.finished;
    assert.equal(done.status, 'completed', done.error);
    assert.equal(done.step, 3000);
    const steps = metricsSteps(runDir);
    assert.equal(new Set(steps).size, steps.length, 'a step was logged twice across the resume');
    assert.equal(steps[steps.length - 1], 3000);
  });

  it('the loraLab.threads setting reaches the training worker (run.json names the threads used)', async () => {
    const a = await api();
    const settings = vscode.workspace.getConfiguration('loraLab');
    await settings.update('threads', 1, vscode.ConfigurationTarget.Global);
    try {
      const job = await a.jobs.start({ configPath: config().fsPath });
      const runDir = job.runDir!;
      const backend = (JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { backend: { name: string; threads?: number; kernels?: string } }).backend;
      await vscode.commands.executeCommand('loraLab.stopTraining');
      assert.equal((await job.finished).status, 'cancelled');
      if (backend.kernels) assert.match(backend.kernels, /, 1 thread \(/, JSON.stringify(backend));
      else assert.equal(backend.threads, 1, JSON.stringify(backend));
    } finally {
      await settings.update('threads', undefined, vscode.ConfigurationTarget.Global);
    }
  });
});
