// GGUF on disk: the serialised chunks (header, then each tensor) go through the one atomic write
// (temp file, fsync, rename, folder fsync), so a reader never sees half a model.
import { serializeGguf, type GgufFile } from '../formats/gguf/gguf';
import { writeFileAtomic } from './atomic';

/** Writes `file` atomically; returns its size in bytes. */
export function writeGgufFile(file: string, gguf: GgufFile): Promise<number> {
  return writeFileAtomic(file, serializeGguf(gguf));
}
