// Moving a folder to the user's trash where VS Code's file service cannot (a remote or browser-served
// host such as code-server has no desktop trash): the freedesktop.org trash, $XDG_DATA_HOME/Trash
// (~/.local/share/Trash), which file managers list and restore from. Node fs only.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function freedesktopTrashDir(env: NodeJS.ProcessEnv = process.env): string {
  const data = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'Trash');
}

/** Moves `target` into the freedesktop trash with its .trashinfo (so it can be restored); returns where it went. */
export function moveToFreedesktopTrash(target: string, now: Date = new Date(), env: NodeJS.ProcessEnv = process.env): string {
  const trash = freedesktopTrashDir(env);
  const files = path.join(trash, 'files');
  const info = path.join(trash, 'info');
  fs.mkdirSync(files, { recursive: true, mode: 0o700 });
  fs.mkdirSync(info, { recursive: true, mode: 0o700 });
  const base = path.basename(target);
  let name = base;
  // Reserve the name by creating its .trashinfo exclusively (the spec's way to avoid two writers clashing).
  let infoFile = '';
  for (let i = 2; ; i++) {
    infoFile = path.join(info, `${name}.trashinfo`);
    try {
      const pad = (n: number) => String(n).padStart(2, '0');
      const date = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
      const encoded = path.resolve(target).split('/').map(encodeURIComponent).join('/');
      fs.writeFileSync(infoFile, `[Trash Info]\nPath=${encoded}\nDeletionDate=${date}\n`, { flag: 'wx' });
      if (fs.existsSync(path.join(files, name))) throw Object.assign(new Error('taken'), { code: 'EEXIST' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      name = `${base}.${i}`;
    }
  }
  const dest = path.join(files, name);
  try {
    fs.renameSync(target, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') {
      fs.rmSync(infoFile, { force: true });
      throw e;
    }
    // Another file system: copy, then remove the original only once the copy is complete.
    fs.cpSync(target, dest, { recursive: true });
    fs.rmSync(target, { recursive: true, force: true });
  }
  return dest;
}
