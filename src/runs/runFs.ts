// The file-system calls through which a run folder is written. Production code uses node:fs; the fault
// injection tests pass a wrapper that fails or short-writes one chosen call, so every write point of a
// run is exercised. Reads go to node:fs directly: a failed read already ends in a clear error.
//
// The helpers here are the only way run files are written: each loops until every byte is written (a
// write may legally write less than asked, e.g. up to a `ulimit -f` limit or the last free block),
// fsyncs the file before it is renamed into place, and fsyncs the folder after the rename, so a file
// that is visible under its final name is complete.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { RunError } from './runErrors';

export interface RunFs {
  openSync(file: string, flags: string, mode?: number): number;
  /** Writes up to `length` bytes of `buf` from `offset`; returns how many were written (may be fewer). */
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  /** Creates one folder (not recursive); throws EEXIST when it exists. */
  mkdirSync(dir: string): void;
  /** Hard link `newPath` to `existing`; throws EEXIST when `newPath` exists (the lock relies on it). */
  linkSync(existing: string, newPath: string): void;
  unlinkSync(file: string): void;
  /** Removes a file or folder tree; no error when it is missing. */
  rmSync(target: string): void;
}

export const nodeRunFs: RunFs = {
  openSync: (file, flags, mode) => fs.openSync(file, flags, mode),
  writeSync: (fd, buf, offset, length, position) => fs.writeSync(fd, buf, offset, length, position),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  closeSync: (fd) => fs.closeSync(fd),
  renameSync: (from, to) => fs.renameSync(from, to),
  mkdirSync: (dir) => fs.mkdirSync(dir),
  linkSync: (existing, newPath) => fs.linkSync(existing, newPath),
  unlinkSync: (file) => fs.unlinkSync(file),
  rmSync: (target) => fs.rmSync(target, { recursive: true, force: true }),
};

/** What an errno means for someone whose run could not be written, without the raw errno text. */
export function explainFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOSPC':
      return 'the disk is full (ENOSPC)';
    case 'EDQUOT':
      return 'the disk quota is used up (EDQUOT)';
    case 'EFBIG':
      return 'the file would exceed the largest file this process may write, e.g. a `ulimit -f` limit (EFBIG)';
    case 'EROFS':
      return 'the file system is read-only (EROFS)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'EIO':
      return 'the device reported an I/O error (EIO)';
    case 'ENOENT':
      return 'the folder no longer exists (ENOENT)';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder (ENOTDIR)';
    case 'EEXIST':
      return 'it already exists (EEXIST)';
    case 'EMFILE':
    case 'ENFILE':
      return `too many files are open (${code})`;
    case 'SHORT_WRITE':
      return (e as Error).message;
    default:
      // Node's text is "CODE: description, syscall 'path'": keep the description, the file is named already.
      return code ? `${(e as Error).message.replace(/^[A-Z0-9_]+: /, '').replace(/, \w+ '.*$/s, '')} (${code})` : String((e as Error)?.message ?? e);
  }
}

/** A RunError 'io' naming `file` and what could not be done to it. */
export function ioError(e: unknown, file: string, doing: string): RunError {
  if (RunError.is(e)) return e;
  return new RunError('io', `${file}: cannot ${doing}: ${explainFsError(e)}`, { path: file, cause: e });
}

/** Writes all of `data` at the file's current position, looping on partial writes. */
export function writeAll(rfs: RunFs, fd: number, data: Uint8Array, file: string): void {
  let done = 0;
  while (done < data.length) {
    const n = rfs.writeSync(fd, data, done, data.length - done, null);
    if (!(n > 0)) {
      const err = Object.assign(new Error(`only ${done} of ${data.length} bytes could be written (the device accepts no more)`), { code: 'SHORT_WRITE' });
      throw ioError(err, file, 'write');
    }
    done += n;
  }
}

function bytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** Creates (or with flags 'w' replaces) `file` with `data`, completely written and fsync'd. */
export function writeFileSynced(rfs: RunFs, file: string, data: string | Uint8Array, flags: 'w' | 'wx' = 'w'): void {
  let fd: number;
  try {
    fd = rfs.openSync(file, flags, 0o644);
  } catch (e) {
    throw ioError(e, file, 'create');
  }
  try {
    writeAll(rfs, fd, bytes(data), file);
    rfs.fsyncSync(fd);
  } catch (e) {
    throw ioError(e, file, 'write');
  } finally {
    try {
      rfs.closeSync(fd);
    } catch {
      // the write error above (or the fsync) is the one worth reporting
    }
  }
}

/** Makes creates and renames inside `dir` durable. Platforms that cannot fsync a folder (Windows) skip it. */
export function syncDir(rfs: RunFs, dir: string): void {
  let fd: number;
  try {
    fd = rfs.openSync(dir, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'EPERM' || code === 'EACCES') return;
    throw ioError(e, dir, 'open the folder to sync it');
  }
  try {
    rfs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw ioError(e, dir, 'sync the folder');
  } finally {
    try {
      rfs.closeSync(fd);
    } catch {
      // nothing more to report
    }
  }
}

/** `file` replaced atomically: a temp file in the same folder, complete and fsync'd, then renamed over it. */
export function writeFileAtomicSync(rfs: RunFs, file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSynced(rfs, tmp, data, 'wx');
    try {
      rfs.renameSync(tmp, file);
    } catch (e) {
      throw ioError(e, file, `rename ${path.basename(tmp)} into place`);
    }
  } catch (e) {
    try {
      rfs.rmSync(tmp);
    } catch {
      // leave the temp file; its '.'-name keeps readers away from it
    }
    throw ioError(e, file, 'write');
  }
  syncDir(rfs, dir);
}

/** Appends `data` to `file` (created when missing), all of it. */
export function appendAll(rfs: RunFs, file: string, data: string | Uint8Array): void {
  let fd: number;
  try {
    fd = rfs.openSync(file, 'a', 0o644);
  } catch (e) {
    throw ioError(e, file, 'open for appending');
  }
  try {
    writeAll(rfs, fd, bytes(data), file);
  } catch (e) {
    throw ioError(e, file, 'append to');
  } finally {
    try {
      rfs.closeSync(fd);
    } catch {
      // the append error is the one worth reporting
    }
  }
}

/** `mkdir -p` through `rfs`, so each folder created is one fault-injectable call. */
export function mkdirs(rfs: RunFs, dir: string): void {
  if (fs.existsSync(dir)) return;
  const parent = path.dirname(dir);
  if (parent !== dir) mkdirs(rfs, parent);
  try {
    rfs.mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(e, dir, 'create the folder');
  }
}
