// Child process for crash.test.ts: one real trainRun (real files, real process), optionally SIGKILLing
// itself at the n-th write / fsync / rename / mkdir (a write is cut half-way first, as a kill during the
// write(2) would leave it), and optionally waiting until a given time before it starts (racing resumes).
// Usage: trainChild.ts '<json: {configPath?, outDir?, resumeRunDir?, kill?: {op, n}, startAt?}>'
// Prints the run's events as JSON lines, then {"type":"result"} or {"type":"error"}; exit 0 when completed.
import { nodeRunFs, type RunFs } from '../../../src/runs/runFs';
import { trainRun } from '../../../src/runs/trainRun';
import type { FaultOp } from './faultyFs';

interface ChildArgs {
  configPath?: string;
  outDir?: string;
  resumeRunDir?: string;
  kill?: { op: FaultOp; n: number };
  startAt?: number;
}

const args = JSON.parse(process.argv[2]) as ChildArgs;
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

function killingFs(kill: { op: FaultOp; n: number }): RunFs {
  const counts: Record<FaultOp, number> = { write: 0, fsync: 0, rename: 0, mkdir: 0 };
  const paths = new Map<number, string>();
  const die = (op: FaultOp, file: string | undefined) => {
    if (++counts[op] !== kill.n || op !== kill.op) return;
    // stderr is unbuffered to a pipe, so the parent sees where the kill landed.
    process.stderr.write(`KILL ${op} #${kill.n} ${file ?? '?'}\n`);
    process.kill(process.pid, 'SIGKILL');
  };
  return {
    ...nodeRunFs,
    openSync: (f, flags, mode) => {
      const fd = nodeRunFs.openSync(f, flags, mode);
      paths.set(fd, f);
      return fd;
    },
    writeSync: (fd, buf, off, len, pos) => {
      if (kill.op === 'write' && counts.write + 1 === kill.n && len > 1) nodeRunFs.writeSync(fd, buf, off, Math.floor(len / 2), pos);
      die('write', paths.get(fd));
      return nodeRunFs.writeSync(fd, buf, off, len, pos);
    },
    fsyncSync: (fd) => {
      die('fsync', paths.get(fd));
      nodeRunFs.fsyncSync(fd);
    },
    renameSync: (from, to) => {
      die('rename', to);
      nodeRunFs.renameSync(from, to);
    },
    mkdirSync: (dir) => {
      die('mkdir', dir);
      nodeRunFs.mkdirSync(dir);
    },
  };
}

async function main(): Promise<number> {
  while (args.startAt !== undefined && Date.now() < args.startAt) {
    // busy-wait: both racers enter trainRun within a millisecond of each other
  }
  try {
    const result = await trainRun({
      configPath: args.configPath,
      outDir: args.outDir,
      resumeRunDir: args.resumeRunDir,
      backend: 'cpu',
      progressIntervalMs: 0,
      ...(args.kill ? { fs: killingFs(args.kill) } : {}),
      onEvent: out,
    });
    out({ type: 'result', ...result });
    return result.status === 'completed' ? 0 : 1;
  } catch (e) {
    out({ type: 'error', reason: (e as { reason?: string }).reason, message: e instanceof Error ? e.message : String(e) });
    return 1;
  }
}

void main().then((code) => {
  process.exitCode = code;
});
