// Runs an exported job on an SSH host with the real OpenSSH clients (ssh, rsync over ssh): copies the job,
// starts it detached (setsid nohup: it survives the connection and VS Code), and mirrors the remote run
// folder into a local one that is a LoRA Lab run, so the Runs view and the dashboard follow it live.
// Stop creates STOP remotely (the job ends with a checkpoint). remote.json in the mirror records where
// the job runs, so a reloaded window reattaches; a failed sync marks it disconnected and never touches
// the remote job.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReasonError } from '../shared/errors';

export interface SshTarget {
  /** A host name or a Host alias of ~/.ssh/config. */
  host: string;
  user?: string;
  port?: number;
  identityFile?: string;
  /** An ssh_config file instead of ~/.ssh/config. */
  configFile?: string;
  /** More `-o Key=Value` options. */
  options?: string[];
}

export type SshErrorReason = 'unreachable' | 'auth' | 'disk-full' | 'no-python' | 'remote';

export class SshError extends ReasonError<SshErrorReason> {
  static override readonly family = 'SshError';
}

export const REMOTE_FILE = 'remote.json';

/** What a mirror folder knows about its remote job (remote.json). */
export interface RemoteRunRecord {
  target: SshTarget;
  /** The job's folder on the host, relative to the login directory unless absolute. */
  remoteDir: string;
  pid: number;
  python: string;
  startedAt: string;
  state: 'connected' | 'disconnected';
  lastSyncAt?: string;
  lastError?: string;
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function sshOptions(t: SshTarget): string[] {
  return [
    '-o', 'BatchMode=yes', // never prompt: a missing key is an error, not a hung window
    '-o', 'ConnectTimeout=10',
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=3',
    ...(t.configFile ? ['-F', t.configFile] : []),
    ...(t.port ? ['-p', String(t.port)] : []),
    ...(t.identityFile ? ['-i', t.identityFile, '-o', 'IdentitiesOnly=yes'] : []),
    ...(t.options ?? []).flatMap((o) => ['-o', o]),
  ];
}

const destination = (t: SshTarget) => (t.user ? `${t.user}@${t.host}` : t.host);

/** Turns an ssh / rsync failure into a message that says what to do. */
export function classifySshFailure(t: SshTarget, stderr: string, what: string): SshError {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^Warning: Permanently added/.test(l));
  const line = lines.find((l) => /denied|refused|timed out|resolve|unreachable|No space|quota|closed|reset|No such/i.test(l)) ?? lines.pop() ?? 'no output';
  const host = destination(t) + (t.port ? `:${t.port}` : '');
  if (/Permission denied|Too many authentication failures|no such identity|Host key verification failed/i.test(stderr)) {
    return new SshError('auth', `${host}: the login was refused (${line}). Check the key (${t.identityFile ?? 'from your ssh config'}) and the host's authorized_keys; \`ssh ${destination(t)}\` in a terminal shows the details`);
  }
  if (/No space left on device|Disk quota exceeded/i.test(stderr)) {
    return new SshError('disk-full', `${host}: the remote disk is full while ${what} (${line}). Free space there and start again; the local job folder is unchanged`);
  }
  if (/Connection refused|timed out|No route to host|Could not resolve hostname|Network is unreachable|Connection closed|Connection reset|kex_exchange_identification|Broken pipe/i.test(stderr)) {
    return new SshError('unreachable', `${host} is unreachable (${line}). Check the host name, port and network; a job already started there keeps running`);
  }
  return new SshError('remote', `${host}: ${what} failed (${line})`);
}

function exec(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : 255) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === 255 && !stderr ? err.message : '') });
    });
  });
}

/** Runs a shell command on the host; resolves with its stdout, throws SshError on failure. */
export async function sshRun(t: SshTarget, command: string, what: string, timeoutMs = 60_000): Promise<string> {
  const r = await exec('ssh', [...sshOptions(t), destination(t), command], timeoutMs);
  // ssh itself exits 255; anything else is the remote command's status.
  if (r.code === 255) throw classifySshFailure(t, r.stderr, what);
  if (r.code !== 0) throw classifySshFailure(t, r.stderr || `exit status ${r.code}`, what);
  return r.stdout;
}

