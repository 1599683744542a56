import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatRunDate, parseTags, runDescription } from '../../../src/insight/runLabels';
import { lastElapsedMs, trainingTimeMs } from '../../../src/runs/runTail';
import { moveToFreedesktopTrash } from '../../../src/jobs/trash';

describe('run labels: telling same-named runs apart', () => {
  // Local-time constructors: the expected text does not depend on the machine's time zone.
  const now = new Date(2026, 11, 6, 15, 0);

  it('dates are as short as they can be: today, this year, another year', () => {
    assert.equal(formatRunDate(new Date(2026, 11, 6, 9, 5).toISOString(), now), 'today 09:05');
    assert.equal(formatRunDate(new Date(2026, 2, 14, 23, 59).toISOString(), now), 'Mar 14 23:59');
    assert.equal(formatRunDate(new Date(2025, 11, 6, 9, 5).toISOString(), now), '2025-12-06 09:05');
    assert.equal(formatRunDate('not a date', now), 'not a date');
  });

  it('two runs of one config differ by date, training time and final loss; unfinished runs show their step', () => {
    const a = runDescription({ status: 'completed', createdAt: new Date(2026, 11, 6, 14, 3).toISOString(), step: 300, totalSteps: 300, elapsedMs: 64_000, lastLoss: 0.012345, tags: ['baseline'] }, now);
    const b = runDescription({ status: 'cancelled', createdAt: new Date(2026, 11, 5, 10, 0).toISOString(), step: 120, totalSteps: 300, elapsedMs: 9_400, lastLoss: 0.5 }, now);
    assert.equal(a, 'completed · today 14:03 · 1 min 04 s · loss 0.01235 · #baseline');
    assert.equal(b, 'cancelled · Dec 5 10:00 · 9.4 s · step 120/300 · loss 0.5000');
    assert.equal(runDescription({ status: 'running', createdAt: now.toISOString(), step: 0, totalSteps: 10 }, now), 'running · today 15:00 · step 0/10');
  });

  it('tags as typed: trimmed, no #, spaces to dashes, no duplicates, empty = none', () => {
    assert.deepEqual(parseTags(' baseline, lr sweep ;#fast, baseline,, '), ['baseline', 'lr-sweep', 'fast']);
    assert.deepEqual(parseTags('  '), []);
  });

  it('training time is the last metric point’s elapsedMs (a torn last line is skipped; no file: undefined)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-tail-'));
    try {
      assert.equal(lastElapsedMs(dir), undefined);
      // Stopped before its first logged step: start to end; once resumed, that would count the pause.
      const info = { createdAt: '2026-12-06T10:00:00.000Z', finishedAt: '2026-12-06T10:00:07.500Z' };
      assert.equal(trainingTimeMs(dir, info), 7500);
      assert.equal(trainingTimeMs(dir, { ...info, resumedAt: [{ step: 5, at: '2026-12-06T11:00:00.000Z' }] }), undefined);
      assert.equal(trainingTimeMs(dir, { createdAt: info.createdAt }), undefined);
      const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ step: i + 1, loss: 1 / (i + 1), lr: 0.01, gradNorm: 1, elapsedMs: 10 * (i + 1) }));
      fs.writeFileSync(path.join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n{"step": 501, "loss": 0.0`);
      assert.equal(lastElapsedMs(dir), 5000);
      assert.equal(trainingTimeMs(dir, info), 5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deleting a run where VS Code has no trash: the freedesktop trash', () => {
  it('moves the folder into $XDG_DATA_HOME/Trash/files with a .trashinfo naming where it was; a second one of the same name gets a suffix', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-trash-'));
    try {
      const env = { XDG_DATA_HOME: path.join(root, 'data') };
      const run = (n: number) => {
        const dir = path.join(root, 'ws', 'lora-runs', 'quick run');
        fs.mkdirSync(path.join(dir, 'adapter'), { recursive: true });
        fs.writeFileSync(path.join(dir, 'run.json'), `{"n": ${n}}`);
        return dir;
      };
      const when = new Date(2026, 11, 6, 14, 3, 9);
      const first = moveToFreedesktopTrash(run(1), when, env);
      assert.equal(first, path.join(root, 'data', 'Trash', 'files', 'quick run'));
      assert.equal(fs.readFileSync(path.join(first, 'run.json'), 'utf8'), '{"n": 1}');
      assert.ok(!fs.existsSync(path.join(root, 'ws', 'lora-runs', 'quick run')));
      const info = fs.readFileSync(path.join(root, 'data', 'Trash', 'info', 'quick run.trashinfo'), 'utf8');
      assert.equal(info, `[Trash Info]\nPath=${path.join(root, 'ws', 'lora-runs', 'quick%20run')}\nDeletionDate=2026-12-06T14:03:09\n`);
      const second = moveToFreedesktopTrash(run(2), when, env);
      assert.equal(path.basename(second), 'quick run.2');
      assert.equal(fs.readFileSync(path.join(second, 'run.json'), 'utf8'), '{"n": 2}');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
