// Fault injection over the run write path (SQLite-style): a short run is repeated with exactly one write /
// fsync / rename / mkdir going wrong, for each N up to the number of such calls in the run. After each
// fault the run must end as an uninterrupted run does (same metrics, bit-identical adapter), after a
// resume where it stopped, or refuse with a clear message; a checkpoint reported as written must never
// be lost, and run.json must never be left 'running'.
//
// The normal unit run takes a seeded slice of the fault points; LORA_LAB_FAULT_CAMPAIGN=1 runs all of them
// and prints the counts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FromWorker } from '../../../src/protocol/worker';
import { RunError } from '../../../src/runs/runErrors';
import { RunFolder, listRuns } from '../../../src/runs/runStore';
import { trainRun, type TrainRunOptions, type TrainRunResult } from '../../../src/runs/trainRun';
import { mulberry32 as rng } from '../../support/rng';
import { FAULT_OPS, FaultyFs, type FaultMode, type FaultOp, type FaultPlan } from './faultyFs';
import { FAULT_CAMPAIGN as CAMPAIGN, assertSameOutcome, makeTmpDir, runOutcome, tinyExperiment, writeExperiment, type RunOutcome } from './tinyExperiment';

type Outcome = 'completed-anyway' | 'resumed-identical' | 'refused-before-start' | 'refused-on-resume';