/** Logs in and runs `true`: reachable, and the key is accepted. */
export async function checkHost(t: SshTarget): Promise<void> {
  await sshRun(t, 'true', 'logging in', 30_000);
}

async function rsync(t: SshTarget, args: string[], what: string): Promise<void> {
  const rsh = ['ssh', ...sshOptions(t)].map((a) => (/[\s'"]/.test(a) ? quote(a) : a)).join(' ');
  const r = await exec('rsync', ['-a', '-e', rsh, ...args], 10 * 60_000);
  if (r.code !== 0) throw classifySshFailure(t, r.stderr || `rsync exit status ${r.code}`, what);
}

const remotePath = (dir: string, ...parts: string[]) => [dir, ...parts].join('/');

function readRecord(mirror: string): RemoteRunRecord {
  const file = path.join(mirror, REMOTE_FILE);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RemoteRunRecord;
  } catch (e) {
    throw new SshError('remote', `${mirror}: not a remote run (cannot read ${REMOTE_FILE}: ${(e as Error).message})`);
  }
}

function writeRecord(mirror: string, rec: RemoteRunRecord): void {
  const file = path.join(mirror, REMOTE_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

/** Bytes free on the file system of a remote folder (df -Pk). */
async function remoteFreeBytes(t: SshTarget, dir: string): Promise<number | undefined> {
  const out = await sshRun(t, `df -Pk ${quote(dir)} | tail -n 1`, 'checking free space');
  const kb = Number(out.trim().split(/\s+/)[3]);
  return Number.isFinite(kb) ? kb * 1024 : undefined;
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : fs.statSync(p).size;
  }
  return n;
}

export interface RemoteStart {
  target: SshTarget;
  jobDir: string;
  /** Local folder that mirrors the remote run (created; must not hold a run). */
  mirrorDir: string;
  /** Folder on the host (relative to the login directory unless absolute); must be new. */
  remoteDir: string;
  /** Python on the host (default python3). */
  python?: string;
  args?: string[];
}

/** Copies the job and starts it detached on the host; the mirror gets remote.json. */
export async function startRemoteJob(o: RemoteStart): Promise<RemoteRunRecord> {
  const t = o.target;
  const python = o.python ?? 'python3';
  if (fs.existsSync(path.join(o.mirrorDir, 'run.json'))) throw new SshError('remote', `${o.mirrorDir} already holds a run; choose a new folder`);
  await checkHost(t);
  const rd = o.remoteDir;
  const exists = await sshRun(t, `test -e ${quote(remotePath(rd, 'run', 'run.json'))} && echo yes || echo no`, 'checking the remote folder');
  if (exists.trim() === 'yes') throw new SshError('remote', `${destination(t)}:${rd} already holds a run; choose a new remote folder (nothing was copied)`);
  // The interpreter there must import the stack before anything is started.
  const probe = `out=$(${python} -c 'import torch, transformers, peft, accelerate' 2>&1); echo "status=$?"; printf '%s\\n' "$out" | tail -n 1`;
  const out = await sshRun(t, probe, 'checking Python');
  if (!/^status=0$/m.test(out)) {
    throw new SshError(
      'no-python',
      `${destination(t)}: ${python} cannot import torch / transformers / peft / accelerate (${out.split('\n').slice(1).join(' ').trim() || 'no output'}). ` +
        `Install them there (python -m pip install -r requirements.txt of the job), or choose another Python; nothing was copied or started`,
    );
  }
  await sshRun(t, `mkdir -p ${quote(remotePath(rd, 'job'))} ${quote(remotePath(rd, 'run'))}`, 'creating the remote folder');
  try {
    await rsync(t, [`${o.jobDir.replace(/\/?$/, '/')}`, `${destination(t)}:${remotePath(rd, 'job')}/`], 'copying the job');
  } catch (e) {
    // The receiver's "No space left on device" does not always reach us before it exits (rsync status
    // 11): ask the host how much room is left.
    if (SshError.is(e, 'remote')) {
      const free = await remoteFreeBytes(t, remotePath(rd, 'job')).catch(() => undefined);
      const need = folderBytes(o.jobDir);
      if (free !== undefined && free < need) {
        throw new SshError('disk-full', `${destination(t)}: the remote disk is full while copying the job (${Math.round(free / 1024)} KiB free in ${rd}, the job needs ${Math.round(need / 1024)} KiB). Free space there and start again; the local job folder is unchanged`);
      }
    }
    throw e;
  }
  const args = (o.args ?? []).map(quote).join(' ');
  const start =
    `cd ${quote(remotePath(rd, 'job'))} && ` +
    `(setsid nohup ${python} train.py --output-dir ../run ${args} > ../train.log 2>&1 < /dev/null & echo "pid=$!")`;
  const started = await sshRun(t, start, 'starting the job');
  const pid = Number(/pid=(\d+)/.exec(started)?.[1]);
  if (!Number.isInteger(pid)) throw new SshError('remote', `${destination(t)}: the job did not start (${started.trim() || 'no pid'})`);
  fs.mkdirSync(o.mirrorDir, { recursive: true });
  const rec: RemoteRunRecord = { target: t, remoteDir: rd, pid, python, startedAt: new Date().toISOString(), state: 'connected' };
  writeRecord(o.mirrorDir, rec);
  return rec;
}

/**
 * Follows one remote run from its mirror folder (reattach = a new follower on the same folder). sync()
 * pulls run.json, metrics.jsonl, checkpoints/ and adapter/ (not the Trainer's large checkpoint-N/).
 */
export class RemoteRunFollower {
  constructor(readonly mirror: string) {}

  get record(): RemoteRunRecord {
    return readRecord(this.mirror);
  }

  /** Pulls the remote run folder; on a failure the run is marked disconnected (the remote job is left alone). */
  async sync(): Promise<RemoteRunRecord> {
    const rec = readRecord(this.mirror);
    try {
      await rsync(
        rec.target,
        ['--exclude', 'checkpoint-*/', '--exclude', 'STOP', '--exclude', REMOTE_FILE, `${destination(rec.target)}:${remotePath(rec.remoteDir, 'run')}/`, `${this.mirror}/`],
        'copying the run back',
      );
      const next: RemoteRunRecord = { ...rec, state: 'connected', lastSyncAt: new Date().toISOString() };
      delete next.lastError;
      writeRecord(this.mirror, next);
      return next;
    } catch (e) {
      if (!SshError.is(e)) throw e;
      const next: RemoteRunRecord = { ...rec, state: 'disconnected', lastError: e.message };
      writeRecord(this.mirror, next);
      return next;
    }
  }

  /** Creates STOP in the remote run folder: the job ends after its current update, with a checkpoint. */
  async stop(): Promise<void> {
    const rec = readRecord(this.mirror);
    await sshRun(rec.target, `date > ${quote(remotePath(rec.remoteDir, 'run', 'STOP'))}`, 'asking the job to stop');
  }

  /** Whether the job's process is still alive on the host. */
  async alive(): Promise<boolean> {
    const rec = readRecord(this.mirror);
    const out = await sshRun(rec.target, `kill -0 ${rec.pid} 2>/dev/null && echo alive || echo gone`, 'checking the job');
    return out.trim() === 'alive';
  }
}

/** Host aliases from an ssh_config file (`Host` lines without wildcards). */
export function sshConfigHosts(text: string): string[] {
  const hosts: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*Host\s+(.+)$/i.exec(line);
    if (!m) continue;
    for (const h of m[1].split(/\s+/)) if (h && !/[*?!]/.test(h) && !hosts.includes(h)) hosts.push(h);
  }
  return hosts;
}
