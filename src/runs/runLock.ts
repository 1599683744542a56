// One trainer per run folder. A "still running?" look at run.json followed by training is check-then-act:
// two resumes started together both pass the check. The lock closes that gap with files created by an
// atomic link (which fails when the name exists), so exactly one process wins each generation.
//
// Locks are numbered: `run.lock.1`, `run.lock.2`, … The highest number is the current lock. Taking the
// lock means creating the next number after the current one, and only if the current one's holder is
// gone (its process died, the machine rebooted, or it wrote `run.lock.<k>.released`). Numbers are never
// reused (the highest file is never deleted), so a process acting on an old listing can only create a
// number below the current one, and it gives its file up when it sees a higher one. This avoids the
// classic race of deleting a stale lock file while another process is replacing it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { RunError } from './runErrors';
import { ioError, nodeRunFs, syncDir, writeFileSynced, type RunFs } from './runFs';

const LOCK_FILE = /^run\.lock\.(\d+)$/;
/** Boot times further apart than this are different boots (used where there is no boot id). */
const SAME_BOOT_MS = 60_000;

/** What a lock file holds: enough to tell whether its holder still exists. */
export interface LockHolder {
  pid: number;
  /** worker_threads id: the extension trains in a worker, so the host's pid alone does not say which job. */
  threadId: number;
  hostname: string;
  /** Linux's boot id: a pid from an earlier boot means nothing. */
  bootId?: string;
  /** ms since the epoch; where there is no boot id. */
  bootTime: number;
  /** The process's start time (Linux, clock ticks since boot): tells a reused pid from the holder. */
  processStart?: string;
  createdAt: string;
  nonce: string;
}

function readBootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/<pid>/stat (start time); undefined off Linux or when the process is gone. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function me(): LockHolder {
  const bootId = readBootId();
  const processStart = processStartTime(process.pid);
  return {
    pid: process.pid,
    threadId,
    hostname: os.hostname(),
    ...(bootId ? { bootId } : {}),
    bootTime: Math.round(Date.now() - os.uptime() * 1000),
    ...(processStart ? { processStart } : {}),
    createdAt: new Date().toISOString(),
    nonce: randomBytes(8).toString('hex'),
  };
}

/** Lock files this thread holds now: our own pid and thread in a lock file not listed here is a leftover. */
const heldHere = new Set<string>();

function lockNumbers(dir: string): number[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw ioError(e, dir, 'list the run folder');
  }
  const out: number[] = [];
  for (const n of names) {
    const m = LOCK_FILE.exec(n);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

const lockPath = (dir: string, k: number) => path.join(dir, `run.lock.${k}`);
const releasedPath = (file: string) => `${file}.released`;

/** Why the holder of `file` still counts, or undefined when it is gone. */
function activeHolder(file: string, h: LockHolder): string | undefined {
  if (fs.existsSync(releasedPath(file))) return undefined;
  const where = `pid ${h.pid}${h.threadId ? ` thread ${h.threadId}` : ''} on ${h.hostname}, since ${h.createdAt}`;
  // Another machine sharing the folder: nothing here can tell whether it is alive.
  if (h.hostname !== os.hostname()) return where;
  const bootId = readBootId();
  if (h.bootId && bootId) {
    if (h.bootId !== bootId) return undefined;
  } else if (Math.abs(Math.round(Date.now() - os.uptime() * 1000) - h.bootTime) > SAME_BOOT_MS) {
    return undefined;
  }
  if (h.pid !== process.pid && !processAlive(h.pid)) return undefined;
  // The pid is taken, but by a process started at another time: the holder is gone, its pid reused.
  const start = h.processStart ? processStartTime(h.pid) : undefined;
  if (start !== undefined && start !== h.processStart) return undefined;
  // This thread: a lock it no longer holds was left by a release that failed.
  if (h.pid === process.pid && h.threadId === threadId) return heldHere.has(file) ? where : undefined;
  return where;
}

/** The holder recorded in lock `file`; undefined when the file vanished (taken over meanwhile). */
function readHolder(file: string): LockHolder | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(e, file, 'read the lock file');
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    if (typeof h.pid !== 'number' || typeof h.hostname !== 'string') throw new Error('pid and hostname expected');
    return h;
  } catch {
    throw new RunError('busy', `${file}: not a lock file this version understands; if no trainer is running on this run, delete it and try again`, { path: file });
  }
}

