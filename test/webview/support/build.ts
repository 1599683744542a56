// Makes sure dist/webview/main.js is built from the current sources (webpack, webview config only).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

export function ensureWebviewBuilt(): void {
  const js = path.join(root, 'dist', 'webview', 'main.js');
  const sources = Math.max(newestMtime(path.join(root, 'webview-ui', 'src')), newestMtime(path.join(root, 'src', 'protocol')), newestMtime(path.join(root, 'src', 'shared')));
  if (fs.existsSync(js) && fs.statSync(js).mtimeMs >= sources) return;
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'webpack', 'bin', 'webpack.js'), '--mode', 'production', '--config-name', 'webview'], { cwd: root, stdio: 'pipe' });
}
