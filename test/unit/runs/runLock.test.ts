import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { threadId } from 'node:worker_threads';
import { RunError } from '../../../src/runs/runErrors';
import { acquireRunLock, releaseLocksOf } from '../../../src/runs/runLock';
import { REPO_ROOT, TSX_IMPORT, makeTmpDir } from './tinyExperiment';

const CAMPAIGN = process.env.LORA_LAB_FAULT_CAMPAIGN === '1';

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

function writeLock(dir: string, k: number, holder: Record<string, unknown>): void {
  const bootId = fs.existsSync('/proc/sys/kernel/random/boot_id') ? fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : undefined;
  const h = { pid: process.pid, threadId: 0, hostname: os.hostname(), bootId, bootTime: Date.now() - os.uptime() * 1000, createdAt: new Date().toISOString(), nonce: 'x', ...holder };
  fs.writeFileSync(path.join(dir, `run.lock.${k}`), JSON.stringify(h));
}

const busy = (re: RegExp) => (e: unknown) => RunError.is(e, 'busy') && re.test((e as Error).message);

describe('runs/runLock: one trainer per run folder', function () {
  this.timeout(CAMPAIGN ? 600_000 : 60_000);
  let tmp: string;
  beforeEach(() => {
    tmp = makeTmpDir('lock');
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('is exclusive while held, numbered, and free again once released', () => {
    const a = acquireRunLock(tmp);
    assert.equal(path.basename(a.file), 'run.lock.1');
    assert.throws(() => acquireRunLock(tmp), busy(new RegExp(`pid ${process.pid}.*delete .*run\\.lock\\.1`)));
    a.release();
    const b = acquireRunLock(tmp);
    assert.equal(path.basename(b.file), 'run.lock.2', 'numbers are never reused');
    assert.deepEqual(fs.readdirSync(tmp).sort(), ['run.lock.2'], 'older numbers are cleared');
    b.release();
  });

  it('takes over locks whose holder is gone: dead pid, other boot, reused pid, own released leftover', () => {
    writeLock(tmp, 1, { pid: deadPid() });
    acquireRunLock(tmp).release();
    writeLock(tmp, 7, { pid: process.pid, bootId: 'another-boot', bootTime: 0 });
    assert.equal(path.basename(acquireRunLock(tmp).file), 'run.lock.8');
    fs.writeFileSync(path.join(tmp, 'run.lock.8.released'), '');
    // Our pid, but a different process start time: the pid was reused since.
    writeLock(tmp, 9, { pid: process.pid, threadId: threadId + 1, processStart: '1' });
    if (fs.existsSync('/proc/self/stat')) assert.equal(path.basename(acquireRunLock(tmp).file), 'run.lock.10');
  });

  it('refuses when the holder is alive: another thread of this process, another host', () => {
    writeLock(tmp, 1, { threadId: threadId + 1 });
    assert.throws(() => acquireRunLock(tmp), busy(/being trained by another process \(pid \d+ thread \d+/));
    // A host whose worker thread ended without releasing: it releases on the thread's behalf.
    assert.equal(releaseLocksOf(tmp, { pid: process.pid, threadId: threadId + 1 }), 1);
    acquireRunLock(tmp).release();
    writeLock(tmp, 5, { hostname: 'elsewhere.example', pid: 1 });
    assert.throws(() => acquireRunLock(tmp), busy(/on elsewhere\.example/));
    fs.writeFileSync(path.join(tmp, 'run.lock.6'), 'garbage');
    assert.throws(() => acquireRunLock(tmp), busy(/run\.lock\.6: not a lock file/));
  });

  it('lets exactly one of several racing processes in, also when they all break the same stale lock', async () => {
    const trials = CAMPAIGN ? 200 : 30;
    const racers = 4;
    const dirs = Array.from({ length: trials }, (_, t) => {
      const d = path.join(tmp, `t${t}`);
      fs.mkdirSync(d);
      writeLock(d, 1, { pid: deadPid() });
      return d;
    });
    const log = path.join(tmp, 'log');
    fs.writeFileSync(log, '');
    // Children start in a second or two (tsx); the race starts after that, at the same ms for all.
    const start = Date.now() + 4000;
    const children = Array.from({ length: racers }, () =>
      spawn(process.execPath, [...TSX_IMPORT, path.join(__dirname, 'lockRacer.ts'), log, String(start), '40', '15', ...dirs], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] }),
    );
    const codes = await Promise.all(children.map((c) => new Promise<number | null>((res) => c.on('exit', res))));
    assert.deepEqual(codes, Array(racers).fill(0));
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
    let overlaps = 0;
    let entered = 0;
    for (let t = 0; t < trials; t++) {
      let inside = 0;
      for (const [what, trial] of lines) {
        if (Number(trial) !== t) continue;
        if (what === 'enter') {
          inside++;
          entered++;
          if (inside > 1) overlaps++;
        } else if (what === 'exit') inside--;
      }
    }
    assert.equal(lines.length, trials * racers + entered, 'every racer reported every trial');
    assert.equal(overlaps, 0, 'two holders at once');
    assert.ok(entered >= trials, `every trial had a winner (${entered} entries in ${trials} trials)`);
    if (CAMPAIGN) console.log(`lock race: ${trials} trials × ${racers} processes, ${entered} holds, 0 overlaps`);
  });
});