export class RunLock {
  private released = false;

  constructor(
    readonly file: string,
    private readonly rfs: RunFs,
  ) {}

  /** Marks the lock as given up. The file itself stays: its number must not be reused. */
  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.file);
    writeFileSynced(this.rfs, releasedPath(this.file), '');
  }
}

/**
 * Take the run folder's lock or throw RunError 'busy' naming the holder. Call it before writing
 * anything to the folder; a trainer keeps it until it ends.
 */
export function acquireRunLock(dir: string, rfs: RunFs = nodeRunFs): RunLock {
  for (let attempt = 0; attempt < 16; attempt++) {
    const numbers = lockNumbers(dir);
    const top = numbers.length ? numbers[numbers.length - 1] : 0;
    if (top > 0) {
      const holder = readHolder(lockPath(dir, top));
      if (holder === undefined) continue;
      const active = activeHolder(lockPath(dir, top), holder);
      if (active !== undefined) {
        throw new RunError(
          'busy',
          `${dir} is being trained by another process (${active}); wait for it to finish or stop it. If no trainer is running on this run, delete ${lockPath(dir, top)}`,
          { path: dir },
        );
      }
    }
    const file = lockPath(dir, top + 1);
    const tmp = path.join(dir, `.run.lock.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    writeFileSynced(rfs, tmp, JSON.stringify(me()) + '\n', 'wx');
    let linked = false;
    try {
      rfs.linkSync(tmp, file);
      linked = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(e, file, 'create the lock file');
    } finally {
      try {
        rfs.unlinkSync(tmp);
      } catch {
        // a '.'-named leftover is ignored by everything
      }
    }
    if (!linked) continue; // someone else took this number: look again
    // Created from an old listing while a higher number was being taken: that one wins.
    if (lockNumbers(dir).some((k) => k > top + 1)) {
      try {
        rfs.unlinkSync(file);
      } catch {
        // a lower number than the current lock is ignored by everything
      }
      continue;
    }
    heldHere.add(file);
    // Older numbers are history now; removing them is tidiness, so failures are ignored.
    for (const k of numbers) {
      for (const f of [lockPath(dir, k), releasedPath(lockPath(dir, k))]) {
        try {
          rfs.unlinkSync(f);
        } catch {
          // already gone, or not removable: harmless
        }
      }
    }
    const lock = new RunLock(file, rfs);
    try {
      syncDir(rfs, dir);
    } catch (e) {
      lock.release();
      throw e;
    }
    return lock;
  }
  throw new RunError('busy', `${dir}: other processes kept taking the run's lock; try again when they are done`, { path: dir });
}

/**
 * For a host whose training thread ended without releasing its lock (a crashed or terminated worker
 * keeps the host's pid alive): mark the locks held by (`pid`, `threadId`) as released. Returns how many.
 */
export function releaseLocksOf(dir: string, holder: { pid: number; threadId: number }, rfs: RunFs = nodeRunFs): number {
  let n = 0;
  for (const k of fs.existsSync(dir) ? lockNumbers(dir) : []) {
    const file = lockPath(dir, k);
    let h: LockHolder | undefined;
    try {
      h = readHolder(file);
    } catch {
      continue;
    }
    if (!h || h.pid !== holder.pid || h.threadId !== holder.threadId || fs.existsSync(releasedPath(file))) continue;
    writeFileSynced(rfs, releasedPath(file), '');
    n++;
  }
  return n;
}
