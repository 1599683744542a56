// Opening files that came from a user's folder safely: only regular files are read (a FIFO named
// model.safetensors would block the reader forever on open, a device would stream without end), and
// files of a model folder stay inside that folder (an index's `weight_map` entry "../x.safetensors"
// or a config.json that is a symbolic link to some other file of the machine is refused and named,
// never read or quoted).
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ReasonError } from '../shared/errors';

/** A path that exists but is not a regular file (FIFO, device, socket, folder). */
export class NotRegularFileError extends ReasonError<'not-regular-file'> {
  static override readonly family = 'NotRegularFileError';
  readonly code = 'ENOTREG';
  constructor(
    readonly file: string,
    /** "a FIFO (named pipe)", "a character device", … */
    readonly kind: string,
  ) {
    super('not-regular-file', `${file}: is ${kind}, not a regular file; refused${kind.startsWith('a FIFO') || kind.includes('device') || kind.includes('socket') ? ' (reading it could block or never end)' : ''}`);
  }
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

// O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, so a FIFO swapped in after the
// stat check would still hang the open; with it the open returns and the fstat check refuses it.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** Opens `file` for reading if (following links) it is a regular file; else NotRegularFileError. */
export async function openRegular(file: string): Promise<fsp.FileHandle> {
  const st = await fsp.stat(file);
  if (!st.isFile()) throw new NotRegularFileError(file, kindOf(st));
  const handle = await fsp.open(file, OPEN_FLAGS);
  try {
    const now = await handle.stat();
    if (!now.isFile()) throw new NotRegularFileError(file, kindOf(now));
    return handle;
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** A regular file's bytes (see openRegular). */
export async function readRegularFile(file: string): Promise<Buffer> {
  const handle = await openRegular(file);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** A regular file's text, UTF-8 (see openRegular). */
export async function readRegularText(file: string): Promise<string> {
  return (await readRegularFile(file)).toString('utf8');
}

/** Synchronous readRegularFile. */
export function readRegularFileSync(file: string): Buffer {
  const st = fs.statSync(file);
  if (!st.isFile()) throw new NotRegularFileError(file, kindOf(st));
  const fd = fs.openSync(file, OPEN_FLAGS);
  try {
    const now = fs.fstatSync(fd);
    if (!now.isFile()) throw new NotRegularFileError(file, kindOf(now));
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A file of a model folder that would be read from outside it. */
export class OutsideFolderError extends ReasonError<'outside-folder'> {
  static override readonly family = 'OutsideFolderError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super('outside-folder', message);
  }
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The path of `name` in model folder `dir`, refusing names that leave it ("../x", "/abs", "a/../../x")
 * and symbolic links that point outside it. A Hugging Face cache snapshot
 * (models--org--name/snapshots/<rev>/) links every file to ../../blobs/<hash>; links into that
 * repository's blobs/ are allowed. `listedIn` names the file that gave `name` (said in the error).
 * Files that do not exist are returned as they are (the caller reports them).
 */
export async function confinedPath(dir: string, name: string, listedIn?: string): Promise<string> {
  const from = listedIn ? ` (listed in ${path.basename(listedIn)})` : '';
  if (typeof name !== 'string' || name === '' || name.includes('\0')) {
    throw new OutsideFolderError(path.join(dir, String(name)), `${listedIn ?? dir}: a file name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  const file = path.resolve(dir, name);
  if (path.isAbsolute(name) || !inside(path.resolve(dir), file)) {
    throw new OutsideFolderError(file, `${JSON.stringify(name)}${from}: is outside the model folder ${dir}; refused (a model's files must be inside its folder)`);
  }
  let lst: fs.Stats;
  try {
    lst = await fsp.lstat(file);
  } catch {
    return file; // missing: the reader says so
  }
  // A link anywhere on the way (the file, or a sub-folder of the model folder) is resolved as a whole.
  if (!lst.isSymbolicLink() && path.dirname(file) === path.resolve(dir)) return file;
  const [realDir, real] = await Promise.all([fsp.realpath(dir), fsp.realpath(file).catch(() => undefined)]);
  if (real === undefined) return file; // a dangling link: reading it fails with ENOENT, named by the caller
  const roots = [realDir];
  if (path.basename(path.dirname(realDir)) === 'snapshots') roots.push(path.join(path.dirname(path.dirname(realDir)), 'blobs'));
  if (!roots.some((r) => inside(r, real))) {
    throw new OutsideFolderError(
      file,
      `${file}${from}: is a symbolic link to ${real}, outside the model folder; refused (copy the file into the folder if it belongs to this model)`,
    );
  }
  return file;
}
