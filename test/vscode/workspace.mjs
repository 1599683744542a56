// A fresh copy of the example workspace (test/integration/workspace) for each run, so runs, edits and
// caches never land in the repository.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const workspaceFixture = path.join(repoRoot, 'test', 'integration', 'workspace');

export function makeWorkspace(parent) {
  const dest = path.join(parent, 'workspace');
  fs.cpSync(workspaceFixture, dest, { recursive: true });
  return dest;
}
