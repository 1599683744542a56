// Compiles the extension-host mocha suite (test/integration/**/*.ts and the src/ files it imports) to
// CommonJS under out/vscode-suite/, keeping the folder layout so relative imports still resolve. The
// extension itself is the webpack bundle (dist/) or the installed .vsix; this is only the test code.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const suiteOut = path.join(repoRoot, 'out', 'vscode-suite');
export const suiteIndex = path.join(suiteOut, 'test', 'integration', 'index.js');

function walk(dir, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) {
      if (ent.name === 'node_modules' || ent.name === 'workspace') continue;
      walk(p, out);
    } else if (ent.name.endsWith('.ts') && !ent.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Transpiles (no type check: `tsc -b` does that) test/integration and, transitively, the src files it imports. */
export function buildSuite() {
  fs.rmSync(suiteOut, { recursive: true, force: true });
  const queue = walk(path.join(repoRoot, 'test', 'integration'));
  const seen = new Set();
  while (queue.length) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const src = fs.readFileSync(file, 'utf8');
    const r = ts.transpileModule(src, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false, inlineSourceMap: true },
    });
    const rel = path.relative(repoRoot, file).replace(/\.ts$/, '.js');
    const dest = path.join(suiteOut, rel);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, r.outputText);
    // Follow relative imports into src/ (pure helpers the tests compare against).
    for (const m of src.matchAll(/(?:from|import\(|require\()\s*['"](\.[^'"]+)['"]/g)) {
      const base = path.resolve(path.dirname(file), m[1]);
      for (const cand of [base + '.ts', path.join(base, 'index.ts')]) {
        if (fs.existsSync(cand)) queue.push(cand);
      }
    }
  }
  return suiteIndex;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(buildSuite());
}