describe('runs/faults: one failing write / fsync / rename / mkdir at every point of a run', function () {
  this.timeout(CAMPAIGN ? 3_600_000 : 120_000);
  let tmp: string;
  let cfg: string;
  let ref: RunOutcome;
  let totals: Record<FaultOp, number>;
  const base = (extra: Partial<TrainRunOptions>, events: FromWorker[] = []): Promise<TrainRunResult> =>
    trainRun({ backend: 'cpu', progressIntervalMs: 0, keepCheckpoints: 2, onEvent: (e) => events.push(e), ...extra });

  before(async () => {
    tmp = makeTmpDir('faults');
    // 8 steps, a checkpoint every 2 and only the newest 2 kept: checkpoints, pruning, metrics, truth,
    // the adapter and run.json updates all happen in a run of well under a second.
    cfg = writeExperiment(tmp, tinyExperiment({ name: 'faults', steps: 8, d: 8, batchSize: 8, checkpointEvery: 2, evalEvery: 4 }));
    const counting = new FaultyFs();
    const uninterrupted = await base({ configPath: cfg, outDir: path.join(tmp, 'ref'), fs: counting });
    assert.equal(uninterrupted.status, 'completed');
    ref = runOutcome(uninterrupted.runDir);
    totals = { ...counting.counts };
    for (const op of FAULT_OPS) assert.ok(totals[op] > 0, `the run makes ${op} calls`);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** One fault, then (if the run stopped) a resume on a healthy file system. */
  async function faultThenResume(plan: FaultPlan, caseDir: string): Promise<Outcome> {
    const faulty = new FaultyFs(plan);
    const events: FromWorker[] = [];
    let result: TrainRunResult | undefined;
    let thrown: unknown;
    try {
      result = await base({ configPath: cfg, outDir: caseDir, fs: faulty }, events);
    } catch (e) {
      thrown = e;
    }
    const where = `${plan.mode} ${faulty.fired ?? `(no ${plan.op} #${plan.n})`}`;
    if (result?.status === 'completed') {
      // A short write the loop completed: nothing was lost, nothing needs resuming.
      assertSameOutcome(result.runDir, ref, where);
      return 'completed-anyway';
    }
    assert.ok(faulty.fired, `the fault fired (${where})`);
    if (thrown !== undefined) {
      assert.ok(RunError.is(thrown), `${where}: a RunError, got ${thrown instanceof Error ? thrown.stack : String(thrown)}`);
      // A clear message: the file it is about, in words (no bare errno text first).
      assert.match((thrown as Error).message, /^\/.*: cannot /m, where);
    } else {
      assert.equal(result!.status, 'failed', where);
    }
    const runs = listRuns(caseDir);
    if (runs.length === 0) {
      // Failed while the run folder was being created: nothing of it may remain half-made.
      assert.ok(thrown, where);
      const left = fs.existsSync(caseDir) ? fs.readdirSync(caseDir) : [];
      if (plan.mode === 'readonly') {
        // Nothing can be removed on a read-only file system either: what is left is refused clearly.
        for (const name of left) assert.throws(() => RunFolder.open(path.join(caseDir, name)), (e: unknown) => RunError.is(e, 'cut-off') || RunError.is(e, 'not-a-run'));
      } else {
        assert.deepEqual(left, [], `${where}: no half-created run folder left: ${left.join(', ')}`);
      }
      return 'refused-before-start';
    }
    assert.equal(runs.length, 1, where);
    const runDir = runs[0].dir;
    const stopped = RunFolder.open(runDir);
    if (plan.mode === 'readonly' && stopped.storedInfo.status === 'running') {
      // Nothing can be written any more, run.json included: the message must say so (once the process
      // is gone the run reads as interrupted).
      assert.match(String((thrown as Error)?.message), /run\.json could not be updated either; it shows the run as interrupted once this process has ended/, where);
      // This process stands for the one that ended: what run.json holds then is a pid that is gone.
      const file = path.join(runDir, 'run.json');
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), pid: 2 ** 22 + 12345 }));
    } else {
      assert.notEqual(stopped.storedInfo.status, 'running', `${where}: run.json is not left 'running'`);
    }
    // Never silently lose a checkpoint: the newest one reported written still verifies.
    const reported = events.filter((e) => e.type === 'didCheckpoint').map((e) => (e as { step: number }).step);
    const good = stopped.newestGoodCheckpoint().step ?? 0;
    if (reported.length) assert.ok(good >= Math.max(...reported), `${where}: checkpoint step-${Math.max(...reported)} was reported written, newest good is ${good}`);

    const resumeEvents: FromWorker[] = [];
    let resumed: TrainRunResult;
    try {
      resumed = await base({ resumeRunDir: runDir }, resumeEvents);
    } catch (e) {
      assert.ok(RunError.is(e), `${where}: resume refuses with a RunError, got ${String(e)}`);
      assert.match((e as Error).message, new RegExp(runDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), where);
      return 'refused-on-resume';
    }
    assert.equal(resumed.status, 'completed', `${where}: ${resumed.error ?? ''}`);
    assertSameOutcome(runDir, ref, where);
    return 'resumed-identical';
  }

  it('after each fault the run resumes to the uninterrupted adapter and metrics (or refuses clearly)', async () => {
    const modes: Record<FaultOp, FaultMode[]> = { write: ['error', 'short', 'short-enospc', 'full', 'readonly'], fsync: ['error'], rename: ['error'], mkdir: ['error'] };
    const plans: FaultPlan[] = [];
    for (const op of FAULT_OPS) {
      for (const mode of modes[op]) {
        for (let n = 1; n <= totals[op]; n++) plans.push({ op, n, mode, code: op === 'write' ? 'ENOSPC' : 'EIO' });
      }
    }
    // The normal unit run: every fault point of the run creation (the first calls) and a seeded sample of the rest.
    const pick = rng(13);
    const chosen = CAMPAIGN ? plans : plans.filter((p) => p.n <= 2 || pick() < 0.12);
    const table = new Map<string, Record<Outcome, number>>();
    let i = 0;
    for (const plan of chosen) {
      const outcome = await faultThenResume(plan, path.join(tmp, `case-${i++}`));
      const key = `${plan.op}/${plan.mode}`;
      const row = table.get(key) ?? { 'completed-anyway': 0, 'resumed-identical': 0, 'refused-before-start': 0, 'refused-on-resume': 0 };
      row[outcome]++;
      table.set(key, row);
    }
    // Resuming or completing must be the rule; refusing is for faults before the run existed.
    for (const [key, row] of table) assert.equal(row['refused-on-resume'], 0, `${key}: resume refused after a one-off fault`);
    if (CAMPAIGN) {
      console.log(`fault campaign: calls per run ${JSON.stringify(totals)}, ${chosen.length} faulted runs`);
      for (const [key, row] of table) console.log(`  ${key.padEnd(20)} ${JSON.stringify(row)}`);
    }
    assert.ok(chosen.length >= (CAMPAIGN ? 100 : 20), `${chosen.length} fault points tried`);
  });
});
