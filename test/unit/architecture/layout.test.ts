// The README's layout table and the ESLint boundary rows cover every folder and top-level file of
// src/: a new folder is documented and given import rules, or this fails.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

function srcEntries(): string[] {
  return fs
    .readdirSync(path.join(ROOT, 'src'), { withFileTypes: true })
    .filter((e) => e.isDirectory() || (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')))
    .map((e) => (e.isDirectory() ? `${e.name}/` : e.name))
    .sort();
}

describe('architecture: layout', () => {
  it('the README layout table lists every folder and top-level file of src/', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('## Layout');
    assert.ok(start >= 0, 'README has no "## Layout" section');
    const next = readme.indexOf('\n## ', start + 1);
    const section = readme.slice(start, next < 0 ? undefined : next);
    // Table rows name files and folders in their first cell; the header row names `src/…`.
    const rows = section.split('\n').filter((l) => l.startsWith('| `') && !l.startsWith('| `src/'));
    const listed = new Set(rows.flatMap((r) => [...r.split('|')[1].matchAll(/`([^`]+)`/g)].map((m) => m[1])));
    const missing = srcEntries().filter((e) => !listed.has(e));
    assert.deepEqual(missing, [], `README "Layout" has no row for: ${missing.join(', ')}`);
    const stale = [...listed].filter((e) => !srcEntries().includes(e));
    assert.deepEqual(stale, [], `README "Layout" lists what src/ no longer has: ${stale.join(', ')}`);
  });

  it('every folder and top-level file of src/ has an ESLint boundary row', () => {
    const config = fs.readFileSync(path.join(ROOT, 'eslint.config.mjs'), 'utf8');
    const globs = new Set([...config.matchAll(/files:\s*\[([^\]]*)\]/g)].flatMap((m) => [...m[1].matchAll(/'([^']+)'/g)].map((g) => g[1])));
    const missing = srcEntries().filter((e) => !globs.has(e.endsWith('/') ? `src/${e}**` : `src/${e}`));
    assert.deepEqual(missing, [], `eslint.config.mjs has no files: row for: ${missing.join(', ')}`);
  });
});
