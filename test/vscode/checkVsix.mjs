// What users get: the packaged .vsix must carry the bundles, the tfjs wasm binaries and the schema, and
// none of the development files (sources, tests, configs, source maps, run outputs). Reads the zip's
// central directory itself (no unzip needed) and returns one outcome per check, like the suites.
import fs from 'node:fs';

/** File names in a zip archive, from its central directory. */
export function zipEntries(file) {
  const buf = fs.readFileSync(file);
  // End of central directory record: signature 0x06054b50, within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65_557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file}: not a zip archive (no end of central directory record)`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const names = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: bad central directory entry ${i}`);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    names.push(buf.toString('utf8', p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

const MUST_HAVE = [
  ['the extension bundle', /^extension\/dist\/extension\.js$/],
  ['the training worker bundle', /^extension\/dist\/worker\.js$/],
  ['the CLI bundle (merge runs it)', /^extension\/dist\/cli\.js$/],
  ['the dashboard webview bundle', /^extension\/dist\/webview\/main\.js$/],
  ['the playground worker bundle', /^extension\/dist\/playgroundWorker\.js$/],
  ['the playground webview bundle', /^extension\/dist\/webview\/playground\.js$/],
  ['the tfjs wasm binary in dist/wasm', /^extension\/dist\/wasm\/tfjs-backend-wasm\.wasm$/],
  ['the SIMD wasm binary in dist/wasm', /^extension\/dist\/wasm\/tfjs-backend-wasm-simd\.wasm$/],
  ['tfjs-core (external to the bundles)', /^extension\/node_modules\/@tensorflow\/tfjs-core\/dist\/tf-core\.node\.js$/],
  // Built by `npm run build` where a C compiler is present (always on the Linux x64 machines that package it).
  ...(process.platform === 'linux' ? [['the native matrix-product kernels in dist/native', /^extension\/dist\/native\/lora_lab_native\.node$/]] : []),
  ['the exported job\'s train.py (lora-lab export copies it)', /^extension\/dist\/templates\/hf-job\/train\.py$/],
  ['the experiment JSON Schema', /^extension\/schemas\/experiment\.schema\.json$/],
  ['the activity bar icon', /^extension\/media\/lora-lab\.svg$/],
];

const MUST_NOT_HAVE = [
  ['TypeScript sources', /^extension\/(src|webview-ui)\//],
  ['the native kernels\' C source and build script', /^extension\/native\//],
  ['tests and fixtures', /^extension\/test\//],
  ['TypeScript files anywhere', /\.ts$/],
  ['source maps', /\.map$/],
  ['build and lint configs', /^extension\/(tsconfig\.json|webpack\.config\.js|eslint\.config\.mjs|\.mocharc\.json|\.vscode-test\.mjs|package-lock\.json)$/],
  ['test caches and build outputs', /^extension\/(\.vscode-test|out|\.ci|\.vscode)\//],
  ['run outputs', /\/lora-runs\//],
  ['nested .vsix files', /\.vsix$/],
];

export function checkVsix(vsix) {
  const outcomes = [];
  let names;
  try {
    names = zipEntries(vsix);
  } catch (e) {
    return { passed: 0, failed: 1, outcomes: [{ title: 'the .vsix can be read', state: 'failed', error: String(e) }] };
  }
  for (const [what, re] of MUST_HAVE) {
    const ok = names.some((n) => re.test(n));
    outcomes.push({ title: `.vsix contains ${what}`, state: ok ? 'passed' : 'failed', error: ok ? undefined : `no entry matches ${re}` });
  }
  for (const [what, re] of MUST_NOT_HAVE) {
    const bad = names.filter((n) => re.test(n));
    outcomes.push({ title: `.vsix has no ${what}`, state: bad.length ? 'failed' : 'passed', error: bad.length ? `${bad.length} entries, e.g. ${bad.slice(0, 5).join(', ')}` : undefined });
  }
  for (const o of outcomes) console.log(`  ${o.state === 'passed' ? '✔' : '✗'} ${o.title}`);
  console.log(`  (${names.length} files)`);
  const failed = outcomes.filter((o) => o.state === 'failed').length;
  return { passed: outcomes.length - failed, failed, outcomes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = checkVsix(process.argv[2]);
  process.exit(r.failed ? 1 : 0);
}
