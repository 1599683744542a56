// A RunFs (src/runs/runFs.ts) over the real file system that counts the write / fsync / rename / mkdir
// calls of a run and makes exactly one of them go wrong: fail with an errno, or write only part of the
// bytes asked for (optionally followed by ENOSPC on the next write, as a disk that just filled up does).
import * as fs from 'node:fs';
import { nodeRunFs, type RunFs } from '../../../src/runs/runFs';

export type FaultOp = 'write' | 'fsync' | 'rename' | 'mkdir';
export const FAULT_OPS: readonly FaultOp[] = ['write', 'fsync', 'rename', 'mkdir'];

/**
 * error: the call throws `code`; short: a write writes half; short-enospc: half, then the next write
 * throws ENOSPC; full: the disk fills up at that write, every later write that needs a new block
 * (appends, new files) and every mkdir throws ENOSPC, overwriting bytes in place still works;
 * readonly: from that write on, every write, mkdir, rename, link and open for writing throws EROFS.
 */
export type FaultMode = 'error' | 'short' | 'short-enospc' | 'full' | 'readonly';

export interface FaultPlan {
  op: FaultOp;
  /** 1-based: the n-th call of `op` goes wrong. */
  n: number;
  mode: FaultMode;
  /** errno for mode 'error' (default EIO). */
  code?: string;
}

function errnoError(code: string, syscall: string, file: string | undefined): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault, ${syscall} '${file ?? '?'}'`), { code, syscall, path: file });
}

export class FaultyFs implements RunFs {
  readonly counts: Record<FaultOp, number> = { write: 0, fsync: 0, rename: 0, mkdir: 0 };
  /** Where the fault landed: `op #n on file`. */
  fired: string | undefined;
  private readonly paths = new Map<number, string>();
  private enospcNext = false;
  private full = false;
  private roMode = false;

  private refuseIfReadonly(syscall: string, file: string | undefined): void {
    if (this.roMode) throw errnoError('EROFS', syscall, file);
  }

  constructor(private readonly plan?: FaultPlan) {}

  /** True when this call (the counts[op]-th of `op`) is the planned fault. */
  private hit(op: FaultOp, file: string | undefined): boolean {
    this.counts[op]++;
    if (!this.plan || this.fired || this.plan.op !== op || this.plan.n !== this.counts[op]) return false;
    this.fired = `${op} #${this.counts[op]} on ${file}`;
    return true;
  }

  openSync(file: string, flags: string, mode?: number): number {
    if (flags !== 'r') this.refuseIfReadonly('open', file);
    const fd = nodeRunFs.openSync(file, flags, mode);
    this.paths.set(fd, file);
    return fd;
  }

  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number {
    const file = this.paths.get(fd);
    this.refuseIfReadonly('write', file);
    if (this.full && position === null) {
      this.counts.write++;
      throw errnoError('ENOSPC', 'write', file);
    }
    if (this.enospcNext) {
      this.enospcNext = false;
      this.counts.write++;
      throw errnoError('ENOSPC', 'write', file);
    }
    if (this.hit('write', file)) {
      if (this.plan!.mode === 'error') throw errnoError(this.plan!.code ?? 'EIO', 'write', file);
      if (this.plan!.mode === 'readonly') {
        this.roMode = true;
        throw errnoError('EROFS', 'write', file);
      }
      if (this.plan!.mode === 'full') {
        this.full = true;
        throw errnoError('ENOSPC', 'write', file);
      }
      const part = Math.max(0, Math.floor(length / 2));
      const n = part > 0 ? nodeRunFs.writeSync(fd, buf, offset, part, position) : 0;
      if (this.plan!.mode === 'short-enospc') this.enospcNext = true;
      return n;
    }
    return nodeRunFs.writeSync(fd, buf, offset, length, position);
  }

  fsyncSync(fd: number): void {
    if (this.hit('fsync', this.paths.get(fd))) throw errnoError(this.plan!.code ?? 'EIO', 'fsync', this.paths.get(fd));
    nodeRunFs.fsyncSync(fd);
  }

  closeSync(fd: number): void {
    this.paths.delete(fd);
    nodeRunFs.closeSync(fd);
  }

  renameSync(from: string, to: string): void {
    this.refuseIfReadonly('rename', to);
    if (this.hit('rename', to)) throw errnoError(this.plan!.code ?? 'EIO', 'rename', to);
    nodeRunFs.renameSync(from, to);
  }

  mkdirSync(dir: string): void {
    this.refuseIfReadonly('mkdir', dir);
    // Only calls that would create something count: mkdirs() checks existence first.
    if (this.full) throw errnoError('ENOSPC', 'mkdir', dir);
    if (!fs.existsSync(dir) && this.hit('mkdir', dir)) throw errnoError(this.plan!.code ?? 'EIO', 'mkdir', dir);
    nodeRunFs.mkdirSync(dir);
  }

  linkSync(existing: string, newPath: string): void {
    this.refuseIfReadonly('link', newPath);
    nodeRunFs.linkSync(existing, newPath);
  }

  unlinkSync(file: string): void {
    this.refuseIfReadonly('unlink', file);
    nodeRunFs.unlinkSync(file);
  }

  rmSync(target: string): void {
    this.refuseIfReadonly('rm', target);
    nodeRunFs.rmSync(target);
  }
}
