// Real processes against the run write path: SIGKILL at random moments (at chosen write / fsync / rename /
// mkdir calls, half-way through writes, and at random times), a file size limit (prlimit --fsize, as
// `ulimit -f`), a small tmpfs that fills up (where this machine lets us mount one), and resumes racing
// each other. Every run must end with the metrics and adapter of an uninterrupted run.
//
// The normal unit run does a short slice of each; LORA_LAB_FAULT_CAMPAIGN=1 runs the long campaign
// (40 kills, 50 racing trials) and prints the counts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { FromWorker } from '../../../src/protocol/worker';
import { RunFolder, listRuns, loadRun } from '../../../src/runs/runStore';
import { trainRun } from '../../../src/runs/trainRun';
import { mulberry32 as rng } from '../../support/rng';
import { FAULT_OPS, type FaultOp } from './faultyFs';
import { FAULT_CAMPAIGN as CAMPAIGN, REPO_ROOT, TSX_IMPORT, assertSameOutcome, makeTmpDir, runOutcome, tinyExperiment, writeExperiment, type RunOutcome } from './tinyExperiment';

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  events: (FromWorker | { type: 'result' | 'error'; [k: string]: unknown })[];
  stderr: string;
  runDir?: string;
}

interface ChildArgs {
  configPath?: string;
  outDir?: string;
  resumeRunDir?: string;
  kill?: { op: FaultOp; n: number };
  startAt?: number;
}

