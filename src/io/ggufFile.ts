// GGUF on disk: the serialised chunks (header, then each tensor) written in order to a temp file in
// the same folder, synced and renamed, so a reader never sees half a model.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { serializeGguf, type GgufFile } from '../formats/gguf/gguf';

/** Writes `file` atomically; returns its size in bytes. */
export async function writeGgufFile(file: string, gguf: GgufFile): Promise<number> {
  const chunks = serializeGguf(gguf);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: fsp.FileHandle | undefined;
  let size = 0;
  try {
    handle = await fsp.open(tmp, 'wx', 0o644);
    for (const c of chunks) {
      await handle.writeFile(c);
      size += c.length;
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
  return size;
}
