// Child process for runLock.test.ts: for each trial folder, wait for the trial's start time, try to take
// the lock, and when it wins append "enter"/"exit" lines (O_APPEND: the file order is the real order)
// around a short hold. Usage: lockRacer.ts <log> <startMs> <gapMs> <holdMs> <dir>...
import * as fs from 'node:fs';
import { acquireRunLock } from '../../../src/runs/runLock';
import { RunError } from '../../../src/runs/runErrors';

const [log, startMs, gapMs, holdMs, ...dirs] = process.argv.slice(2);
const spin = (until: number) => {
  while (Date.now() < until) {
    // busy-wait: a timer would add scheduling noise to the start of the race
  }
};
dirs.forEach((dir, t) => {
  spin(Number(startMs) + t * Number(gapMs));
  try {
    const lock = acquireRunLock(dir);
    fs.appendFileSync(log, `enter ${t} ${process.pid}\n`);
    spin(Date.now() + Number(holdMs));
    fs.appendFileSync(log, `exit ${t} ${process.pid}\n`);
    // Half the winners die holding the lock (the next racer must break a stale lock), half release it.
    if (t % 2 === 0) lock.release();
  } catch (e) {
    if (!RunError.is(e, 'busy')) throw e;
    fs.appendFileSync(log, `busy ${t} ${process.pid}\n`);
  }
});