/** trainChild.ts in a real process; `killAfterMs`: SIGKILL it that long after it reports didStart. */
function child(args: ChildArgs, opts: { killAfterMs?: number; onStart?: (pid: number) => void; cli?: string[] } = {}): Promise<ChildResult> {
  const argv = opts.cli ? [...TSX_IMPORT, 'src/cli/main.ts', ...opts.cli] : [...TSX_IMPORT, path.join(__dirname, 'trainChild.ts'), JSON.stringify(args)];
  const p = spawn(process.execPath, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const res: ChildResult = { code: null, signal: null, events: [], stderr: '' };
  p.stderr.on('data', (b) => (res.stderr += b));
  const lines = (async () => {
    for await (const line of createInterface({ input: p.stdout })) {
      let e: ChildResult['events'][number];
      try {
        e = JSON.parse(line);
      } catch {
        continue; // the CLI's plain lines
      }
      res.events.push(e);
      if (e.type === 'didStart') {
        res.runDir = (e as { runDir: string }).runDir;
        opts.onStart?.(p.pid!);
        if (opts.killAfterMs !== undefined) setTimeout(() => p.kill('SIGKILL'), opts.killAfterMs);
      }
    }
  })();
  return new Promise((resolve) =>
    p.on('exit', (code, signal) => {
      res.code = code;
      res.signal = signal;
      void lines.then(() => resolve(res));
    }),
  );
}

describe('runs/crash: real processes killed, limited, out of space and racing', function () {
  this.timeout(CAMPAIGN ? 3_600_000 : 180_000);
  let tmp: string;
  let cfg: string;
  let ref: RunOutcome;
  before(async () => {
    tmp = makeTmpDir('crash');
    cfg = writeExperiment(tmp, tinyExperiment({ name: 'crash', steps: 40, checkpointEvery: 4, evalEvery: 8 }));
    ref = runOutcome((await trainRun({ configPath: cfg, outDir: path.join(tmp, 'ref'), backend: 'cpu' })).runDir);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function assertLikeReference(runDir: string, where: string): void {
    assert.equal(loadRun(runDir).info.status, 'completed', where);
    assertSameOutcome(runDir, ref, where);
  }

  it('SIGKILL at random moments, inside checkpoint writes too: every run resumes to the uninterrupted result', async () => {
    const wanted = CAMPAIGN ? 40 : 3;
    const pick = rng(2026);
    const stats = { kills: 0, byOp: {} as Record<string, number>, inCheckpoint: 0, byTimer: 0, beforeRunJson: 0, runs: 0, resumes: 0 };
    while (stats.kills < wanted) {
      stats.runs++;
      const out = path.join(tmp, `kill-${stats.runs}`);
      let runDir: string | undefined;
      for (;;) {
        const killHere = stats.kills < wanted;
        const byTimer = killHere && pick() < 0.3;
        const kill = killHere && !byTimer ? { op: FAULT_OPS[Math.floor(pick() * FAULT_OPS.length)], n: 1 + Math.floor(pick() * 14) } : undefined;
        const args: ChildArgs = runDir ? { resumeRunDir: runDir } : { configPath: cfg, outDir: out };
        const r = await child({ ...args, ...(kill ? { kill } : {}) }, byTimer ? { killAfterMs: Math.floor(pick() * 400) } : {});
        if (runDir) stats.resumes++;
        runDir ??= r.runDir ?? listRuns(out)[0]?.dir;
        if (r.signal === 'SIGKILL') {
          stats.kills++;
          const at = /^KILL (\w+) #\d+ (.*)$/m.exec(r.stderr);
          if (at) {
            stats.byOp[at[1]] = (stats.byOp[at[1]] ?? 0) + 1;
            if (/checkpoints\//.test(at[2])) stats.inCheckpoint++;
          } else stats.byTimer++;
          if (runDir === undefined) {
            // Killed while the run folder was being created: what is left is refused clearly, start over.
            const left = fs.existsSync(out) ? fs.readdirSync(out) : [];
            for (const name of left) {
              const empty = fs.readdirSync(path.join(out, name)).length === 0;
              assert.throws(() => RunFolder.open(path.join(out, name)), empty ? /not a LoRA Lab run folder/ : /cut off while it was being created/);
              fs.rmSync(path.join(out, name), { recursive: true });
            }
            stats.beforeRunJson++;
          }
          continue;
        }
        // Killed by the timer after it had finished: the next resume finds nothing left to do.
        const err = r.events.find((e) => e.type === 'error') as { reason?: string } | undefined;
        if (err?.reason === 'already-completed') break;
        assert.equal(r.code, 0, `${r.stderr}\n${JSON.stringify(r.events.slice(-2))}`);
        break;
      }
      assertLikeReference(runDir!, `run ${stats.runs}`);
    }
    if (CAMPAIGN) console.log(`kill campaign: ${JSON.stringify(stats)}`);
    assert.ok(stats.kills >= wanted);
  });

  it('a file size limit (ulimit -f) mid-run: the run fails on stderr naming the file, run.json says failed, resume completes', async function () {
    if (spawnSync('prlimit', ['--version']).status !== 0) this.skip();
    const out = path.join(tmp, 'fsize');
    // Long enough that the limit lands mid-run. The limit is set once the CLI has started (tsx writes
    // its compile cache at startup): 6 KiB, which metrics.jsonl passes after ~40 lines.
    const long = writeExperiment(tmp, tinyExperiment({ name: 'fsize', steps: 400, checkpointEvery: 20, evalEvery: 50 }), 'fsize.lora.json');
    const refRun = await trainRun({ configPath: long, outDir: path.join(tmp, 'fsize-ref'), backend: 'cpu' });
    const r = await child({}, {
      cli: ['train', long, '--out', out, '--backend', 'cpu', '--json'],
      onStart: (pid) => assert.equal(spawnSync('prlimit', ['--pid', String(pid), '--fsize=6144']).status, 0),
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^lora-lab train: \/\S+: cannot [^:]+: (the file would exceed the largest file this process may write, e\.g\. a `ulimit -f` limit \(EFBIG\)|only \d+ of \d+ bytes could be written)\. The run stopped; .*--resume/m);
    const dir = listRuns(out)[0].dir;
    assert.equal(RunFolder.open(dir).storedInfo.status, 'failed');
    const res = await trainRun({ resumeRunDir: dir, backend: 'cpu' });
    assert.equal(res.status, 'completed');
    assertSameOutcome(dir, runOutcome(refRun.runDir), 'resumed after the size limit');
  });

  it('a small tmpfs that fills up: the run fails naming the disk as full, run.json is not left running, resume completes', async function () {
    const mnt = path.join(tmp, 'tmpfs');
    fs.mkdirSync(mnt);
    if (process.platform !== 'linux' || spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=96k', 'tmpfs', mnt]).status !== 0) this.skip();
    try {
      const r = await child({}, { cli: ['train', cfg, '--out', mnt, '--backend', 'cpu'] });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /: cannot [^:]+: the disk is full \(ENOSPC\)\. The run stopped; its newest good checkpoint is kept\. Make room .* \(outputDir in the experiment file, or --out\), then continue with: lora-lab train --resume /);
      const dir = listRuns(mnt)[0].dir;
      assert.notEqual(RunFolder.open(dir).storedInfo.status, 'running');
      assert.equal(spawnSync('mount', ['-o', 'remount,size=8m', mnt]).status, 0);
      const res = await trainRun({ resumeRunDir: dir, backend: 'cpu' });
      assert.equal(res.status, 'completed');
      assertLikeReference(dir, 'after the tmpfs filled up');
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it('resumes racing each other: never two trainers, the run ends exactly as an uninterrupted one', async () => {
    const trials = CAMPAIGN ? 50 : 1;
    const outcomes: Record<string, number> = {};
    for (let t = 0; t < trials; t++) {
      const controller = new AbortController();
      const cut = await trainRun({
        configPath: cfg,
        outDir: path.join(tmp, `race-${t}`),
        backend: 'cpu',
        signal: controller.signal,
        onEvent: (e) => e.type === 'didCheckpoint' && e.step === 8 && controller.abort(),
      });
      // Both enter trainRun at the same millisecond, well after their start-up.
      const startAt = Date.now() + 3500;
      const [a, b] = await Promise.all([child({ resumeRunDir: cut.runDir, startAt }), child({ resumeRunDir: cut.runDir, startAt })]);
      const ok = [a, b].filter((r) => r.code === 0);
      const refused = [a, b].filter((r) => r.code !== 0);
      assert.equal(ok.length, 1, `exactly one trainer completes: ${a.stderr}${JSON.stringify(a.events.slice(-1))} ${b.stderr}${JSON.stringify(b.events.slice(-1))}`);
      const err = refused[0].events.find((e) => e.type === 'error') as { reason: string; message: string } | undefined;
      assert.ok(err && ['busy', 'already-completed'].includes(err.reason), JSON.stringify(refused[0].events.slice(-1)));
      outcomes[err.reason] = (outcomes[err.reason] ?? 0) + 1;
      assert.equal(loadRun(cut.runDir).info.resumedAt?.length, 1, 'one resume trained');
      assertLikeReference(cut.runDir, `race ${t}`);
    }
    if (CAMPAIGN) console.log(`racing resumes: ${trials} trials, one trainer each; the other was refused: ${JSON.stringify(outcomes)}`);
  });
});
