// User-facing text calls the original LoRA article's code "the reference LoRA code": "the seed" read as
// the random seed (training.seed, --seed). Scans what users read: package.json, the schema, README,
// the examples, and the string literals (not the comments) of src/ and webview-ui/.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
/** "the seed", "seed's", "seed convention/article/code/module": the article's code, not a random seed. */
const ARTICLE_SENSE = /\bthe seed\b(?! (?:of|for|value|gives|is \d))|\bseed(?:'|’|\\')s\b|\bseed (?:convention|article|code|module|reference)\b/i;

function files(dir: string, ext: RegExp): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p, ext) : ext.test(e.name) ? [p] : [];
  });
}

/** The string literals of a TypeScript file (comments dropped): '…', "…" and template text. */
function stringLiterals(source: string): string[] {
  const out: string[] = [];
  const re = /\/\/[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g;
  for (const m of source.matchAll(re)) if (!m[0].startsWith('/')) out.push(m[0]);
  return out;
}

describe('wording: "the reference LoRA code", never "the seed"', () => {
  it('the pattern catches the old wording and leaves random seeds alone', () => {
    for (const bad of ["the seed's LoRAAttention", 'the seed convention', 'as in the seed', "Convention: the seed's —"]) assert.ok(ARTICLE_SENSE.test(bad), bad);
    for (const ok of ['training.seed', 'the same seed gives the same text', 'Seeds the data', '--seed S', 'seed 5']) assert.ok(!ARTICLE_SENSE.test(ok), ok);
  });

  it('package.json, the schema, README and the examples', () => {
    const docs = [path.join(ROOT, 'package.json'), path.join(ROOT, 'README.md'), ...files(path.join(ROOT, 'schemas'), /\.json$/), ...files(path.join(ROOT, 'examples'), /\.(json|ya?ml|txt)$/)];
    const hits = docs.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').flatMap((l, i) => (ARTICLE_SENSE.test(l) ? [`${path.relative(ROOT, f)}:${i + 1}: ${l.trim().slice(0, 120)}`] : [])));
    assert.deepEqual(hits, []);
  });

  it('string literals in src/ and webview-ui/ (messages, hovers, labels, templates)', () => {
    const sources = [...files(path.join(ROOT, 'src'), /\.ts$/), ...files(path.join(ROOT, 'webview-ui/src'), /\.ts$/)];
    const hits = sources.flatMap((f) => stringLiterals(fs.readFileSync(f, 'utf8')).filter((s) => ARTICLE_SENSE.test(s)).map((s) => `${path.relative(ROOT, f)}: ${s.slice(0, 120)}`));
    assert.deepEqual(hits, []);
  });
});
