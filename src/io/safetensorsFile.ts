// safetensors on disk. `readSafetensorsHeader` reads only the 8-byte prefix and the JSON header (two
// positioned reads), so listing hundreds of multi-gigabyte files costs kilobytes each; the offsets are
// still validated against the real file size, so a truncated or padded file is reported up front.

import { promises as fsp } from 'node:fs';
import {
  findTensorEntry,
  parseHeader,
  parseSafetensors,
  serializeSafetensors,
  headerLengthOf,
  typedView,
  toFloat32,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsTypedArray,
  type TensorToWrite,
} from '../formats/safetensors';
import { FormatError } from '../formats/errors';
import { writeFileAtomic } from './atomic';
import { openRegular } from './regularFile';

/**
 * Reads and validates only the header of a safetensors file. Throws FormatError for a malformed file,
 * NotRegularFileError for a FIFO, device or folder (never opened in a way that could block).
 */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await openRegular(file);
  try {
    const { size } = await handle.stat();
    const first8 = await readExactly(handle, file, 0, Math.min(8, size));
    const n = headerLengthOf(first8, size, file);
    const bytes = new Uint8Array(8 + n);
    bytes.set(first8, 0);
    bytes.set(await readExactly(handle, file, 8, n), 8);
    return parseHeader(bytes, size, file);
  } finally {
    await handle.close();
  }
}

/** The largest file readWholeFile reads: a Uint8Array holds at most 4 GiB here. */
export const MAX_WHOLE_FILE_BYTES = 2 ** 32 - 1;

/**
 * A whole file as bytes. fs.readFile stops at 2 GiB; above that the file is read in 1 GiB pieces
 * into one array (up to MAX_WHOLE_FILE_BYTES; larger files fail with 'file-too-large').
 * `chunkBytes` is for tests.
 */
export async function readWholeFile(file: string, chunkBytes = 2 ** 30): Promise<Uint8Array> {
  const handle = await openRegular(file);
  try {
    const { size } = await handle.stat();
    if (size > MAX_WHOLE_FILE_BYTES) {
      throw new FormatError('file-too-large', `${(size / 2 ** 30).toFixed(2)} GiB is more than one array can hold (4 GiB); split it into shards (model.safetensors.index.json)`, { source: file });
    }
    if (size <= chunkBytes) return await readExactly(handle, file, 0, size);
    const out = new Uint8Array(size);
    for (let pos = 0; pos < size; pos += chunkBytes) out.set(await readExactly(handle, file, pos, Math.min(chunkBytes, size - pos)), pos);
    return out;
  } finally {
    await handle.close();
  }
}

/** Reads a whole safetensors file into memory (up to 4 GiB, see readWholeFile) and validates it. */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readWholeFile(file), file);
}

/**
 * Reads one tensor's bytes from a file whose header was read with `readSafetensorsHeader`, without
 * loading the rest (for inspecting one matrix of a large model).
 */
export async function readTensorBytes(file: string, header: SafetensorsHeader, name: string): Promise<Uint8Array> {
  const entry = findTensorEntry(header, name, file);
  const handle = await openRegular(file);
  try {
    return await readExactly(handle, file, header.dataOffset + entry.begin, entry.end - entry.begin);
  } finally {
    await handle.close();
  }
}

/** `readTensorBytes`, converted to float32. */
export async function readTensorFloat32(file: string, header: SafetensorsHeader, name: string): Promise<Float32Array> {
  return toFloat32(await readTensorBytes(file, header, name), findTensorEntry(header, name, file).dtype);
}

/** `readTensorBytes`, as the dtype's typed array. */
export async function readTensorTyped(file: string, header: SafetensorsHeader, name: string): Promise<SafetensorsTypedArray> {
  return typedView(await readTensorBytes(file, header, name), findTensorEntry(header, name, file).dtype);
}

/** Serializes and writes atomically (temp file + fsync + rename). */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}

async function readExactly(handle: fsp.FileHandle, file: string, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new FormatError(
        'incomplete-buffer',
        `the file ends at byte ${position + done}, but bytes ${position}–${position + length} were expected (it changed since its header was read?)`,
        { source: file },
      );
    }
    done += bytesRead;
  }
  return out;
}
