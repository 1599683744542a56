// Crash-safe writes for run folders: a reader (the dashboard, `--resume`) sees either the old file or
// the new one, never a half-written file. Temp file in the same folder (so rename stays on one file
// system and is atomic), fsync before rename (so a power loss cannot leave an empty file under the
// final name), then a best-effort fsync of the folder so the rename itself is durable.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** What an atomic write takes: a string or bytes, or chunks written in order (a header, then each tensor). */
export type AtomicData = string | Uint8Array | Iterable<Uint8Array>;

/**
 * Writes `data` to `file` atomically: readers see the old or the new content, never a torn file.
 * Chunks let a large file (a GGUF model) go to disk piece by piece, without one joined copy in
 * memory. Returns the bytes written.
 */
export async function writeFileAtomic(file: string, data: AtomicData): Promise<number> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const chunks: Iterable<string | Uint8Array> = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
  let handle: fsp.FileHandle | undefined;
  let size = 0;
  try {
    handle = await fsp.open(tmp, 'wx', 0o644);
    // Each writeFile continues at the handle's position, so the chunks land one after another.
    for (const c of chunks) {
      await handle.writeFile(c);
      size += typeof c === 'string' ? Buffer.byteLength(c) : c.length;
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
  return size;
}

/** Appends one line (a newline is added) to `file`, creating it. With `fsync`, waits until it is on disk. */
export async function appendLine(file: string, line: string, options: { fsync?: boolean } = {}): Promise<void> {
  if (/[\r\n]/.test(line)) throw new Error(`appendLine(${file}): the line must not contain a newline`);
  const handle = await fsp.open(file, 'a', 0o644);
  try {
    // With O_APPEND each write lands at the end, even with other appenders. A write may take fewer
    // bytes than asked (a file size limit, the last free block): loop until the line is all there.
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
      if (bytesWritten <= 0) throw new Error(`${file}: only ${done} of ${bytes.length} bytes could be appended (the device accepts no more)`);
      done += bytesWritten;
    }
    if (options.fsync) await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename or create in `dir` durable. Not every platform can open a folder (Windows): then it is a no-op. */
async function syncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EPERM on Windows, EINVAL on some file systems: the rename already happened, nothing to do.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
